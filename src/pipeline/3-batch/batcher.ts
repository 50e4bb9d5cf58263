/**
 * Groups routed records into batches per lane and hands them to the lane's producer, never one
 * task per message (a thread round trip costs as much as producing ~30 records). A lane has at
 * most `batchesPerLane` batches at its producer; the rest wait here, sealed or open. Memory is
 * bounded by the window, not here: everything held here is also held by a window entry.
 */
import { ERROR_CODES } from '../../errors';
import type { Logger } from '../../observability/logger';
import type { Metrics } from '../../observability/metrics';
import { packBatch } from '../4-kafka-produce/codec';
import type { ProducerLanes } from '../4-kafka-produce/lanes';
import type { BatchResult } from '../4-kafka-produce/protocol';
import type { PendingRecord } from '../record';
import { RetryTimers } from '../retry-timers';

export interface BatchOptions {
  /** Records per batch before it is sealed. */
  readonly batchSize: number;
  /** How long a non-full batch may wait for more records; 0 = until the current I/O turn ends. */
  readonly lingerMs: number;
  /** Batches a lane may have at its producer at once. */
  readonly batchesPerLane: number;
}

/** Where Kafka's answer for a batch goes: the way back (5-settle). */
export interface BatchOutcome {
  settle(lane: number, batch: readonly PendingRecord[], result: BatchResult): void;
}

interface Lane {
  readonly index: number;
  open: PendingRecord[];
  timer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  /** The open batch lingered long enough: it goes out as soon as the lane has a free slot. */
  due: boolean;
  /** Sealed batches waiting for the producer to have room. */
  readonly sealed: PendingRecord[][];
  inFlight: number;
}

/** A task that failed (not a Kafka answer: the thread or the pool) is sent again after this. */
const TASK_RETRY_MS = 1_000;

export class Batcher {
  private readonly lanes: Lane[];
  private readonly timers = new RetryTimers();

  constructor(
    private readonly producers: ProducerLanes,
    private readonly opts: BatchOptions,
    private readonly outcome: BatchOutcome,
    private readonly log: Logger,
    private readonly metrics: Metrics,
  ) {
    this.lanes = Array.from({ length: producers.count }, (_, index) => ({
      index,
      open: [],
      timer: undefined,
      due: false,
      sealed: [],
      inFlight: 0,
    }));
  }

  /** Appends `r` to its lane's open batch. */
  add(lane: number, r: PendingRecord): void {
    const l = this.lanes[lane]!;
    l.open.push(r);
    if (l.open.length >= this.opts.batchSize) {
      this.seal(l);
    } else if (l.timer === undefined && !l.due) {
      // Lingering gathers records while the lane's producer is busy anyway. A lane with nothing
      // at its producer sends at the end of this I/O turn: under light load, or behind a broker
      // that caps unacknowledged messages, a message waits for nothing (latency is throughput
      // there), and under heavy load every lane has batches out, so batches still fill.
      l.timer =
        this.opts.lingerMs > 0 && l.inFlight > 0
          ? setTimeout(() => this.lingered(l), this.opts.lingerMs)
          : setImmediate(() => this.lingered(l));
    }
  }

  /** Queues `batch` as a sealed batch of its own, behind what the lane already holds. */
  retry(lane: number, batch: PendingRecord[]): void {
    const l = this.lanes[lane]!;
    l.sealed.push(batch);
    this.pump(l);
  }

  /** Seals every open batch now (shutdown: nothing may wait for a linger timer). */
  flushAll(): void {
    for (const l of this.lanes) if (l.open.length > 0) this.seal(l);
  }

  /**
   * Shutdown: cancels pending task retries and ignores tasks the pool abandons from now on;
   * their messages stay unacknowledged and the broker redelivers them.
   */
  stopRetries(): void {
    this.timers.cancelAll();
  }

  /**
   * The linger time is over, but the batch only goes out once its lane has a free slot; until
   * then it keeps growing (up to batch_size). Sealing a small batch per linger period whatever
   * the lane's state queued them behind the lane's few slots: at 22k msg/s the window filled
   * with waiting batches and latency became window / rate (measured p50 41 ms, p99 85 ms).
   */
  private lingered(l: Lane): void {
    l.timer = undefined;
    l.due = true;
    this.pump(l);
  }

  private seal(l: Lane): void {
    if (l.timer !== undefined) {
      clearTimeout(l.timer as NodeJS.Timeout);
      clearImmediate(l.timer as NodeJS.Immediate);
      l.timer = undefined;
    }
    l.due = false;
    if (l.open.length === 0) return;
    l.sealed.push(l.open);
    l.open = [];
    this.pump(l);
  }

  private pump(l: Lane): void {
    for (;;) {
      if (l.inFlight >= this.opts.batchesPerLane) return;
      if (l.sealed.length === 0) {
        // A free slot and a batch that waited its linger time: send it now.
        if (!l.due || l.open.length === 0) return;
        this.seal(l);
        return;
      }
      const batch = l.sealed.shift()!;
      l.inFlight++;
      this.metrics.batchSize.observe(batch.length);
      this.producers.run(l.index, packBatch(batch)).then(
        (result) => {
          l.inFlight--;
          this.outcome.settle(l.index, batch, result);
          this.pump(l);
        },
        (err: unknown) => this.onTaskError(l, batch, err),
      );
    }
  }

  private onTaskError(l: Lane, batch: PendingRecord[], err: unknown): void {
    l.inFlight--;
    if (this.timers.isCancelled) {
      this.log.debug({ lane: l.index, records: batch.length }, 'batch abandoned at shutdown');
      return;
    }
    this.log.error(
      { code: ERROR_CODES.producerThread, err, lane: l.index, records: batch.length },
      'batch task failed; retrying',
    );
    this.timers.later(TASK_RETRY_MS, () => {
      l.sealed.unshift(batch);
      this.pump(l);
    });
  }
}
