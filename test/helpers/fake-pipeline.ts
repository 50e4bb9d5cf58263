/**
 * The batch → produce → settle → window part of the pipeline with a scripted producer lane in
 * place of Kafka: deterministic tests of batching, linger and every on_error path, in
 * milliseconds, with node:test's mocked timers. What it fakes is only what a real lane returns
 * (tests against real brokers check that the real lanes do return it).
 */
import { createLogger } from '../../src/observability/logger';
import { Metrics } from '../../src/observability/metrics';
import { Batcher } from '../../src/pipeline/3-batch/batcher';
import type { BatchOptions } from '../../src/pipeline/3-batch/batcher';
import { forEachRecord } from '../../src/pipeline/4-kafka-produce/codec';
import type { ProducerLanes } from '../../src/pipeline/4-kafka-produce/lanes';
import type { BatchResult, RecordFailure } from '../../src/pipeline/4-kafka-produce/protocol';
import { Settler } from '../../src/pipeline/5-settle/settle';
import type { MappingPolicy } from '../../src/pipeline/5-settle/settle';
import { InflightWindow } from '../../src/pipeline/6-mqtt-ack/window';
import type { WindowEntry } from '../../src/pipeline/6-mqtt-ack/window';
import type { PendingRecord } from '../../src/pipeline/record';

export interface SentRecord {
  readonly lane: number;
  readonly topicIndex: number;
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
  /** true on each window pause (a stop-policy hold), false on each resume. */
  readonly halts: boolean[];
  /** Answers the next batches with this; shift()ed per batch, falling back to "confirm all". */
  readonly answers: Answer[];
  /** When true, batches wait in `pending` until answered by hand. */
  hold: boolean;
  /** Admits one message (QoS 1, packet id `id`) for `mappings` mappings. */
  admit(id: number, mappings?: number): WindowEntry;
  /** A routed record of `entry` for `mapping`, as 2-route builds it. */
  record(entry: WindowEntry, mapping?: number, value?: string, topicIndex?: number): PendingRecord;
  /** Lets the promise callbacks of answered batches run. */
  turn(): Promise<void>;
}

export function fakePipeline(
  opts: Partial<BatchOptions> & { lanes?: number; policies?: MappingPolicy[] } = {},
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
      forEachRecord(buffer, (_i, topicIndex, key, value, headers) =>
        sent.push({
          lane,
          topicIndex,
          key: key.toString(),
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
  const window = new InflightWindow(1000, 1_000_000, (r) =>
    released.push(...r.map((e) => e.messageId)),
  );
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
  const log = createLogger('silent');
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
  return {
    window,
    batcher,
    settler,
    metrics,
    batches,
    pending,
    released,
    halts,
    answers,
    get hold() {
      return state.hold;
    },
    set hold(v: boolean) {
      state.hold = v;
    },
    admit: (id, mappings = 1) => window.admit(1, id, 1, 4, mappings),
    record: (entry, mapping = 0, value = `v${entry.messageId}`, topicIndex = 0) => {
      const v = Buffer.from(value);
      return { entry, mapping, topicIndex, key: Buffer.from('a/b'), value: v, payload: v };
    },
    turn: () => new Promise((r) => setImmediate(r)),
  };
}
