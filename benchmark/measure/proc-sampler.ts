/**
 * RSS and CPU of a process (the forwarder) from /proc, sampled while a run lasts, plus CPU per
 * thread between start and stop: main thread, librdkafka threads (named rdk:*) and the rest
 * (worker threads, V8 and libuv helpers, which Node 20 does not name apart).
 */
import { readFileSync, readdirSync } from 'node:fs';
import type { MachineSummary, ProcSummary, ThreadCpu } from '../types';

const CLK_TCK = 100;
const PAGE = 4096;

/** utime + stime in seconds and the thread name, from a /proc stat file. */
function readStat(file: string): { cpuS: number; comm: string } | undefined {
  try {
    const s = readFileSync(file, 'utf8');
    // comm may contain spaces and parentheses: fields are counted after the last ')'.
    const close = s.lastIndexOf(')');
    const comm = s.slice(s.indexOf('(') + 1, close);
    const f = s.slice(close + 2).split(' ');
    return { cpuS: (Number(f[11]) + Number(f[12])) / CLK_TCK, comm };
  } catch {
    return undefined;
  }
}

function readRssMb(pid: number): number {
  try {
    const pages = Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]);
    return (pages * PAGE) / (1024 * 1024);
  } catch {
    return NaN;
  }
}

function threadTimes(pid: number): Map<number, { cpuS: number; comm: string }> {
  const out = new Map<number, { cpuS: number; comm: string }>();
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const t of tids) {
    const st = readStat(`/proc/${pid}/task/${t}/stat`);
    if (st) out.set(Number(t), st);
  }
  return out;
}

export class ProcSampler {
  private readonly timer: NodeJS.Timeout;
  private readonly t0 = performance.now();
  private readonly threads0: Map<number, { cpuS: number; comm: string }>;
  private readonly cpu0: number;
  private lastCpu: number;
  private lastT: number;
  private readonly samples: { t: number; rssMb: number; cpuPct: number }[] = [];

  constructor(
    readonly pid: number,
    intervalMs = 500,
  ) {
    this.threads0 = threadTimes(pid);
    this.cpu0 = readStat(`/proc/${pid}/stat`)?.cpuS ?? NaN;
    this.lastCpu = this.cpu0;
    this.lastT = this.t0;
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  private sample(): void {
    const now = performance.now();
    const cpu = readStat(`/proc/${this.pid}/stat`)?.cpuS ?? NaN;
    const cpuPct = ((cpu - this.lastCpu) / ((now - this.lastT) / 1000)) * 100;
    this.samples.push({ t: now - this.t0, rssMb: readRssMb(this.pid), cpuPct });
    this.lastCpu = cpu;
    this.lastT = now;
  }

  stop(): ProcSummary {
    clearInterval(this.timer);
    this.sample();
    const wallS = (performance.now() - this.t0) / 1000;
    const cpuS = this.lastCpu - this.cpu0;
    const threads: ThreadCpu[] = [];
    for (const [tid, st] of threadTimes(this.pid)) {
      const before = this.threads0.get(tid)?.cpuS ?? 0;
      threads.push({ tid, comm: st.comm, cpuS: st.cpuS - before });
    }
    threads.sort((a, b) => b.cpuS - a.cpuS);
    const sum = (pred: (t: ThreadCpu) => boolean) =>
      threads.filter(pred).reduce((s, t) => s + t.cpuS, 0);
    const rss = this.samples.map((s) => s.rssMb).filter((v) => Number.isFinite(v));
    return {
      pid: this.pid,
      rssMaxMb: rss.length ? Math.max(...rss) : NaN,
      rssEndMb: rss.length ? rss[rss.length - 1]! : NaN,
      cpuPct: (cpuS / wallS) * 100,
      cpuS,
      mainThreadCpuS: sum((t) => t.tid === this.pid),
      kafkaThreadsCpuS: sum((t) => t.comm.startsWith('rdk:')),
      otherThreadsCpuS: sum((t) => t.tid !== this.pid && !t.comm.startsWith('rdk:')),
      threads: threads.filter((t) => t.cpuS > 0).slice(0, 12),
      samples: this.samples,
    };
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
export class MachineSampler {
  private readonly t0 = performance.now();
  private readonly j0 = machineJiffies();
  private readonly cpu0: Map<string, number>;

  constructor(
    private readonly pids: Readonly<Record<string, number>>,
    private readonly cores: number,
  ) {
    this.cpu0 = new Map(
      Object.entries(pids).map(([name, pid]) => [name, readStat(`/proc/${pid}/stat`)?.cpuS ?? NaN]),
    );
  }

  stop(): MachineSummary {
    const wallS = (performance.now() - this.t0) / 1000;
    const j = machineJiffies();
    return {
      busyPct: ((j.busy - this.j0.busy) / Math.max(1, j.total - this.j0.total)) * 100,
      cores: this.cores,
      processes: Object.entries(this.pids).map(([name, pid]) => ({
        name,
        pid,
        cpuPct:
          (((readStat(`/proc/${pid}/stat`)?.cpuS ?? NaN) - (this.cpu0.get(name) ?? NaN)) / wallS) *
          100,
      })),
    };
  }
}

/** CPU seconds of the calling thread (in a worker: that worker), from /proc/thread-self. */
export function threadCpuS(): number {
  return readStat('/proc/thread-self/stat')?.cpuS ?? NaN;
}
