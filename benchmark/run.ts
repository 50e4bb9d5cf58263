/**
 * One benchmark run: publish N messages to MQTT, count them where they arrive (a Kafka topic
 * read by kcat, or an MQTT subscriber for the ceiling), report. Bounded: the publish phase by
 * `timeoutMs`, the drain by `idleTimeoutMs` without a new arrival and by `timeoutMs` overall;
 * what has not arrived by then is reported lost.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { decodePayload, unwrapJson } from './load/payload';
import { renderPlot } from './report/plot';
import type { PlotPanel } from './report/plot';
import { MachineSampler, ProcSampler } from './measure/proc-sampler';
import type { MachineSummary, ProcSummary } from './measure/proc-sampler';
import { Progress } from './report/progress';
import { Publisher } from './load/publisher';
import type { PublisherClient, PublisherConfig, PublisherResult } from './load/publisher';
import type { Sink, SinkInfo } from './sink';
import { fmtInt, fmtMs, latencies, series, summarize, throughput } from './measure/stats';
import type { LatencySummary, Series, Throughput } from './measure/stats';
import { Tracker } from './measure/tracker';
import type { ReceiptCounts } from './measure/tracker';

export interface RunOptions {
  readonly label: string;
  readonly messages: number;
  readonly qos: 0 | 1 | 2;
  readonly rate: number;
  /** Kafka values are `wrap_as_json` wrappers: unwrap before checking. */
  readonly wrapped: boolean;
  readonly payloadSize: number;
  readonly topics: number;
  readonly protocolVersion: 4 | 5;
  readonly connections: number;
  readonly window: number;
  /** The load generator's MQTT client; default 'raw'. */
  readonly publisherClient?: PublisherClient;
  readonly mqttHost: string;
  readonly mqttPort: number;
  readonly topicPrefix: string;
  /**
   * Messages published (and awaited in the sink) before the measured run, under another run id:
   * the first records pay for topic metadata and connection set-up, which is not throughput.
   */
  readonly warmup?: number;
  /** Sampled for RSS and CPU while the run lasts. */
  readonly forwarderPid?: number;
  /** Other processes whose CPU is reported (brokers); this process is always included. */
  readonly watchPids?: Readonly<Record<string, number>>;
  readonly idleTimeoutMs: number;
  readonly timeoutMs: number;
  /** SVG written here when set. */
  readonly plotFile?: string;
  readonly quiet?: boolean;
}

export type EndReason = 'complete' | 'idle-timeout' | 'timeout' | 'publish-error';

export interface RunResult {
  readonly label: string;
  readonly sink: string;
  readonly startedAt: string;
  readonly params: Omit<RunOptions, 'quiet' | 'plotFile' | 'label'>;
  readonly publisher: Omit<PublisherResult, 'publishTimes'> & {
    readonly msgS: number;
    readonly notSent: number;
  };
  readonly counts: ReceiptCounts & { readonly lost: number; readonly missingSample: number[] };
  readonly warmup: { readonly messages: number; readonly arrived: number };
  readonly throughput: Throughput | undefined;
  readonly latencyMs: LatencySummary;
  readonly sinkInfo: SinkInfo;
  readonly forwarder?: Omit<ProcSummary, 'samples'>;
  readonly machine: MachineSummary;
  readonly endReason: EndReason;
  readonly drainS: number;
  readonly plotFile?: string;
  readonly series: Series;
  readonly procSamples?: ProcSummary['samples'];
}

const POLL_MS = 100;
const WARMUP_MS = 30_000;
/** Arrivals stalled this long before the end: ask the sink for what it buffers. */
const FLUSH_AFTER_MS = 300;

/** Polls `done`, flushing the sink when arrivals pause; false after `timeoutMs`. */
async function waitFor(done: () => boolean, sink: Sink, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  let flushedAt = performance.now();
  while (!done()) {
    if (performance.now() > deadline) return false;
    if (performance.now() - flushedAt > FLUSH_AFTER_MS) {
      flushedAt = performance.now();
      await sink.flush();
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

function omit<T extends object, K extends keyof T>(obj: T, ...keys: K[]): Omit<T, K> {
  const out = { ...obj } as Record<PropertyKey, unknown>;
  for (const k of keys) delete out[k];
  return out as Omit<T, K>;
}

export async function runBenchmark(opts: RunOptions, sink: Sink): Promise<RunResult> {
  const runId = (Math.random() * 0xffffffff) >>> 0;
  const tracker = new Tracker(runId, opts.messages, opts.topics);
  const startedAt = new Date().toISOString();
  const warmupRunId = (runId ^ 0x80000000) >>> 0;
  let warmupArrived = 0;
  await sink.start((value, arrivedAt) => {
    const raw = opts.wrapped ? unwrapJson(value) : value;
    const p = raw === undefined ? undefined : decodePayload(raw);
    if (p?.runId === warmupRunId) warmupArrived++;
    else tracker.record(p, arrivedAt);
  });
  const pubCfg: PublisherConfig = {
    client: opts.publisherClient ?? 'raw',
    host: opts.mqttHost,
    port: opts.mqttPort,
    protocolVersion: opts.protocolVersion,
    qos: opts.qos,
    messages: opts.messages,
    topics: opts.topics,
    topicPrefix: opts.topicPrefix,
    payloadSize: opts.payloadSize,
    rate: opts.rate,
    window: opts.window,
    connections: opts.connections,
    runId,
    timeoutMs: opts.timeoutMs,
  };
  if ((opts.warmup ?? 0) > 0) {
    const w = await new Publisher({
      ...pubCfg,
      runId: warmupRunId,
      messages: opts.warmup!,
      rate: 0,
      timeoutMs: WARMUP_MS,
    }).done;
    await waitFor(() => warmupArrived >= w.sent, sink, WARMUP_MS);
  }
  const t0 = performance.now();
  const sampler =
    opts.forwarderPid === undefined ? undefined : new ProcSampler(opts.forwarderPid, 250);
  const samplerStart = Date.now();
  const machine = new MachineSampler(
    {
      ...(opts.forwarderPid === undefined ? {} : { forwarder: opts.forwarderPid }),
      ...opts.watchPids,
      'benchmark (publisher + consumer)': process.pid,
    },
    os.cpus().length,
  );
  const publisher = new Publisher(pubCfg);
  let phase = 'publish';
  const progress = new Progress(
    opts.label,
    () => ({
      phase,
      total: opts.messages,
      published: publisher.progress.sent,
      acked: publisher.progress.acked,
      received: tracker.received,
      unique: tracker.unique,
    }),
    opts.quiet,
  );

  let pub: PublisherResult;
  let endReason: EndReason = 'complete';
  try {
    pub = await publisher.done;
  } catch (err) {
    progress.stop();
    await sink.stop();
    sampler?.stop();
    machine.stop();
    throw err;
  }
  if (pub.error !== undefined) endReason = 'publish-error';
  phase = 'drain';
  const drainStart = performance.now();
  let lastUnique = tracker.unique;
  let lastProgressAt = performance.now();
  let flushedAt = 0;
  for (;;) {
    const now = performance.now();
    if (tracker.unique >= pub.sent) break;
    if (tracker.unique !== lastUnique) {
      lastUnique = tracker.unique;
      lastProgressAt = now;
    }
    if (now - t0 > opts.timeoutMs) {
      endReason = 'timeout';
      break;
    }
    if (now - lastProgressAt > opts.idleTimeoutMs) {
      if (endReason === 'complete') endReason = 'idle-timeout';
      break;
    }
    if (now - lastProgressAt > FLUSH_AFTER_MS && now - flushedAt > FLUSH_AFTER_MS) {
      flushedAt = now;
      await sink.flush();
      continue;
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  const drainS = (performance.now() - drainStart) / 1000;
  progress.stop();
  const sinkInfo = await sink.stop();
  const proc = sampler?.stop();
  const machineSummary = machine.stop();

  const counts = tracker.result();
  const lost = tracker.lost(pub.sent);
  const tp = throughput(tracker, pub.publishTimes);
  const ser = series(tracker, pub.publishTimes);
  const samples = proc?.samples;
  const result: RunResult = {
    label: opts.label,
    sink: sink.name,
    startedAt,
    params: omit(opts, 'quiet', 'plotFile', 'label'),
    publisher: {
      ...omit(pub, 'publishTimes'),
      msgS: (pub.acked * 1000) / Math.max(1, pub.endedAt - pub.startedAt),
      notSent: opts.messages - pub.sent,
    },
    counts: { ...counts, lost, missingSample: tracker.missingSample(pub.sent) },
    warmup: { messages: opts.warmup ?? 0, arrived: warmupArrived },
    throughput: tp,
    latencyMs: summarize(latencies(tracker)),
    sinkInfo,
    ...(proc ? { forwarder: omit(proc, 'samples') } : {}),
    machine: machineSummary,
    endReason,
    drainS,
    series: ser,
    ...(samples
      ? {
          procSamples: samples.map((s) => ({
            ...s,
            t: s.t + samplerStart - ser.startAt,
          })),
        }
      : {}),
    ...(opts.plotFile ? { plotFile: opts.plotFile } : {}),
  };
  if (opts.plotFile) {
    mkdirSync(path.dirname(opts.plotFile), { recursive: true });
    writeFileSync(opts.plotFile, plotRun(result));
  }
  return result;
}

export function describeParams(r: RunResult): string {
  const p = r.params;
  return (
    `${fmtInt(p.messages)} msgs, QoS ${p.qos}, MQTT ${p.protocolVersion === 5 ? '5' : '3.1.1'}, ` +
    `${p.payloadSize} B, ${p.topics} topic(s), ${p.wrapped ? 'wrapped' : 'raw'}, ` +
    `rate ${p.rate > 0 ? `${fmtInt(p.rate)}/s` : 'unlimited'}, ` +
    `${p.connections} conn × window ${p.window} (${clientName(p.publisherClient)})`
  );
}

export function clientName(c: PublisherClient | undefined): string {
  return (c ?? 'raw') === 'raw' ? 'raw client' : 'mqtt.js';
}

export function plotRun(r: RunResult): string {
  const s = r.series;
  const x = (i: number) => ((i + 0.5) * s.bucketMs) / 1000;
  const panels: PlotPanel[] = [
    {
      title: `Throughput (msg/s per ${s.bucketMs} ms bucket)`,
      unit: 'msg/s',
      lines: [
        { name: 'published', color: '#999999', points: s.published.map((v, i) => [x(i), v]) },
        {
          name: `arrived (${r.sink})`,
          color: '#1f77b4',
          points: s.delivered.map((v, i) => [x(i), v]),
        },
      ],
    },
    {
      title: 'End-to-end latency of the messages arriving in each bucket (log scale)',
      unit: 'ms',
      log: true,
      lines: [
        { name: 'p50', color: '#2ca02c', points: s.latP50.map((v, i) => [x(i), v]) },
        { name: 'p99', color: '#ff7f0e', points: s.latP99.map((v, i) => [x(i), v]) },
        { name: 'max', color: '#d62728', points: s.latMax.map((v, i) => [x(i), v]) },
      ],
    },
  ];
  if (r.procSamples?.length) {
    panels.push(
      {
        title: `Forwarder CPU (pid ${r.forwarder?.pid}; 100 % = one core)`,
        unit: '%',
        lines: [
          {
            name: 'CPU',
            color: '#9467bd',
            points: r.procSamples.map((p) => [Math.max(0, p.t / 1000), p.cpuPct]),
          },
        ],
      },
      {
        title: 'Forwarder RSS',
        unit: 'MB',
        lines: [
          {
            name: 'RSS',
            color: '#8c564b',
            points: r.procSamples.map((p) => [Math.max(0, p.t / 1000), p.rssMb]),
          },
        ],
      },
    );
  }
  const tp = r.throughput;
  const l = r.latencyMs;
  return renderPlot(
    `${r.label}: ${tp ? fmtInt(tp.endToEndMsgS) : '–'} msg/s end to end, ${fmtInt(r.counts.lost)} lost`,
    [
      describeParams(r),
      `unique ${fmtInt(r.counts.unique)}, duplicates ${fmtInt(r.counts.duplicates)}, out of order ${fmtInt(r.counts.outOfOrder)}, steady ${tp ? fmtInt(tp.steadyMsgS) : '–'} msg/s, end: ${r.endReason}`,
      `latency p50 ${fmtMs(l.p50)} / p90 ${fmtMs(l.p90)} / p99 ${fmtMs(l.p99)} / max ${fmtMs(l.max)} ms; arrival = ${r.sinkInfo.arrival}`,
      ...(r.forwarder
        ? [
            `forwarder RSS max ${r.forwarder.rssMaxMb.toFixed(0)} MB, CPU ${r.forwarder.cpuPct.toFixed(0)} % of one core`,
          ]
        : []),
    ],
    panels,
  );
}

/** The human-readable report. */
export function formatReport(r: RunResult): string {
  const c = r.counts;
  const tp = r.throughput;
  const l = r.latencyMs;
  const p = r.publisher;
  const lines = [
    `${r.label}  (${describeParams(r)})`,
    `  published   ${fmtInt(p.sent)} sent, ${fmtInt(p.acked)} completed in ${((p.endedAt - p.startedAt) / 1000).toFixed(2)} s = ${fmtInt(p.msgS)} msg/s (publisher thread: ${p.cpuPct.toFixed(0)} % of a core, ${(p.busy * 100).toFixed(0)} % busy)` +
      (p.timedOut ? ', TIMED OUT' : '') +
      (p.error ? `, ERROR: ${p.error}` : ''),
    `  received    ${fmtInt(c.received)} (${r.sink}), unique ${fmtInt(c.unique)}, LOST ${fmtInt(c.lost)}, duplicates ${fmtInt(c.duplicates)}, out of order ${fmtInt(c.outOfOrder)} in ${c.outOfOrderTopics} topic(s)` +
      (c.foreign ? `, foreign ${fmtInt(c.foreign)}` : ''),
    ...(c.lost > 0
      ? [`  missing ids (first ${c.missingSample.length}): ${c.missingSample.join(', ')}`]
      : []),
    `  throughput  ${tp ? fmtInt(tp.endToEndMsgS) : '–'} msg/s first publish → last arrival (${tp ? tp.durationS.toFixed(2) : '–'} s), steady state ${tp ? fmtInt(tp.steadyMsgS) : '–'} msg/s`,
    `  latency     p50 ${fmtMs(l.p50)}  p90 ${fmtMs(l.p90)}  p99 ${fmtMs(l.p99)}  max ${fmtMs(l.max)} ms  (arrival = ${r.sinkInfo.arrival})`,
  ];
  if (r.forwarder) {
    const f = r.forwarder;
    lines.push(
      `  forwarder   pid ${f.pid}: RSS max ${f.rssMaxMb.toFixed(1)} MB (end ${f.rssEndMb.toFixed(1)}), CPU ${f.cpuPct.toFixed(0)} % of one core = ${f.cpuS.toFixed(2)} s: main thread ${f.mainThreadCpuS.toFixed(2)} s, librdkafka ${f.kafkaThreadsCpuS.toFixed(2)} s, other threads ${f.otherThreadsCpuS.toFixed(2)} s`,
    );
  }
  lines.push(
    `  machine     ${r.machine.busyPct.toFixed(0)} % of ${r.machine.cores} cores busy; ` +
      r.machine.processes.map((x) => `${x.name} ${x.cpuPct.toFixed(0)} %`).join(', '),
  );
  lines.push(`  ended       ${r.endReason} after a drain of ${r.drainS.toFixed(1)} s`);
  if (r.plotFile) lines.push(`  plot        ${r.plotFile}`);
  return lines.join('\n');
}
