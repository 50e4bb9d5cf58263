import type { Counter } from 'prom-client';
import type { HistogramChild } from '../observability/fast-histogram';
import { KafkaDeliveryError } from '../errors';
import type { Logger } from '../observability/logger';
import { RateLimitedLog } from '../observability/logger';
import type { Metrics } from '../observability/metrics';
import type { BatchResult, RecordFailure } from '../types';
import type { PackedRecord, RecordHeader } from '../worker/codec';
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

/** What happens to a record Kafka refused permanently (see `on_error` in docs/CONFIG.md). */
export interface MappingPolicy {
  readonly name: string;
  readonly onError: 'stop' | 'skip' | 'dead_letter';
  /** Index of the dead-letter topic in the producers' topic list (dead_letter only). */
  readonly deadLetterTopicIndex?: number;
}

interface PendingRecord extends PackedRecord {
  /** The MQTT topic as UTF-8 (the record key). */
  readonly key: Buffer;
  readonly entry: WindowEntry;
  readonly mapping: number;
  /** The MQTT payload as received (the value differs with wrap_as_json). */
  readonly payload: Buffer;
  /** Set on the copy sent to a dead-letter topic. */
  readonly deadLetter?: boolean;
  /** Counted in `halted` while a stop-policy retry of this record is pending. */
  halted?: boolean;
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

/** How often a record held by the `stop` policy is offered to Kafka again. */
export const STOP_RETRY_MS = 30_000;
const TASK_RETRY_MS = 1_000;

/**
 * Why a record was not delivered. Kafka's refusals carry librdkafka's code and are retried under
 * `stop` (the topic's config or ACLs may change); the forwarder's own payload limit has no Kafka
 * code and is never retried (the payload will not shrink).
 */
type Refusal =
  | { readonly origin: 'kafka'; readonly code: number; readonly message: string }
  | { readonly origin: 'payload_limit'; readonly message: string };

/**
 * Groups records into batches per lane and hands them to the lane's producer, never one task
 * per message (a Piscina round trip costs as much as producing ~30 records), and applies the
 * mappings' error policies to what Kafka refuses. Memory is bounded by the window, not here:
 * everything held here is also held by a window entry.
 */
export class Dispatcher {
  private readonly lanes: Lane[];
  private readonly failureLog = new RateLimitedLog(5_000);
  // Metric children bound once per mapping: a label lookup per record would cost more.
  private readonly forwarded: Counter.Internal[];
  private readonly failed: Counter.Internal[];
  private readonly skipped: Counter.Internal[];
  private readonly deadLettered: Counter.Internal[];
  private readonly latency: HistogramChild[];
  /** Records confirmed per mapping in the batch being settled; see onResult. */
  private readonly confirmedCounts: number[];
  /** Records held by the `stop` policy; reading from MQTT is paused while this is > 0. */
  private halted = 0;
  private retryTimers = new Set<NodeJS.Timeout>();
  private closing = false;

  constructor(
    private readonly producers: ProducerLanes,
    private readonly window: InflightWindow,
    private readonly opts: DispatchOptions,
    private readonly policies: readonly MappingPolicy[],
    private readonly log: Logger,
    private readonly metrics: Metrics,
    /** Called with true when the first record is halted, false when the last one went through. */
    private readonly onHalt: (halted: boolean, reason: string) => void,
  ) {
    const names = policies.map((p) => p.name);
    // Every mapping's series exists from the start at 0: a series that first appears at 1 hides
    // that first increase from rate()/increase(), i.e. the first refusal after a restart.
    const zeroed = (c: Counter.Internal): Counter.Internal => {
      c.inc(0);
      return c;
    };
    this.forwarded = names.map((m) => zeroed(metrics.forwarded.labels(m)));
    this.failed = names.map((m) => zeroed(metrics.failed.labels(m)));
    this.skipped = names.map((m) => zeroed(metrics.skipped.labels(m)));
    this.deadLettered = names.map((m) => zeroed(metrics.deadLettered.labels(m)));
    this.latency = names.map((m) => metrics.latency.labels(m));
    this.confirmedCounts = names.map(() => 0);
    this.lanes = Array.from({ length: producers.count }, (_, index) => ({
      index,
      open: [],
      timer: undefined,
      due: false,
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
    payload: Buffer,
  ): void {
    this.append(this.lanes[lane]!, { entry, mapping, topicIndex, key, value, payload });
  }

  /**
   * A message the forwarder itself will not send (larger than mqtt.max_payload_bytes): the
   * mapping's error policy decides, exactly as for a record Kafka refused.
   */
  reject(
    lane: number,
    entry: WindowEntry,
    mapping: number,
    key: Buffer,
    payload: Buffer,
    reason: string,
  ): void {
    const policy = this.policies[mapping]!;
    const r: PendingRecord = { entry, mapping, topicIndex: 0, key, value: payload, payload };
    this.refused(this.lanes[lane]!, r, { origin: 'payload_limit', message: reason }, policy);
  }

  /** Seals every open batch now (shutdown: nothing may wait for a linger timer). */
  flushAll(): void {
    for (const l of this.lanes) if (l.open.length > 0) this.seal(l);
  }

  /**
   * Shutdown: cancels pending retries and ignores tasks the pool abandons from now on; their
   * messages stay unacknowledged and the broker redelivers them.
   */
  stopRetries(): void {
    this.closing = true;
    for (const t of this.retryTimers) clearTimeout(t);
    this.retryTimers.clear();
  }

  private append(l: Lane, r: PendingRecord): void {
    l.open.push(r);
    if (l.open.length >= this.opts.batchSize) {
      this.seal(l);
    } else if (l.timer === undefined && !l.due) {
      l.timer =
        this.opts.lingerMs > 0
          ? setTimeout(() => this.lingered(l), this.opts.lingerMs)
          : setImmediate(() => this.lingered(l));
    }
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
        (result) => this.onResult(l, batch, result),
        (err: unknown) => this.onTaskError(l, batch, err),
      );
    }
  }

  private later(ms: number, fn: () => void): void {
    if (this.closing) return;
    const t = setTimeout(() => {
      this.retryTimers.delete(t);
      fn();
    }, ms);
    t.unref();
    this.retryTimers.add(t);
  }

  private onResult(l: Lane, batch: PendingRecord[], result: BatchResult): void {
    l.inFlight--;
    const now = performance.now();
    const counts = this.confirmedCounts;
    this.window.settling(() => {
      if (result.failures.length === 0) {
        for (const r of batch) this.confirm(r, now);
      } else {
        const failures = new Map<number, RecordFailure>(result.failures.map((f) => [f.index, f]));
        batch.forEach((r, i) => {
          const f = failures.get(i);
          if (f) this.refused(l, r, { origin: 'kafka', code: f.code, message: f.message });
          else this.confirm(r, now);
        });
      }
    });
    // Counted per batch: a prom-client inc() per record costs as much as routing the record.
    for (let m = 0; m < counts.length; m++) {
      if (counts[m]! > 0) this.forwarded[m]!.inc(counts[m]);
      counts[m] = 0;
    }
    this.pump(l);
  }

  private confirm(r: PendingRecord, now: number): void {
    if (r.deadLetter) this.deadLettered[r.mapping]!.inc();
    else {
      this.confirmedCounts[r.mapping]!++;
      this.latency[r.mapping]!.observe((now - r.entry.receivedAt) / 1000);
    }
    if (r.halted) {
      r.halted = false;
      if (--this.halted === 0) this.onHalt(false, '');
    }
    this.window.confirm(r.entry);
  }

  /**
   * Kafka refused `r` for a reason retrying will not fix, or it is over the forwarder's own
   * payload limit: apply the mapping's policy.
   */
  private refused(l: Lane, r: PendingRecord, f: Refusal, policy = this.policies[r.mapping]!): void {
    this.failed[r.mapping]!.inc();
    // A dead-letter topic that refuses too leaves nothing safe to do but stop.
    const action = r.deadLetter ? 'stop' : policy.onError;
    const what =
      f.origin === 'kafka'
        ? `kafka refused a ${r.deadLetter ? 'dead-letter ' : ''}record`
        : 'message not sent';
    const err = new KafkaDeliveryError(
      `mapping ${policy.name}: ${what} (${f.message}); on_error: ${action}`,
    );
    const n = this.failureLog.take();
    if (n >= 0) {
      this.log.error(
        {
          code: err.code,
          origin: f.origin,
          ...(f.origin === 'kafka' ? { kafkaError: kafkaErrorName(f.code) } : {}),
          mapping: policy.name,
          action,
          suppressed: n,
        },
        err.message,
      );
    }
    switch (action) {
      case 'skip':
        // Lost on purpose, and said so: logged above, counted here, then acknowledged.
        this.skipped[r.mapping]!.inc();
        if (r.halted && --this.halted === 0) this.onHalt(false, '');
        this.window.confirm(r.entry);
        return;
      case 'dead_letter':
        this.append(l, deadLetterRecord(r, policy, f));
        return;
      case 'stop':
        if (!r.halted) {
          r.halted = true;
          if (++this.halted === 1) this.onHalt(true, err.message);
        }
        // Over our own payload limit: retrying cannot help; it stays held until a restart with
        // another limit or policy. Whatever Kafka refused is offered again: its limit, ACLs or
        // topics may change while we wait.
        if (f.origin === 'payload_limit') return;
        this.later(STOP_RETRY_MS, () => {
          l.sealed.push([r]);
          this.pump(l);
        });
        return;
    }
  }

  private onTaskError(l: Lane, batch: PendingRecord[], err: unknown): void {
    l.inFlight--;
    if (this.closing) {
      this.log.debug({ lane: l.index, records: batch.length }, 'batch abandoned at shutdown');
      return;
    }
    this.log.error({ err, lane: l.index, records: batch.length }, 'batch task failed; retrying');
    this.later(TASK_RETRY_MS, () => {
      l.sealed.unshift(batch);
      this.pump(l);
    });
  }
}

/** The original message, as received, for the dead-letter topic; headers say where it failed. */
function deadLetterRecord(r: PendingRecord, policy: MappingPolicy, f: Refusal): PendingRecord {
  const headers: RecordHeader[] = [
    { key: 'mqtt_topic', value: r.key },
    { key: 'mqtt_qos', value: Buffer.from(String(r.entry.qos)) },
    { key: 'mqtt_retain', value: Buffer.from(String(r.entry.retain)) },
    { key: 'mapping', value: Buffer.from(policy.name) },
    { key: 'error', value: Buffer.from(f.message) },
  ];
  return {
    entry: r.entry,
    mapping: r.mapping,
    topicIndex: policy.deadLetterTopicIndex!,
    key: r.key,
    value: r.payload,
    payload: r.payload,
    headers,
    deadLetter: true,
  };
}
