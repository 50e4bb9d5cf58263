/**
 * A process and its descendants, from /proc: the forwarder with `processes: N` is a supervisor
 * with N ingest processes under it, so its CPU and RSS are those of the whole tree. Used by the
 * benchmark's sampler and by the tests and scripts that must find (or kill) the ingest
 * processes. Linux only; reads nothing but /proc and imports nothing of the project.
 */
import { readFileSync, readdirSync } from 'node:fs';

export const CLK_TCK = 100;
const PAGE = 4096;

export interface ProcStat {
  readonly pid: number;
  readonly ppid: number;
  /** The process's (or thread's) name, at most 15 characters. */
  readonly comm: string;
  /** R, S, D, T, Z, ... */
  readonly state: string;
  /** utime + stime, seconds. */
  readonly cpuS: number;
  /**
   * Start time in clock ticks since boot: with the pid, what tells a process apart from a later
   * one that got the same pid.
   */
  readonly startTicks: number;
}

/** A /proc stat file (`/proc/<pid>/stat` or a thread's); undefined once the process is gone. */
export function readStatFile(file: string): ProcStat | undefined {
  let s: string;
  try {
    s = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  // comm may contain spaces and parentheses: fields are counted after the last ')'.
  const close = s.lastIndexOf(')');
  const f = s.slice(close + 2).split(' ');
  return {
    pid: Number(s.slice(0, s.indexOf(' '))),
    comm: s.slice(s.indexOf('(') + 1, close),
    state: f[0] ?? '?',
    ppid: Number(f[1]),
    cpuS: (Number(f[11]) + Number(f[12])) / CLK_TCK,
    startTicks: Number(f[19]),
  };
}

export function readProcStat(pid: number): ProcStat | undefined {
  return readStatFile(`/proc/${pid}/stat`);
}

/** Resident set size in MB; NaN once the process is gone. */
export function readRssMb(pid: number): number {
  try {
    const pages = Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]);
    return (pages * PAGE) / (1024 * 1024);
  } catch {
    return NaN;
  }
}

/** The thread ids of `pid` now; none once it is gone. */
function taskIds(pid: number): string[] {
  try {
    return readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
}

/** Thread id → its stat, for every thread the process has now. */
export function threadStats(pid: number): Map<number, ProcStat> {
  const out = new Map<number, ProcStat>();
  for (const t of taskIds(pid)) {
    const st = readStatFile(`/proc/${pid}/task/${t}/stat`);
    if (st) out.set(Number(t), st);
  }
  return out;
}

/**
 * Whether this kernel has /proc/<pid>/task/<tid>/children (CONFIG_PROC_CHILDREN). Where it does
 * not, children are found by scanning every /proc/<pid>/stat for the parent pid, which costs a
 * read per process on the machine.
 */
let childrenFile: boolean | undefined;
function hasChildrenFile(): boolean {
  if (childrenFile === undefined) {
    try {
      readFileSync(`/proc/${process.pid}/task/${process.pid}/children`, 'utf8');
      childrenFile = true;
    } catch {
      childrenFile = false;
    }
  }
  return childrenFile;
}

/** Direct children of `pid`, now. */
export function childPids(pid: number): number[] {
  if (hasChildrenFile()) {
    const out: number[] = [];
    // A child is listed under the thread that forked it, which need not be the main thread.
    for (const t of taskIds(pid)) {
      try {
        const text = readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim();
        if (text !== '') for (const c of text.split(' ')) out.push(Number(c));
      } catch {
        // the thread ended meanwhile
      }
    }
    return out;
  }
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    if (readProcStat(Number(name))?.ppid === pid) out.push(Number(name));
  }
  return out;
}

/** Every descendant of `root` (children, their children, ...), parents before children. */
export function descendantPids(root: number): number[] {
  const out: number[] = [];
  const seen = new Set<number>([root]);
  const queue = [root];
  // Bounded: a pid enters the queue once, and the machine has finitely many.
  while (queue.length > 0) {
    for (const c of childPids(queue.shift()!)) {
      if (seen.has(c)) continue;
      seen.add(c);
      out.push(c);
      queue.push(c);
    }
  }
  return out;
}

/** Identity of a process across pid reuse. */
function key(st: ProcStat): string {
  return `${st.pid}@${st.startTicks}`;
}

/**
 * Every process of a tree ever seen while watched (`refresh()`), so that a child that outlived
 * its parent (re-parented to init when the supervisor was killed) is still found and a pid
 * reused by an unrelated process is not.
 */
export class ProcTreeWatch {
  private readonly known = new Map<string, ProcStat>();

  constructor(readonly root: number) {
    this.refresh();
  }

  /** Finds the tree's processes now; returns those alive. */
  refresh(): ProcStat[] {
    const alive = new Map<string, ProcStat>();
    const add = (pid: number): void => {
      const st = readProcStat(pid);
      if (!st || st.state === 'Z') return;
      this.known.set(key(st), st);
      alive.set(key(st), st);
    };
    add(this.root);
    for (const pid of descendantPids(this.root)) add(pid);
    // Earlier members that left the tree (orphans, re-parented when their parent died) but still
    // run, with whatever they started since.
    for (const [k, st] of this.known) {
      if (alive.has(k)) continue;
      const now = readProcStat(st.pid);
      if (now && now.startTicks === st.startTicks && now.state !== 'Z') {
        alive.set(k, now);
        for (const d of descendantPids(st.pid)) add(d);
      } else {
        this.known.delete(k);
      }
    }
    return [...alive.values()];
  }

  /** The live members other than the root. */
  descendants(): ProcStat[] {
    return this.refresh().filter((s) => s.pid !== this.root);
  }

  /**
   * Sends `signal` to every live member, by pid. The root is stopped (SIGSTOP) first so that it
   * forks no replacement between the listing and the signal; a SIGKILL also ends a stopped one.
   * Returns the pids signalled.
   */
  signalAll(signal: NodeJS.Signals): number[] {
    const sent: number[] = [];
    const rootAlive = this.refresh().some((s) => s.pid === this.root);
    if (rootAlive && signal === 'SIGKILL') {
      try {
        process.kill(this.root, 'SIGSTOP');
      } catch {
        // gone meanwhile
      }
    }
    for (const st of this.refresh()) {
      try {
        process.kill(st.pid, signal);
        sent.push(st.pid);
      } catch {
        // gone meanwhile
      }
    }
    return sent;
  }
}
