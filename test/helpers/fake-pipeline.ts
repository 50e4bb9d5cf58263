/**
 * The batch → produce → settle → window part of the pipeline with a scripted producer lane in
 * place of Kafka: deterministic tests of batching, linger and every on_error path, in
 * milliseconds, with node:test's mocked timers. What it fakes is only what a real lane returns
 * (tests against real brokers check that the real lanes do return it).
 */
import assert from 'node:assert/strict';
import pino from 'pino';
import { createLogger } from '../../src/observability/logger';
import type { Logger } from '../../src/observability/logger';
import { Metrics } from '../../src/observability/metrics';
import { Batcher } from '../../src/pipeline/3-batch/batcher';
import type { BatchOptions } from '../../src/pipeline/3-batch/batcher';
import { forEachRecord } from '../../src/pipeline/4-kafka-produce/codec';
import type { ProducerLanes } from '../../src/pipeline/4-kafka-produce/lanes';
import type { BatchResult, RecordFailure } from '../../src/pipeline/4-kafka-produce/protocol';
import { Settler } from '../../src/pipeline/5-settle/settle';
import type { MappingPolicy } from '../../src/pipeline/5-settle/settle';
import { InflightWindow } from '../../src/pipeline/6-mqtt-ack/window';
import type { RouteMapping } from '../../src/pipeline/2-route/router';
import type { WindowEntry } from '../../src/pipeline/6-mqtt-ack/window';
import type { PendingRecord } from '../../src/pipeline/record';

export interface SentRecord {
  readonly lane: number;
  readonly kafkaTopic: string;
  readonly key: string;
  readonly value: string;
  readonly headers: Record<string, string>;
}

/** Decides Kafka's answer for one batch; by default every record is confirmed. */
export type Answer = (batch: readonly SentRecord[]) => readonly RecordFailure[] | 'task-error';

export interface FakePipeline {
  readonly window: InflightWindow;
  readonly batcher: Batcher;
  readonly settler: Settler;
  readonly metrics: Metrics;
  /** Every batch handed to a lane, in order. */
  readonly batches: SentRecord[][];
  /** Batches handed to a lane whose answer has not been given yet (see `hold`). */
  readonly pending: { lane: number; answer: () => void }[];
  /** messageIds released (acked) by the window, in order. */
  readonly released: number[];
  /** The same, one array per release: what the ack gate writes to the socket at once. */
  readonly releases: number[][];
  /** true on each window pause (a stop-policy hold), false on each resume. */
  readonly halts: boolean[];
  /** Answers the next batches with this; shift()ed per batch, falling back to "confirm all". */
  readonly answers: Answer[];
  /** When true, batches wait in `pending` until answered by hand. */
  hold: boolean;
  /** Admits one message (QoS 1, packet id `id`) for `mappings` mappings. */
  admit(id: number, mappings?: number): WindowEntry;
  /** A routed record of `entry` for `mapping`, as 2-route builds it. */
  record(entry: WindowEntry, mapping?: number, value?: string, kafkaTopic?: string): PendingRecord;
  /** Admits message `id` for one mapping and adds its record to `lane`'s open batch. */
  send(id: number, lane?: number, mapping?: number): void;
  /** Answers the oldest batch waiting at `lane` (see `hold`) and lets its result settle. */
  answer(lane?: number): Promise<void>;
  /** Lets the promise callbacks of answered batches run. */
  turn(): Promise<void>;
  /** The value of a per-mapping counter (e.g. mkf_messages_forwarded_total) for `mapping`. */
  counter(name: string, mapping?: string): Promise<number>;
}

/** An answer refusing (librdkafka `code`) the records `which` picks; the others are confirmed. */
export function refuse(
  code: number,
  message: string,
  which: (r: SentRecord) => boolean = () => true,
): Answer {
  return (batch) => batch.flatMap((r, index) => (which(r) ? [{ index, code, message }] : []));
}

/** A logger whose JSON lines land in `lines`, synchronously (createLogger writes to fd 1). */
export function capturedLogger(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const log = pino(
    { level: 'debug' },
    { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) },
  );
  return { log, lines };
}

export function fakePipeline(
  opts: Partial<BatchOptions> & { lanes?: number; policies?: MappingPolicy[]; log?: Logger } = {},
): FakePipeline {
  const batches: SentRecord[][] = [];
  const pending: FakePipeline['pending'] = [];
  const answers: Answer[] = [];
  const state = { hold: false };
  const lanes: ProducerLanes = {
    count: opts.lanes ?? 1,
    ready: opts.lanes ?? 1,
    run(lane, buffer) {
      const sent: SentRecord[] = [];
      forEachRecord(buffer, (_i, kafkaTopic, key, value, headers) =>
        sent.push({
          lane,
          kafkaTopic,
          key: key?.toString() ?? '(no key)',
          value: value.toString(),
          headers: Object.fromEntries(
            (headers ?? []).flatMap((h) => Object.entries(h).map(([k, v]) => [k, v.toString()])),
          ),
        }),
      );
      batches.push(sent);
      return new Promise<BatchResult>((resolve, reject) => {
        const answer = (): void => {
          const a = (answers.shift() ?? (() => []))(sent);
          if (a === 'task-error') reject(new Error('task failed (fake)'));
          else resolve({ kind: 'batch', delivered: sent.length - a.length, failures: a });
        };
        if (state.hold) pending.push({ lane, answer });
        else answer();
      });
    },
    start: () => Promise.resolve(),
    close: () => Promise.resolve('closed'),
  };
  const released: number[] = [];
  const releases: number[][] = [];
  const window = new InflightWindow(1000, 1_000_000, (r) => {
    const ids = r.map((e) => e.messageId);
    released.push(...ids);
    releases.push(ids);
  });
  const halts: boolean[] = [];
  const pause = window.pause.bind(window);
  const resume = window.resume.bind(window);
  window.pause = () => {
    halts.push(true);
    pause();
  };
  window.resume = () => {
    halts.push(false);
    resume();
  };
  const metrics = new Metrics({
    received: () => 0,
    inflightMessages: () => window.size,
    inflightBytes: () => window.bytes,
    producersReady: () => lanes.ready,
  });
  const log = opts.log ?? createLogger('silent');
  const bound: { settler?: Settler } = {};
  const batcher = new Batcher(
    lanes,
    {
      batchSize: opts.batchSize ?? 1,
      lingerMs: opts.lingerMs ?? 0,
      batchesPerLane: opts.batchesPerLane ?? 1,
    },
    { settle: (lane, batch, result) => bound.settler!.settle(lane, batch, result) },
    log,
    metrics,
  );
  const settler = (bound.settler = new Settler(
    window,
    opts.policies ?? [{ name: 'm', onError: 'stop' }],
    batcher,
    log,
    metrics,
  ));
  const admit: FakePipeline['admit'] = (id, mappings = 1) => window.admit(1, id, 1, 4, mappings);
  const record: FakePipeline['record'] = (
    entry,
    mapping = 0,
    value = `v${entry.messageId}`,
    kafkaTopic = 'out',
  ) => {
    const v = Buffer.from(value);
    const topic = Buffer.from('a/b');
    return { entry, mapping, kafkaTopic, key: topic, mqttTopic: topic, value: v, payload: v };
  };
  const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
  return {
    window,
    batcher,
    settler,
    metrics,
    batches,
    pending,
    released,
    releases,
    halts,
    answers,
    get hold() {
      return state.hold;
    },
    set hold(v: boolean) {
      state.hold = v;
    },
    admit,
    record,
    send: (id, lane = 0, mapping = 0) => batcher.add(lane, record(admit(id), mapping)),
    async answer(lane = 0) {
      const i = pending.findIndex((x) => x.lane === lane);
      assert.ok(i >= 0, `a batch of lane ${lane} is waiting for its answer`);
      pending.splice(i, 1)[0]!.answer();
      await turn();
    },
    turn,
    counter: async (name, mapping = 'm') => {
      const metric = metrics.registry.getSingleMetric(name);
      if (!metric) throw new Error(`no metric ${name}`);
      const sample = (await metric.get()).values.find((v) => v.labels['mapping'] === mapping);
      if (!sample) throw new Error(`${name} has no series for mapping ${mapping}`);
      return sample.value;
    },
  };
}

/** A route mapping as 2-route/mappings.ts builds it: to topic `out`, the MQTT topic as key. */
export function routeMapping(filter: string, qos: 0 | 1 | 2 = 2): RouteMapping {
  return {
    filter,
    qos,
    kafkaTopic: [{ kind: 'text', text: 'out' }],
    key: [{ kind: 'topic' }],
    wrap: false,
  };
}
