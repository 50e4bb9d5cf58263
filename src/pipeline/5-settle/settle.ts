/**
 * The way back, per record: Kafka confirmed it (count it down in the window), or refused it
 * for good, and the mapping's `on_error` policy decides — hold it and stop reading (`stop`),
 * acknowledge it anyway (`skip`), or send the original to a dead-letter topic (`dead_letter`).
 * Retriable failures never reach this module: the producer retries those itself.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Counter } from 'prom-client';
import type { Mapping } from '../../config/schema';
import { ERROR_CODES } from '../../errors';
import type { HistogramChild } from '../../observability/fast-histogram';
import type { Logger } from '../../observability/logger';
import { RateLimitedLog } from '../../observability/logger';
import type { Metrics } from '../../observability/metrics';
import { kafkaErrorName } from '../4-kafka-produce/kafka-errors';
import type { BatchResult, RecordFailure } from '../4-kafka-produce/protocol';
import type { InflightWindow } from '../6-mqtt-ack/window';
import type { PendingRecord } from '../record';
import { RetryTimers } from '../retry-timers';
import { deadLetterRecord } from './dead-letter';

/** What happens to a record Kafka refused permanently (see `on_error` in docs/CONFIG.md). */
export interface MappingPolicy {
  readonly name: string;
  readonly onError: 'stop' | 'skip' | 'dead_letter';
  /** The dead-letter topic (dead_letter only). */
  readonly deadLetterTopic?: string;
}

export function policiesOf(forwarding: readonly Mapping[]): MappingPolicy[] {
  return forwarding.map((m) => ({
    name: m.name,
    onError: m.on_error,
    ...(m.dead_letter_topic === undefined ? {} : { deadLetterTopic: m.dead_letter_topic }),
  }));
}

/** How a record goes out again: a dead-letter copy, or a held record offered once more. */
export interface Resend {
  /** Appends to the lane's open batch, like any routed record. */
  add(lane: number, r: PendingRecord): void;
  /** Queues `batch` as a sealed batch of its own. */
  retry(lane: number, batch: PendingRecord[]): void;
}

/** How often a record held by the `stop` policy is offered to Kafka again. */
export const STOP_RETRY_MS = 30_000;

/**
 * Why a record was not delivered. Kafka's refusals carry librdkafka's code and are retried under
 * `stop` (the topic's config or ACLs may change). What the forwarder itself refuses to send (a
 * payload over mqtt.max_payload_bytes, a rendered Kafka topic name Kafka cannot take) has no
 * Kafka code and is never retried: the payload will not shrink nor the topic's name change.
 */
export type Refusal =
  | { readonly origin: 'kafka'; readonly code: number; readonly message: string }
  | { readonly origin: 'forwarder'; readonly message: string };

/**
 * One config generation's mappings as the settler sees them: `slots[i]` is where the policy and
 * the metric children of the generation's mapping i are. A record names its mapping by its
 * index in the generation that routed it (record.ts); which generation that was follows from
 * its message's seq, since the router is swapped between two messages.
 */
interface Generation {
  /** Seq of the first message routed with this generation's mappings. */
  readonly fromSeq: number;
  readonly slots: readonly number[];
}

export class Settler {
  private readonly failureLog = new RateLimitedLog(5_000);
  // Per slot (see Generation), append-only: a record routed before a reload settles with the
  // policy it was routed with, however many reloads came since. Metric children are bound once
  // per slot: a label lookup per record would cost more.
  private readonly policies: MappingPolicy[] = [];
  private readonly forwarded: Counter.Internal[] = [];
  private readonly failed: Counter.Internal[] = [];
  private readonly skipped: Counter.Internal[] = [];
  private readonly deadLettered: Counter.Internal[] = [];
  private readonly latency: HistogramChild[] = [];
  /** Records confirmed per slot in the batch being settled; see settle(). */
  private readonly confirmedCounts: number[] = [];
  private readonly generations: Generation[] = [];
  /** Records held by the `stop` policy; reading from MQTT is paused while this is > 0. */
  private halted = 0;
  private reason: string | undefined;
  private readonly timers = new RetryTimers();

  constructor(
    private readonly window: InflightWindow,
    policies: readonly MappingPolicy[],
    private readonly resend: Resend,
    private readonly log: Logger,
    private readonly metrics: Metrics,
  ) {
    this.addGeneration(policies, 0);
  }

  /**
   * The policies of a reloaded config, for the records of messages admitted from `fromSeq` on
   * (records of older messages keep the policies they were routed with). A policy equal to one
   * of the previous generation keeps its slot, so the list grows only by what a reload changed.
   */
  addGeneration(policies: readonly MappingPolicy[], fromSeq: number): void {
    const previous = this.generations.at(-1)?.slots ?? [];
    const slots = policies.map((p) => {
      const kept = previous.find((s) => isDeepStrictEqual(this.policies[s], p));
      return kept ?? this.addSlot(p);
    });
    this.generations.push({ fromSeq, slots });
  }

  private addSlot(p: MappingPolicy): number {
    // Every mapping's series exists from the start at 0: a series that first appears at 1 hides
    // that first increase from rate()/increase(), i.e. the first refusal after a restart.
    const zeroed = (c: Counter.Internal): Counter.Internal => {
      c.inc(0);
      return c;
    };
    const m = this.metrics;
    this.forwarded.push(zeroed(m.forwarded.labels(p.name)));
    this.failed.push(zeroed(m.failed.labels(p.name)));
    this.skipped.push(zeroed(m.skipped.labels(p.name)));
    this.deadLettered.push(zeroed(m.deadLettered.labels(p.name)));
    this.latency.push(m.latency.labels(p.name));
    this.confirmedCounts.push(0);
    return this.policies.push(p) - 1;
  }

  /** The slot of a record's mapping: almost always of the newest generation, found first. */
  private slotOf(r: PendingRecord): number {
    const gens = this.generations;
    let g = gens.length - 1;
    while (g > 0 && r.entry.seq < gens[g]!.fromSeq) g--;
    return gens[g]!.slots[r.mapping]!;
  }

  /** Why reading is stopped (a held record's refusal), or undefined while nothing is held. */
  get haltReason(): string | undefined {
    return this.reason;
  }

  /** Kafka's answer for a whole batch of `lane`: one final outcome per record. */
  settle(lane: number, batch: readonly PendingRecord[], result: BatchResult): void {
    const now = performance.now();
    const counts = this.confirmedCounts;
    this.window.settling(() => {
      if (result.failures.length === 0) {
        for (const r of batch) this.confirm(r, now);
      } else {
        const failures = new Map<number, RecordFailure>(result.failures.map((f) => [f.index, f]));
        batch.forEach((r, i) => {
          const f = failures.get(i);
          if (f) this.refused(lane, r, { origin: 'kafka', code: f.code, message: f.message });
          else this.confirm(r, now);
        });
      }
    });
    // Counted per batch: a prom-client inc() per record costs as much as routing the record.
    for (let m = 0; m < counts.length; m++) {
      if (counts[m]! > 0) this.forwarded[m]!.inc(counts[m]);
      counts[m] = 0;
    }
  }

  /**
   * A record the forwarder itself will not send (larger than mqtt.max_payload_bytes, or a
   * rendered Kafka topic name Kafka cannot take): the mapping's error policy decides, exactly as
   * for a record Kafka refused.
   */
  reject(lane: number, r: PendingRecord, reason: string): void {
    this.refused(lane, r, { origin: 'forwarder', message: reason });
  }

  /**
   * Shutdown: pending retries of held records are cancelled; they stay unacknowledged and the
   * broker redelivers them.
   */
  stopRetries(): void {
    this.timers.cancelAll();
  }

  private confirm(r: PendingRecord, now: number): void {
    const slot = this.slotOf(r);
    if (r.deadLetter) this.deadLettered[slot]!.inc();
    else {
      this.confirmedCounts[slot]!++;
      this.latency[slot]!.observe((now - r.entry.receivedAt) / 1000);
    }
    if (r.halted) this.release(r);
    this.window.confirm(r.entry);
  }

  private refused(lane: number, r: PendingRecord, f: Refusal): void {
    const slot = this.slotOf(r);
    const policy = this.policies[slot]!;
    this.failed[slot]!.inc();
    // A dead-letter topic that refuses too leaves nothing safe to do but stop.
    const action = r.deadLetter ? 'stop' : policy.onError;
    // A flood of refusals must cost a counter each, not a message string and a log line each.
    const n = this.failureLog.take();
    // The first held record names why reading stops (readiness shows it).
    const startsHold = action === 'stop' && !r.halted && this.halted === 0;
    if (n >= 0 || startsHold) {
      const text = describe(policy.name, r, f, action);
      if (n >= 0) {
        this.log.error(
          {
            code: ERROR_CODES.kafkaDelivery,
            origin: f.origin,
            ...(f.origin === 'kafka' ? { kafkaError: kafkaErrorName(f.code) } : {}),
            mapping: policy.name,
            action,
            suppressed: n,
          },
          text,
        );
      }
      if (startsHold) this.reason = text;
    }
    switch (action) {
      case 'skip':
        // Lost on purpose, and said so: logged above, counted here, then acknowledged.
        this.skipped[slot]!.inc();
        if (r.halted) this.release(r);
        this.window.confirm(r.entry);
        return;
      case 'dead_letter':
        this.resend.add(lane, deadLetterRecord(r, policy.name, policy.deadLetterTopic!, f.message));
        return;
      case 'stop':
        if (!r.halted) this.hold(r);
        // Refused by the forwarder itself: retrying cannot help; it stays held until a restart
        // with another limit, template or policy. Whatever Kafka refused is offered again: its
        // limit, ACLs or topics may change while we wait.
        if (f.origin === 'forwarder') return;
        this.timers.later(STOP_RETRY_MS, () => this.resend.retry(lane, [r]));
        return;
    }
  }

  /** The first held record stops reading MQTT: nothing behind it may be acknowledged. */
  private hold(r: PendingRecord): void {
    r.halted = true;
    if (++this.halted > 1) return;
    this.window.pause();
    this.log.error(
      { code: ERROR_CODES.mappingHalted, reason: this.reason },
      'stopped reading MQTT: a message Kafka refuses is held (on_error: stop)',
    );
  }

  private release(r: PendingRecord): void {
    r.halted = false;
    if (--this.halted > 0) return;
    this.reason = undefined;
    this.window.resume();
    this.log.info('Kafka took the held message; reading MQTT again');
  }
}

function describe(
  mapping: string,
  r: PendingRecord,
  f: Refusal,
  action: MappingPolicy['onError'],
): string {
  const what =
    f.origin === 'kafka'
      ? `kafka refused a ${r.deadLetter ? 'dead-letter ' : ''}record`
      : 'message not sent';
  return `mapping ${mapping}: ${what} (${f.message}); on_error: ${action}`;
}
