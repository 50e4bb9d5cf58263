import path from 'node:path';
import { Piscina } from 'piscina';
import type { Logger } from '../../observability/logger';
import { BroadcastChannel } from 'node:worker_threads';
import { PRODUCER_STATUS_CHANNEL } from './protocol';
import type {
  BatchResult,
  BatchTask,
  ProducerStatus,
  ShutdownResult,
  ShutdownTask,
  WhoamiResult,
  WhoamiTask,
  WorkerInit,
} from './protocol';
import { DependencyDriftError, ERROR_CODES as CODES } from '../../errors';
import { LaneBalancer, laneTask } from '../../seams/piscina';
import { KafkaProducerRunner } from './kafka-producer';

/**
 * A lane is one Kafka producer. Every batch names its lane, and a lane always maps to the same
 * producer, so records of one MQTT topic (hashed to one lane) reach Kafka in receive order.
 */
export interface ProducerLanes {
  readonly count: number;
  /** Producers that are connected with a reachable broker right now. */
  readonly ready: number;
  /** Resolves once every lane's producer thread runs and the lanes are bound to them. */
  start(): Promise<void>;
  run(lane: number, buffer: ArrayBuffer): Promise<BatchResult>;
  /**
   * Flushes and disconnects every producer. Resolves 'closed' when no native call is pending
   * anywhere, 'abandoned' when a producer's connect attempt is still pending: then no thread was
   * ended and the process must leave by hardExit (DESIGN.md, "Stopping").
   */
  close(flushTimeoutMs: number): Promise<'closed' | 'abandoned'>;
}

export class WorkerLanes implements ProducerLanes {
  private readonly pool: Piscina;
  private readonly balancer: LaneBalancer;
  private readonly status = new BroadcastChannel(PRODUCER_STATUS_CHANNEL);
  private readonly readyThreads = new Set<number>();

  constructor(
    readonly count: number,
    batchesPerWorker: number,
    init: WorkerInit,
    private readonly log: Logger,
  ) {
    this.balancer = new LaneBalancer(count);
    this.pool = new Piscina({
      filename: path.join(__dirname, 'thread.js'),
      minThreads: count,
      maxThreads: count,
      // Threads must only end through close(): an idle-timeout exit under a pending native
      // call of the producer crashes the process (DESIGN.md).
      idleTimeout: Infinity,
      concurrentTasksPerWorker: batchesPerWorker,
      // With atomics a worker waiting for its next task sleeps in Atomics.wait and does not run
      // its event loop, so librdkafka delivery reports queue up unseen (measured: 0 of 5000 in 2 s).
      atomics: 'disabled',
      // Our window bounds what is submitted; Piscina's own queue never holds more than that.
      maxQueue: Infinity as unknown as number,
      loadBalancer: this.balancer.balance,
      workerData: init,
    });
    this.pool.on('error', (err: unknown) =>
      this.log.error({ code: CODES.producerThread, err }, 'worker pool error'),
    );
    this.status.onmessage = (ev) => {
      const s = (ev as { data: ProducerStatus }).data;
      if (s.ready) this.readyThreads.add(s.threadId);
      else this.readyThreads.delete(s.threadId);
    };
    // Status updates must not keep the process alive once everything else closed.
    this.status.unref();
    this.log.info({ workers: count, batchesPerWorker }, 'worker pool started');
  }

  get ready(): number {
    return this.readyThreads.size;
  }

  /**
   * Asks every lane which thread runs it: each lane must reach its own thread, the one the
   * balancer bound it to. A Piscina that hands the balancer something else would break per-topic
   * order silently; here it fails the start instead.
   */
  async start(): Promise<void> {
    const answers = await Promise.all(
      Array.from(
        { length: this.count },
        (_, lane) =>
          this.pool.run(laneTask<WhoamiTask>({ kind: 'whoami' }, lane)) as Promise<WhoamiResult>,
      ),
    );
    const threads = answers.map((a) => a.threadId);
    const bound = threads.map((_, lane) => this.balancer.threadOf(lane));
    if (new Set(threads).size !== this.count || threads.some((t, lane) => t !== bound[lane])) {
      throw new DependencyDriftError(
        CODES.dependencyDrift,
        `producer lanes are not pinned to their threads (lanes reached threads ${threads.join(',')}, bound to ${bound.join(',')}); piscina must be the version src/seams/piscina.ts is pinned to`,
      );
    }
    this.log.info({ threads }, 'producer lanes bound to threads');
  }

  run(lane: number, buffer: ArrayBuffer): Promise<BatchResult> {
    const task = laneTask<BatchTask>({ kind: 'batch', buffer }, lane);
    return this.pool.run(task, { transferList: [buffer] }) as Promise<BatchResult>;
  }

  async close(flushTimeoutMs: number): Promise<'closed' | 'abandoned'> {
    // One shutdown task per lane, each pinned to its worker, so every producer is disconnected
    // before any thread is destroyed.
    const results = await Promise.allSettled(
      Array.from({ length: this.count }, (_, lane) => {
        const task = laneTask<ShutdownTask>({ kind: 'shutdown', flushTimeoutMs }, lane);
        return this.pool.run(task) as Promise<ShutdownResult>;
      }),
    );
    let abandoned = 0;
    for (const r of results) {
      if (r.status === 'rejected')
        this.log.error(
          { code: CODES.producerThread, err: r.reason },
          'worker shutdown task failed',
        );
      else if (r.value.outcome === 'abandoned') abandoned++;
    }
    this.status.close();
    const failed = results.filter((r) => r.status === 'rejected').length;
    if (abandoned > 0 || failed > 0) {
      // Destroying the pool would end a thread under a pending native call: a crash. A failed
      // shutdown task may have left one too.
      this.log.info(
        { workers: this.count, abandoned, failed },
        'worker pool left running: a Kafka connect attempt is pending or a shutdown task failed',
      );
      return 'abandoned';
    }
    await this.pool.destroy();
    this.log.info({ workers: this.count }, 'worker pool stopped');
    return 'closed';
  }
}

/** `dispatch.workers: 0`: the same producer code on the main thread, for one-core pods. */
export class InlineLanes implements ProducerLanes {
  readonly count = 1;
  private readonly runner: KafkaProducerRunner;
  private isReady = false;

  constructor(init: WorkerInit, log: Logger) {
    this.runner = new KafkaProducerRunner(init, log.child({ thread: 'main' }), (ready) => {
      this.isReady = ready;
    });
  }

  get ready(): number {
    return this.isReady ? 1 : 0;
  }

  start(): Promise<void> {
    return Promise.resolve();
  }

  run(_lane: number, buffer: ArrayBuffer): Promise<BatchResult> {
    return this.runner.handleBatch(buffer);
  }

  close(flushTimeoutMs: number): Promise<'closed' | 'abandoned'> {
    return this.runner.shutdown(flushTimeoutMs);
  }
}
