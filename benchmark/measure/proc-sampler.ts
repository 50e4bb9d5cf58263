/**
 * RSS and CPU of the forwarder from /proc, sampled while a run lasts, plus CPU per thread
 * between start and stop: main thread, librdkafka threads (named rdk:*) and the rest (worker
 * threads, V8 and libuv helpers, which Node 20 does not name apart).
 *
 * The forwarder is a process tree: with `processes: N` a supervisor and its ingest processes.
 * Every sample finds the tree anew (a restarted ingest process has a new pid); CPU is summed over
 * every process seen, one that exited counted as last sampled (up to one interval of its CPU is
 * missed); RSS is the sum over the processes alive at the sample. "Main thread" is the sum of
 * each process's main thread.
 */
import { readFileSync } from 'node:fs';
import type { MachineSummary, ProcMember, ProcSummary, ThreadCpu } from '../types';
import { ProcTreeWatch, readProcStat, readRssMb, readStatFile, threadStats } from './proc-tree';
import type { ProcStat } from './proc-tree';

interface ThreadTrack {
  readonly tid: number;
  comm: string;
  readonly cpu0: number;
  cpu: number;
}

interface Member {
  readonly pid: number;
  readonly ppid: number;
  readonly comm: string;
  /** CPU seconds when first seen: the process's own at the start, 0 for one born later. */
  readonly cpu0: number;
  cpu: number;
  rssMaxMb: number;
  readonly firstSeenMs: number;
  goneMs?: number;
  readonly threads: Map<number, ThreadTrack>;
}

export class ProcSampler {
  private readonly timer: NodeJS.Timeout;
  private readonly t0 = performance.now();
  private readonly tree: ProcTreeWatch;
  private readonly members = new Map<string, Member>();
  private lastCpu = 0;
  private lastT: number;
  private readonly samples: { t: number; rssMb: number; cpuPct: number; processes: number }[] = [];
  private stopped: ProcSummary | undefined;

  constructor(
    readonly pid: number,
    intervalMs = 500,
  ) {
    this.tree = new ProcTreeWatch(pid);
    this.lastT = this.t0;
    this.track(true);
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  /**
   * Reads every process of the tree and its threads; returns the tree's RSS now. `atStart`: what
   * they had used before the start is not counted; a process or thread first seen later was born
   * during the run, so all of its CPU is.
   */
  private track(atStart: boolean): { rssMb: number; alive: number } {
    const now = performance.now() - this.t0;
    const alive = new Set<string>();
    let rssMb = 0;
    for (const st of this.tree.refresh()) {
      const k = `${st.pid}@${st.startTicks}`;
      alive.add(k);
      let m = this.members.get(k);
      if (!m) {
        m = {
          pid: st.pid,
          ppid: st.ppid,
          comm: st.comm,
          cpu0: atStart ? st.cpuS : 0,
          cpu: st.cpuS,
          rssMaxMb: 0,
          firstSeenMs: now,
          threads: new Map(),
        };
        this.members.set(k, m);
      }
      // The process's own counter includes threads that ended since the last sample.
      m.cpu = st.cpuS;
      const rss = readRssMb(st.pid);
      if (Number.isFinite(rss)) {
        rssMb += rss;
        m.rssMaxMb = Math.max(m.rssMaxMb, rss);
      }
      this.trackThreads(m, threadStats(st.pid), atStart);
    }
    for (const [k, m] of this.members) {
      if (!alive.has(k) && m.goneMs === undefined) m.goneMs = now;
    }
    return { rssMb: alive.size > 0 ? rssMb : NaN, alive: alive.size };
  }

  private trackThreads(m: Member, threads: Map<number, ProcStat>, atStart: boolean): void {
    for (const [tid, st] of threads) {
      const t = m.threads.get(tid);
      if (t) {
        t.cpu = st.cpuS;
        t.comm = st.comm;
      } else {
        m.threads.set(tid, { tid, comm: st.comm, cpu0: atStart ? st.cpuS : 0, cpu: st.cpuS });
      }
    }
  }

  /** CPU seconds of the tree since the start, as of the last sample. */
  cpuSoFar(): number {
    let s = 0;
    for (const m of this.members.values()) s += m.cpu - m.cpu0;
    return s;
  }

  private sample(): void {
    const now = performance.now();
    const { rssMb, alive } = this.track(false);
    const cpu = this.cpuSoFar();
    const cpuPct = ((cpu - this.lastCpu) / ((now - this.lastT) / 1000)) * 100;
    this.samples.push({ t: now - this.t0, rssMb, cpuPct, processes: alive });
    this.lastCpu = cpu;
    this.lastT = now;
  }

  stop(): ProcSummary {
    if (this.stopped) return this.stopped;
    clearInterval(this.timer);
    this.sample();
    const wallS = (performance.now() - this.t0) / 1000;
    const cpuS = this.cpuSoFar();
    const threads: ThreadCpu[] = [];
    const processes: ProcMember[] = [];
    let mainThreadCpuS = 0;
    let kafkaThreadsCpuS = 0;
    let otherThreadsCpuS = 0;
    for (const m of this.members.values()) {
      let main = 0;
      for (const t of m.threads.values()) {
        const c = t.cpu - t.cpu0;
        if (t.tid === m.pid) main += c;
        else if (t.comm.startsWith('rdk:')) kafkaThreadsCpuS += c;
        else otherThreadsCpuS += c;
        threads.push({
          tid: t.tid,
          comm: t.comm,
          cpuS: c,
          ...(m.pid !== this.pid && { pid: m.pid }),
        });
      }
      mainThreadCpuS += main;
      processes.push({
        pid: m.pid,
        ppid: m.ppid,
        comm: m.comm,
        cpuS: m.cpu - m.cpu0,
        mainThreadCpuS: main,
        rssMaxMb: m.rssMaxMb,
        firstSeenS: m.firstSeenMs / 1000,
        ...(m.goneMs !== undefined && { goneS: m.goneMs / 1000 }),
      });
    }
    threads.sort((a, b) => b.cpuS - a.cpuS);
    const rss = this.samples.map((s) => s.rssMb).filter((v) => Number.isFinite(v));
    this.stopped = {
      pid: this.pid,
      rssMaxMb: rss.length ? Math.max(...rss) : NaN,
      rssEndMb: rss.length ? rss[rss.length - 1]! : NaN,
      cpuPct: (cpuS / wallS) * 100,
      cpuS,
      mainThreadCpuS,
      kafkaThreadsCpuS,
      otherThreadsCpuS,
      threads: threads.filter((t) => t.cpuS > 0).slice(0, 12),
      processes,
      samples: this.samples,
    };
    return this.stopped;
  }
}

/** Busy and total jiffies of the whole machine (all CPUs), from /proc/stat. */
function machineJiffies(): { busy: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8')
    .split('\n')[0]!
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  // idle + iowait are the only columns that are not work.
  return { busy: total - (f[3] ?? 0) - (f[4] ?? 0), total };
}

/**
 * Where the machine's CPU went during a run: the total, and the processes that share it
 * (brokers, the benchmark itself). On a small machine a forwarder that is not busy itself can
 * still be starved by its neighbours; this tells the two apart.
 */
/** A watched process counted with its descendants (a ProcSampler of it). */
export interface TreeCpu {
  readonly pid: number;
  cpuSoFar(): number;
}

export class MachineSampler {
  private readonly t0 = performance.now();
  private readonly j0 = machineJiffies();
  private readonly cpu0: Map<string, number>;

  /**
   * `pids`: a pid counts that process alone; a TreeCpu (the forwarder's sampler) its whole tree,
   * as the sampler saw it (stop the sampler first for its final figure).
   */
  constructor(
    private readonly pids: Readonly<Record<string, number | TreeCpu>>,
    private readonly cores: number,
  ) {
    this.cpu0 = new Map(Object.entries(pids).map(([name, p]) => [name, cpuOf(p)]));
  }

  stop(): MachineSummary {
    const wallS = (performance.now() - this.t0) / 1000;
    const j = machineJiffies();
    return {
      busyPct: ((j.busy - this.j0.busy) / Math.max(1, j.total - this.j0.total)) * 100,
      cores: this.cores,
      processes: Object.entries(this.pids).map(([name, p]) => ({
        name,
        pid: typeof p === 'number' ? p : p.pid,
        cpuPct: ((cpuOf(p) - (this.cpu0.get(name) ?? NaN)) / wallS) * 100,
      })),
    };
  }
}

function cpuOf(p: number | TreeCpu): number {
  return typeof p === 'number' ? (readProcStat(p)?.cpuS ?? NaN) : p.cpuSoFar();
}

/** CPU seconds of the calling thread (in a worker: that worker), from /proc/thread-self. */
export function threadCpuS(): number {
  return readStatFile('/proc/thread-self/stat')?.cpuS ?? NaN;
}
