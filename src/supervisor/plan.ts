/**
 * How the work of one config is split over ingest processes: pure functions of the config and
 * the process count, so the supervisor and every ingest process (which loads the same file
 * itself) arrive at the same split without talking to each other.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { MAX_PROCESSES } from '../config/schema';
import type { Config, Mapping } from '../config/schema';

/** The environment variable that makes bin/forwarder.js an ingest process: `<index>/<count>`. */
export const INGEST_ENV = 'MKF_INGEST_PROCESS';

export interface IngestIdentity {
  readonly index: number;
  readonly count: number;
}

export function ingestIdentity(env: NodeJS.ProcessEnv): IngestIdentity | undefined {
  const v = env[INGEST_ENV];
  if (v === undefined) return undefined;
  const m = /^(\d+)\/(\d+)$/u.exec(v);
  const index = Number(m?.[1]);
  const count = Number(m?.[2]);
  if (!m || !(index < count) || count > MAX_PROCESSES) {
    throw new Error(
      `${INGEST_ENV}=${v}: expected <index>/<count> with index < count ≤ ${MAX_PROCESSES}`,
    );
  }
  return { index, count };
}

/**
 * CPUs this container may use: the cgroup CPU quota (v2 `cpu.max`, v1 `cfs_quota_us`) rounded
 * up, else the CPUs the scheduler lets this process run on. Kubernetes' limits.cpu becomes the
 * quota, so a pod limited to 4 CPUs on a 64-core node counts 4.
 */
export function containerCpus(read: (file: string) => string | undefined = readText): number {
  const fallback = os.availableParallelism();
  const v2 = read('/sys/fs/cgroup/cpu.max')?.trim().split(/\s+/u);
  if (v2 && v2[0] !== undefined && v2[0] !== 'max') {
    const q = Number(v2[0]);
    const p = Number(v2[1] ?? 100_000);
    if (q > 0 && p > 0) return Math.min(fallback, Math.max(1, Math.ceil(q / p)));
  }
  const q1 = Number(read('/sys/fs/cgroup/cpu/cpu.cfs_quota_us')?.trim());
  const p1 = Number(read('/sys/fs/cgroup/cpu/cpu.cfs_period_us')?.trim());
  if (q1 > 0 && p1 > 0) return Math.min(fallback, Math.max(1, Math.ceil(q1 / p1)));
  return fallback;
}

function readText(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * `processes` as a number. 'auto': one core per main thread (MQTT, routing, acks) and one per
 * producer worker thread, so each process gets 1 + dispatch.workers cores.
 */
export function processCount(cfg: Config, cpus: () => number = containerCpus): number {
  if (cfg.processes !== 'auto') return cfg.processes;
  const perProcess = 1 + cfg.dispatch.workers;
  return Math.max(1, Math.min(MAX_PROCESSES, Math.floor(cpus() / perProcess)));
}

/** Indices of the processes that own at least one mapping: the ones a supervisor starts. */
export function owningProcesses(forwarding: readonly Mapping[], count: number): number[] {
  return assignMappings(forwarding, count).flatMap((owned, i) => (owned.length > 0 ? [i] : []));
}

/** The shared subscription group of a mapping with `share`. */
export function shareGroup(m: Mapping): string {
  return m.share?.group ?? `forwarder-${m.name.replace(/[^A-Za-z0-9_-]/gu, '_')}`;
}

/**
 * Per process, the indices (into cfg.forwarding) of the mappings it subscribes. A mapping
 * without `share` goes to exactly one process, round robin in config order; the s-th mapping
 * with `share` goes to `share.processes` (default all) consecutive processes starting where the
 * one before it ended, so partial shares spread over the processes too.
 */
export function assignMappings(forwarding: readonly Mapping[], count: number): number[][] {
  const owned: number[][] = Array.from({ length: count }, () => []);
  let next = 0;
  let sharedStart = 0;
  forwarding.forEach((m, i) => {
    if (m.share === undefined) {
      owned[next % count]!.push(i);
      next++;
      return;
    }
    const k = Math.min(count, m.share.processes ?? count);
    for (let t = 0; t < k; t++) owned[(sharedStart + t) % count]!.push(i);
    sharedStart = (sharedStart + k) % count;
  });
  return owned;
}

/** A mapping as one process subscribes it: a shared one as `$share/<group>/<filter>`. */
function asSubscribed(m: Mapping): Mapping {
  if (m.share === undefined) return m;
  return { ...m, mqtt: { ...m.mqtt, topic: `$share/${shareGroup(m)}/${m.mqtt.topic}` } };
}

/** The MQTT client id of ingest process `index` of `count` ('' stays '': clean sessions). */
export function ingestClientId(clientId: string, count: number, index: number): string {
  return clientId === '' || count === 1 ? clientId : `${clientId}-${index}`;
}

/**
 * The config one ingest process runs: its own mappings, its own client id, and no HTTP server
 * when a supervisor serves the endpoints for all (count > 1). With count 1 only `share` is
 * applied, so a single process still joins a shared group that spans pods.
 */
export function ingestConfig(cfg: Config, count: number, index: number): Config {
  const mine = assignMappings(cfg.forwarding, count)[index] ?? [];
  const forwarding = mine.map((i) => asSubscribed(cfg.forwarding[i]!));
  if (count === 1) return { ...cfg, forwarding };
  return {
    ...cfg,
    forwarding,
    mqtt: { ...cfg.mqtt, client_id: ingestClientId(cfg.mqtt.client_id, count, index) },
    http: { ...cfg.http, enabled: false },
  };
}
