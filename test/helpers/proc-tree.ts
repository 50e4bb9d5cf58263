/**
 * A forwarder with `processes: N` is a supervisor with N ingest processes under it (node
 * child_process.fork). Killing the supervisor alone would leave them running, holding MQTT
 * sessions and loading the machine; this finds them through /proc (benchmark/measure/proc-tree.ts)
 * and ends them by PID. Only processes of the forwarder's own tree are ever signalled.
 */
import type { ProcStat } from '../../benchmark/measure/proc-tree';
import { ProcTreeWatch, readProcStat } from '../../benchmark/measure/proc-tree';
import type { ForwarderProcess } from './forwarder';

export { ProcTreeWatch };

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** How long ingest processes may outlive their supervisor before they count as orphans. */
const ORPHAN_GRACE_MS = 3_000;

export interface TreeStop {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly ms: number;
  /** The supervisor did not exit within the timeout: the whole tree was SIGKILLed. */
  readonly hang: boolean;
  /** Pids of ingest processes still alive ORPHAN_GRACE_MS after the supervisor exited. */
  readonly orphans: number[];
}

/**
 * Watches a forwarder's process tree for as long as it runs (polling /proc), so that its ingest
 * processes are known even once the supervisor is gone.
 */
export class TreeGuard {
  readonly watch: ProcTreeWatch;
  private readonly timer: NodeJS.Timeout;

  constructor(
    readonly fwd: ForwarderProcess,
    intervalMs = 200,
  ) {
    this.watch = new ProcTreeWatch(fwd.pid);
    this.timer = setInterval(() => this.watch.refresh(), intervalMs);
    this.timer.unref();
    void fwd.exit().then(() => {
      // One last look: ingest processes that outlive the supervisor are found by what was seen.
      this.watch.refresh();
    });
  }

  /** The live ingest processes (descendants of the supervisor, or orphans once seen). */
  children(): ProcStat[] {
    return this.watch.descendants();
  }

  /**
   * Waits until the supervisor has `n` live children (bounded); returns them. Throws with what
   * it found after `timeoutMs`.
   */
  async waitChildren(n: number, timeoutMs = 30_000): Promise<ProcStat[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const kids = this.children().filter((c) => c.ppid === this.fwd.pid);
      if (kids.length >= n) return kids;
      if (Date.now() > deadline) {
        throw new Error(
          `forwarder ${this.fwd.pid}: ${kids.length} ingest process(es) after ${timeoutMs} ms, expected ${n}`,
        );
      }
      await sleep(50);
    }
  }

  /**
   * Sends `signal` to the supervisor and waits for its exit; past `timeoutMs` SIGKILLs the whole
   * tree (a hang). Then gives the ingest processes ORPHAN_GRACE_MS to end on their own, and
   * SIGKILLs and reports those that did not.
   */
  async stop(signal: NodeJS.Signals, timeoutMs: number): Promise<TreeStop> {
    const t0 = Date.now();
    this.watch.refresh();
    const child = this.fwd.child;
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    let hang = false;
    const timer = setTimeout(() => {
      hang = true;
      this.watch.signalAll('SIGKILL');
    }, timeoutMs);
    const r = await this.fwd.exit();
    clearTimeout(timer);
    const ms = Date.now() - t0;
    clearInterval(this.timer);
    const until = Date.now() + ORPHAN_GRACE_MS;
    let left = this.children();
    while (left.length > 0 && Date.now() < until) {
      await sleep(50);
      left = this.children();
    }
    const orphans = left.map((s) => s.pid);
    if (orphans.length > 0) this.watch.signalAll('SIGKILL');
    return { ...r, ms, hang, orphans };
  }

  /** SIGKILL of the whole tree, by pid (cleanup). */
  killAll(): void {
    clearInterval(this.timer);
    this.watch.signalAll('SIGKILL');
  }
}

/** Whether `pid` (with the start time it had when seen) still runs. */
export function alive(st: ProcStat): boolean {
  const now = readProcStat(st.pid);
  return now !== undefined && now.startTicks === st.startTicks && now.state !== 'Z';
}
