/**
 * Kafka-only ceiling: the engine's own producer path without MQTT. Records are packed with the
 * engine's batch codec and handed to the engine's ProducerLanes: InlineLanes (the
 * KafkaProducerRunner on this thread, `dispatch.workers: 0`) or WorkerLanes (the engine's Piscina
 * pool of producer workers, one producer per worker). The producer settings come from the
 * engine's config schema and buildProducerConfig, so they are exactly the forwarder's defaults.
 */
import {
  InlineLanes,
  WorkerLanes,
  buildProducerConfig,
  configSchema,
  createLogger,
  packBatch,
} from '../engine';
import type { PackedRecord, ProducerLanes, WorkerInit } from '../engine';
import { encodePayload, nowMs, payloadTemplate } from '../load/payload';
import { ensureTopic } from '../measure/kafka-consumer';
import { percentile } from '../measure/stats';
import type { KafkaCeilingResult } from '../types';

export interface KafkaCeilingOptions {
  readonly host: string;
  readonly port: number;
  readonly topic: string;
  readonly messages: number;
  readonly payloadSize: number;
  /** Record keys `bench/0..keys-1`, as the forwarder keys by MQTT topic. */
  readonly keys: number;
  /** 0: producer on the main thread; n: n Piscina workers. */
  readonly workers: number;
  readonly batchSize: number;
  readonly batchesPerWorker: number;
  readonly timeoutMs: number;
  /** Extra librdkafka properties (kafka.config). */
  readonly kafkaConfig?: Record<string, string | number | boolean>;
}

/**
 * node-rdkafka clients must never be garbage-collected after disconnect (the native destructor
 * aborts the process, see docs/DESIGN.md): every lane set stays referenced until exit.
 */
const keepAlive: ProducerLanes[] = [];

export async function kafkaCeiling(o: KafkaCeilingOptions): Promise<KafkaCeilingResult> {
  await ensureTopic(`${o.host}:${o.port}`, o.topic);
  const cfg = configSchema.parse({
    kafka: { bootstrap_server: o.host, port: o.port, config: o.kafkaConfig ?? {} },
    forwarding: [{ name: 'ceiling', mqtt: { topic: 'bench/#' }, kafka: { topic: o.topic } }],
    dispatch: {
      workers: o.workers,
      batch_size: o.batchSize,
      batches_per_worker: o.batchesPerWorker,
    },
    log_level: 'warn',
  });
  const producer = buildProducerConfig(cfg);
  const init: WorkerInit = {
    global: producer.global,
    topic: producer.topic,
    connectTimeoutMs: cfg.dispatch.kafka_connect_timeout_ms,
    logLevel: 'warn',
  };
  // Warnings only: the result is the last line on stdout, after any log lines.
  const log = createLogger('warn', { name: 'kafka-ceiling' });
  const lanes: ProducerLanes =
    o.workers === 0
      ? new InlineLanes(init, log)
      : new WorkerLanes(o.workers, o.batchesPerWorker, init, log);
  keepAlive.push(lanes);
  try {
    // As the forwarder does: every lane must reach its own thread before anything is produced.
    await lanes.start();
    const readyBy = Date.now() + 30_000;
    while (lanes.ready < lanes.count) {
      if (Date.now() > readyBy) throw new Error('kafka producers not ready within 30 s');
      await new Promise((r) => setTimeout(r, 50));
    }
    return await produceAll(o, lanes);
  } finally {
    await lanes.close(5_000);
  }
}

async function produceAll(
  o: KafkaCeilingOptions,
  lanes: ProducerLanes,
): Promise<KafkaCeilingResult> {
  const template = payloadTemplate(o.payloadSize);
  const keys = Array.from({ length: o.keys }, (_, i) => Buffer.from(`bench/${i}`));
  const batches = Math.ceil(o.messages / o.batchSize);
  const inflightPerLane = new Array<number>(lanes.count).fill(0);
  const batchMs: number[] = [];
  let next = 0;
  let done = 0;
  let delivered = 0;
  let failed = 0;
  let timedOut = false;
  const elu0 = performance.eventLoopUtilization();
  const t0 = performance.now();
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      timedOut = true;
      resolve();
    }, o.timeoutMs);
    const submit = (): void => {
      for (let lane = 0; lane < lanes.count; lane++) {
        while (inflightPerLane[lane]! < o.batchesPerWorker && next < batches) {
          const b = next++;
          const n = Math.min(o.batchSize, o.messages - b * o.batchSize);
          // Packed here, per batch, as the dispatcher does: that cost is part of the path.
          const records: PackedRecord[] = new Array<PackedRecord>(n);
          for (let i = 0; i < n; i++) {
            const seq = b * o.batchSize + i;
            records[i] = {
              kafkaTopic: o.topic,
              key: keys[seq % o.keys]!,
              value: encodePayload(template, 0, seq, seq % o.keys, nowMs()),
            };
          }
          inflightPerLane[lane]!++;
          const sent = performance.now();
          lanes.run(lane, packBatch(records)).then(
            (r) => {
              batchMs.push(performance.now() - sent);
              delivered += r.delivered;
              failed += r.failures.length;
              inflightPerLane[lane]!--;
              if (++done === batches) {
                clearTimeout(timer);
                resolve();
              } else submit();
            },
            () => {
              failed += n;
              inflightPerLane[lane]!--;
              if (++done === batches) {
                clearTimeout(timer);
                resolve();
              } else submit();
            },
          );
        }
      }
    };
    submit();
  });
  const durationS = (performance.now() - t0) / 1000;
  const sorted = Float64Array.from(batchMs).sort();
  return {
    workers: o.workers,
    mode: o.workers === 0 ? 'main thread (inline)' : `${o.workers} worker thread(s)`,
    messages: o.messages,
    delivered,
    failed,
    msgS: delivered / durationS,
    durationS,
    batchP50Ms: percentile(sorted, 0.5),
    batchP99Ms: percentile(sorted, 0.99),
    mainBusy: performance.eventLoopUtilization(elu0).utilization,
    timedOut,
  };
}
