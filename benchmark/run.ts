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
import { Publisher } from './load/publisher';
import { MachineSampler, ProcSampler } from './measure/proc-sampler';
import { childPids, readProcStat } from './measure/proc-tree';
import { latencies, series, summarize, throughput } from './measure/stats';
import { Tracker } from './measure/tracker';
import { plotRun } from './report/plot';
import { Progress } from './report/progress';
import type {
  EndReason,
  PublisherConfig,
  PublisherResult,
  RunOptions,
  RunResult,
  Sink,
} from './types';

const POLL_MS = 100;
const WARMUP_MS = 30_000;
/** Arrivals stalled this long before the end: ask the sink for what it buffers. */
const FLUSH_AFTER_MS = 300;
/** How long a forwarder with `processes: N` may take to have its N ingest processes. */
const CHILDREN_WAIT_MS = 30_000;

/**
 * Waits until `pid` has `n` live children (a supervisor and its ingest processes), so that the
 * measured period does not begin with processes still starting; throws naming what it found.
 */
async function waitForChildren(pid: number, n: number): Promise<void> {
  const deadline = performance.now() + CHILDREN_WAIT_MS;
  const live = (): number[] =>
    childPids(pid).filter((c) => {
      const st = readProcStat(c);
      return st !== undefined && st.state !== 'Z';
    });
  while (live().length < n) {
    if (readProcStat(pid) === undefined) throw new Error(`forwarder pid ${pid} is gone`);
    if (performance.now() > deadline) {
      throw new Error(
        `forwarder pid ${pid}: ${live().length} child process(es) after ${CHILDREN_WAIT_MS / 1000} s, expected ${n} (processes: ${n})`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

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
  if (opts.forwarderPid !== undefined && (opts.processes ?? 1) > 1) {
    await waitForChildren(opts.forwarderPid, opts.processes!);
  }
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
      // The sampler's figure: the forwarder's whole process tree, not the root alone.
      ...(sampler === undefined ? {} : { forwarder: sampler }),
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
