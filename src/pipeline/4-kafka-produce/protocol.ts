/**
 * Everything that crosses the main-thread ↔ worker boundary. Plain data only: these values are
 * structured-cloned (or, for `BatchTask.buffer`, transferred) by Piscina.
 */

/** Passed once to every worker as Piscina `workerData`. */
export interface WorkerInit {
  /** librdkafka global properties (bootstrap.servers, security, idempotence, ...). */
  readonly global: Record<string, string | number | boolean>;
  /** librdkafka topic-level properties (acks, message.timeout.ms, ...). */
  readonly topic: Record<string, string | number | boolean>;
  /** Bound on one connect attempt; a failed attempt is retried with backoff. */
  readonly connectTimeoutMs: number;
  readonly logLevel: string;
}

/**
 * One batch of records for one producer, packed into a single ArrayBuffer (see codec.ts)
 * so that it crosses the thread boundary as one transfer instead of N structured clones.
 */
export interface BatchTask {
  readonly kind: 'batch';
  readonly buffer: ArrayBuffer;
}

/** Ends the producer of the worker it is pinned to (see lanes.ts, WorkerLanes.close). */
export interface ShutdownTask {
  readonly kind: 'shutdown';
  readonly flushTimeoutMs: number;
}

/** Asks a thread who it is: the check that lanes reach their own threads (lanes.ts, start). */
export interface WhoamiTask {
  readonly kind: 'whoami';
}

export interface WhoamiResult {
  readonly kind: 'whoami';
  readonly threadId: number;
}

export type WorkerTask = BatchTask | ShutdownTask | WhoamiTask;

/**
 * Outcome of one batch. The task settles only when every record has a final outcome: retriable
 * failures are retried inside the producer and never surface here.
 */
export interface BatchResult {
  readonly kind: 'batch';
  /** Records Kafka acknowledged. */
  readonly delivered: number;
  /** Records Kafka refused permanently, by position in the batch. */
  readonly failures: readonly RecordFailure[];
}

export interface RecordFailure {
  readonly index: number;
  /** librdkafka error code (negative: client-side, positive: broker). */
  readonly code: number;
  readonly message: string;
}

export interface ShutdownResult {
  readonly kind: 'shutdown';
  readonly threadId: number;
  /**
   * 'abandoned': a connect attempt of this thread's producer is still pending, a native call
   * the thread must never be ended under (see KafkaProducerRunner.shutdown).
   */
  readonly outcome: 'closed' | 'abandoned';
}

export type WorkerResult = BatchResult | ShutdownResult | WhoamiResult;

/** BroadcastChannel on which workers announce their producer's readiness. */
export const PRODUCER_STATUS_CHANNEL = 'mqtt-kafka-forwarder:producer-status';

export interface ProducerStatus {
  readonly threadId: number;
  readonly ready: boolean;
}
