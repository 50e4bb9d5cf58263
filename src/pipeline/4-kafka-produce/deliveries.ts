/**
 * Delivery bookkeeping of one Kafka producer: produces the records of a batch, turns
 * librdkafka's per-record delivery reports into one result per batch, and retries what Kafka
 * may still take (transient errors, a full local queue, a record refused only because the
 * batch it shared was too large). Only permanent refusals reach the result.
 */
import type { LibrdKafkaError, Producer } from 'node-rdkafka';
import { ERROR_CODES } from '../../errors';
import { MAX_REPORT_ID, kafkaErrorText } from '../../seams/rdkafka';
import type { Logger } from '../../observability/logger';
import { RateLimitedLog } from '../../observability/logger';
import { forEachRecord } from './codec';
import type { KafkaHeaders } from './codec';
import {
  QUEUE_FULL,
  errorCodeOf,
  isBatchSizeError,
  isRetriableKafkaError,
  kafkaErrorName,
} from './kafka-errors';
import type { BatchResult, RecordFailure } from './protocol';

/** A record from its first produce() until its final outcome. */
interface InFlight {
  readonly batch: BatchState;
  readonly index: number;
  readonly topic: string;
  /** Kept so a retriable failure can be produced again; views into the batch buffer. */
  readonly key: Buffer | null;
  readonly value: Buffer;
  readonly headers: KafkaHeaders | undefined;
  attempts: number;
  /** Attempts made alone, after the broker refused the batch this record was in as too large. */
  isolated?: number;
  /** The client generation (DeliveryClient.generation) the pending attempt was produced on. */
  generation?: number;
}

interface BatchState {
  remaining: number;
  delivered: number;
  readonly failures: RecordFailure[];
  readonly resolve: (r: BatchResult) => void;
}

const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 5_000;
const QUEUE_FULL_WAIT_MS = 5;
/** Attempts alone before a record the broker calls too large is reported as such. */
const ISOLATED_ATTEMPTS = 3;

/** The producer's side of the bookkeeping: which client to produce with, and when not to. */
export interface DeliveryClient {
  /** The connected client, or undefined once disconnect() began (no native call may reach it). */
  current(): Producer | undefined;
  /** Shutdown began: failures are left unconfirmed rather than retried or reported. */
  stopping(): boolean;
  /** A record was confirmed: some broker is reachable. */
  delivered(): void;
  /** Changes whenever the client is replaced: a report from an earlier client is stale. */
  generation(): number;
}

export class Deliveries {
  private readonly errorLog = new RateLimitedLog(5_000);
  private readonly isolationQueue: InFlight[] = [];
  private isolating: InFlight | undefined;
  /**
   * Every record from produce() until its delivery report, by report id (the opaque given to
   * produce(), new for every attempt): a report for an id not in it is a duplicate and must not
   * settle the record again; detach() hands them over.
   */
  private readonly pending = new Map<number, InFlight>();
  private lastId = 0;

  constructor(
    private readonly client: DeliveryClient,
    private readonly log: Logger,
  ) {}

  /** Records produced whose delivery report has not arrived yet. */
  get unconfirmed(): number {
    return this.pending.size;
  }

  /** Produces every record of the batch; settles once each has a final outcome. */
  batch(buffer: ArrayBuffer): Promise<BatchResult> {
    return new Promise<BatchResult>((resolve) => {
      const batch: BatchState = { remaining: 0, delivered: 0, failures: [], resolve };
      const count = forEachRecord(buffer, (index, topic, key, value, headers) => {
        this.produce({ batch, index, topic, key, value, headers, attempts: 0 });
      });
      batch.remaining += count;
      if (batch.remaining === 0) resolve({ kind: 'batch', delivered: 0, failures: [] });
    });
  }

  private produce(rec: InFlight): void {
    // A retry timer firing during disconnect: left unconfirmed, never acknowledged.
    const client = this.client.current();
    if (client === undefined) return;
    rec.attempts++;
    // Ids wrap long after a record's report: the pending ones are bounded by librdkafka's queue.
    const id = this.lastId === MAX_REPORT_ID ? 1 : this.lastId + 1;
    try {
      client.produce(rec.topic, null, rec.value, rec.key, Date.now(), id, rec.headers);
      this.lastId = id;
      rec.generation = this.client.generation();
      this.pending.set(id, rec);
    } catch (err) {
      // Shutting down ("Producer not connected"): leave it unconfirmed, never acknowledged.
      if (this.client.stopping()) return;
      const code = errorCodeOf(err as LibrdKafkaError);
      if (isRetriableKafkaError(code)) {
        // librdkafka's local queue is bounded; a full queue means Kafka is slower than MQTT
        // right now. Waiting here holds the batch, which holds the window, which stops MQTT.
        const wait = code === QUEUE_FULL ? QUEUE_FULL_WAIT_MS : RETRY_MIN_MS;
        setTimeout(() => this.produce(rec), wait).unref();
        return;
      }
      this.fail(rec, code, errorText(err));
    }
  }

  /** Produces the next record waiting for an attempt of its own, once none is in flight. */
  private nextIsolated(): void {
    if (this.isolating !== undefined) return;
    const rec = this.isolationQueue.shift();
    if (rec === undefined) return;
    this.isolating = rec;
    rec.isolated = (rec.isolated ?? 0) + 1;
    // Not flushed on purpose: flush() is a native call that shutdown would have to wait for.
    // It may still share a request with a record produced within linger.ms; hence the retries.
    this.produce(rec);
  }

  /**
   * The client lost for good (kafka-producer.ts, replaceLostClient): every record awaiting a
   * report from it is detached, so that a late report from that client is ignored, and is
   * produced again with produceAgain() once the next client connected.
   */
  detach(): InFlight[] {
    const recs = [...this.pending.values()];
    this.pending.clear();
    return recs;
  }

  /** Produces detached records again, on the current client. */
  produceAgain(recs: readonly InFlight[]): void {
    for (const rec of recs) this.produce(rec);
  }

  /**
   * librdkafka's delivery reports from client `generation` (the binding's compact reports): the
   * report ids given to produce() and an error code for each, 0 for delivered.
   */
  onReports(ids: Uint32Array, codes: Int32Array, generation: number): void {
    for (let i = 0; i < ids.length; i++) this.onReport(ids[i]!, codes[i]!, generation);
  }

  private onReport(id: number, code: number, generation: number): void {
    const rec = this.pending.get(id);
    // A report from a replaced client for a record detached from it: the record was produced
    // again (or is about to be) on the current client, whose report settles it.
    if (rec === undefined && generation !== this.client.generation()) return;
    if (rec === undefined || rec.generation !== generation) {
      const n = this.errorLog.take();
      if (n >= 0)
        this.log.warn(
          { code: ERROR_CODES.kafkaDuplicateReport, suppressed: n },
          'duplicate kafka delivery report ignored',
        );
      return;
    }
    this.pending.delete(id);
    if (rec === this.isolating) {
      this.isolating = undefined;
      setImmediate(() => this.nextIsolated());
    }
    if (code === 0) {
      this.settle(rec.batch, true);
      this.client.delivered();
      return;
    }
    if (
      isBatchSizeError(code) &&
      (rec.isolated ?? 0) < ISOLATED_ATTEMPTS &&
      !this.client.stopping()
    ) {
      // The broker checks the size of a whole record batch, so one oversized record fails every
      // record librdkafka batched with it. Offer each such record again on its own before
      // calling it too large: a neighbour must never be skipped or dead-lettered for it.
      this.isolationQueue.push(rec);
      this.nextIsolated();
      return;
    }
    if (isRetriableKafkaError(code)) {
      // Shutting down: leave it unconfirmed (never acknowledged, so the broker redelivers it)
      // rather than let a retriable error reach a mapping's error policy.
      if (this.client.stopping()) return;
      const delay = Math.min(RETRY_MIN_MS * 2 ** Math.min(rec.attempts, 10), RETRY_MAX_MS);
      const n = this.errorLog.take();
      if (n >= 0) {
        this.log.warn(
          {
            code: ERROR_CODES.kafkaRetry,
            kafkaError: kafkaErrorName(code),
            topic: rec.topic,
            attempts: rec.attempts,
            suppressed: n,
          },
          `kafka delivery failed, retrying: ${kafkaErrorText(code)}`,
        );
      }
      setTimeout(() => this.produce(rec), delay).unref();
      return;
    }
    this.fail(rec, code, kafkaErrorText(code));
  }

  private fail(rec: InFlight, code: number, message: string): void {
    rec.batch.failures.push({
      index: rec.index,
      code,
      message: `${kafkaErrorName(code)}: ${message}`,
    });
    this.settle(rec.batch, false);
  }

  private settle(batch: BatchState, ok: boolean): void {
    if (ok) batch.delivered++;
    if (--batch.remaining === 0) {
      batch.resolve({ kind: 'batch', delivered: batch.delivered, failures: batch.failures });
    }
  }

  /** Resolves once every produced record has its delivery report, or after `boundMs`. */
  async settled(boundMs: number): Promise<void> {
    const until = performance.now() + boundMs;
    while (this.pending.size > 0 && performance.now() < until) {
      await new Promise((r) => setImmediate(r));
    }
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
