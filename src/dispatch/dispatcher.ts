import { KafkaDeliveryError } from '../errors';
import type { Counter, Histogram } from 'prom-client';
import type { Logger } from '../observability/logger';
import type { Metrics } from '../observability/metrics';
import { RateLimitedLog } from '../observability/logger';
import type { BatchResult } from '../types';
import type { PackedRecord } from '../worker/codec';
import { packBatch } from '../worker/codec';
import { kafkaErrorName } from '../worker/kafka-errors';
import type { ProducerLanes } from './lanes';
import type { InflightWindow, WindowEntry } from './window';

export interface DispatchOptions {
  /** Records per batch before it is sealed. */
  readonly batchSize: number;
  /** How long a non-full batch may wait for more records; 0 = until the current I/O turn ends. */
  readonly lingerMs: number;
  /** Batches a lane may have at its producer at once. */
  readonly batchesPerLane: number;
}

interface PendingRecord extends PackedRecord {
  readonly entry: WindowEntry;
  readonly mapping: number;
}

interface Lane {
  readonly index: number;
  open: PendingRecord[];
  timer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  /** Sealed batches waiting for the producer to have room. */
  readonly sealed: PendingRecord[][];
  inFlight: number;
}

const RETRY_PERMANENT_MS = 5_000;

/**
 * Groups records into batches per lane and hands them to the lane's producer, never one task
 * per message (a Piscina round trip costs as much as producing ~30 records). Memory is bounded
 * by the window, not here: everything held here is also held by a window entry.
 */
export class Dispatcher {
  private readonly lanes: Lane[];
  private readonly failureLog = new RateLimitedLog(5_000);
  // Metric children bound once per mapping: a label lookup per record would cost more.
  private readonly forwarded: Counter.Internal[];
  private readonly failed: Counter.Internal[];
  private readonly latency: Histogram.Internal<'mapping'>[];

  constructor(
    private readonly producers: ProducerLanes,
    private readonly window: InflightWindow,
    private readonly opts: DispatchOptions,
    private readonly mappingNames: readonly string[],
    private readonly log: Logger,
    private readonly metrics: Metrics,
  ) {
    this.forwarded = mappingNames.map((m) => metrics.forwarded.labels(m));
    this.failed = mappingNames.map((m) => metrics.failed.labels(m));
    this.latency = mappingNames.map((m) => metrics.latency.labels(m));
    this.lanes = Array.from({ length: producers.count }, (_, index) => ({
      index,
      open: [],
      timer: undefined,
      sealed: [],
      inFlight: 0,
    }));
  }

  add(
    lane: number,
    entry: WindowEntry,
    mapping: number,
    topicIndex: number,
    key: Buffer,
    value: Buffer,
  ): void {
    const l = this.lanes[lane]!;
    l.open.push({ entry, mapping, topicIndex, key, value });
    if (l.open.length >= this.opts.batchSize) {
      this.seal(l);
    } else if (l.timer === undefined) {
      l.timer =
        this.opts.lingerMs > 0
          ? setTimeout(() => this.seal(l), this.opts.lingerMs)
          : setImmediate(() => this.seal(l));
    }
  }

  /** Seals every open batch now (shutdown: nothing may wait for a linger timer). */
  flushAll(): void {
    for (const l of this.lanes) if (l.open.length > 0) this.seal(l);
  }

  private seal(l: Lane): void {
    if (l.timer !== undefined) {
      clearTimeout(l.timer as NodeJS.Timeout);
      clearImmediate(l.timer as NodeJS.Immediate);
      l.timer = undefined;
    }
    if (l.open.length === 0) return;
    l.sealed.push(l.open);
    l.open = [];
    this.pump(l);
  }

  private pump(l: Lane): void {
    while (l.inFlight < this.opts.batchesPerLane && l.sealed.length > 0) {
      const batch = l.sealed.shift()!;
      l.inFlight++;
      this.metrics.batchSize.observe(batch.length);
      this.producers.run(l.index, packBatch(batch)).then(
        (result) => this.onResult(l, batch, result),
        (err: unknown) => this.onTaskError(l, batch, err),
      );
    }
  }

  private onResult(l: Lane, batch: PendingRecord[], result: BatchResult): void {
    l.inFlight--;
    const now = performance.now();
    if (result.failures.length === 0) {
      for (const r of batch) this.confirm(r, now);
    } else {
      const failed = new Set<number>();
      for (const f of result.failures) {
        failed.add(f.index);
        this.failed[batch[f.index]!.mapping]!.inc();
        this.reportFailure(batch[f.index]!, f.code, f.message);
      }
      const retry: PendingRecord[] = [];
      for (let i = 0; i < batch.length; i++) {
        if (failed.has(i)) retry.push(batch[i]!);
        else this.confirm(batch[i]!, now);
      }
      // Kafka refused these for a reason retrying will not fix by itself (size, ACL, missing
      // topic). Until per-mapping error policies exist they are held and retried, so nothing is
      // lost; the rate-limited error line above says why the window is not draining.
      setTimeout(() => {
        l.sealed.push(retry);
        this.pump(l);
      }, RETRY_PERMANENT_MS).unref();
    }
    this.pump(l);
  }

  private confirm(r: PendingRecord, now: number): void {
    this.forwarded[r.mapping]!.inc();
    this.latency[r.mapping]!.observe((now - r.entry.receivedAt) / 1000);
    this.window.confirm(r.entry);
  }

  private onTaskError(l: Lane, batch: PendingRecord[], err: unknown): void {
    l.inFlight--;
    this.log.error({ err, lane: l.index, records: batch.length }, 'batch task failed; retrying');
    setTimeout(() => {
      l.sealed.unshift(batch);
      this.pump(l);
    }, RETRY_PERMANENT_MS).unref();
  }

  private reportFailure(r: PendingRecord, code: number, message: string): void {
    const n = this.failureLog.take();
    if (n < 0) return;
    const err = new KafkaDeliveryError(
      `kafka refused a record of mapping ${this.mappingNames[r.mapping]}: ${message}; holding it (not acknowledged) and retrying every ${RETRY_PERMANENT_MS} ms`,
    );
    this.log.error(
      {
        code: err.code,
        kafkaError: kafkaErrorName(code),
        mapping: this.mappingNames[r.mapping],
        suppressed: n,
      },
      err.message,
    );
  }
}
