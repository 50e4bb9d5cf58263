/**
 * The waiting and cleanup every integration test needs, once: waits are for conditions (never
 * a fixed time standing in for one), readiness is what the forwarder's /readyz says, and every
 * forwarder a test starts is stopped by PID however the test ends.
 */
import assert from 'node:assert/strict';
import { after } from 'node:test';
import { ForwarderProcess } from './forwarder';

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export interface UntilOptions {
  /** How long to wait before failing (default 30 s). */
  readonly timeoutMs?: number;
  /** Pause between checks (default 100 ms). */
  readonly intervalMs?: number;
  /**
   * A check that throws is tried again, and its last error is reported on timeout (a server that
   * is still starting refuses connections); without this a throw ends the wait at once.
   */
  readonly retryErrors?: boolean;
}

type NotYet = undefined | null | false;

/**
 * Checks `cond` until it returns something other than undefined, null or false, and resolves
 * with that; rejects, naming `what` and the time waited, once `timeoutMs` passed.
 */
export async function until<T>(
  what: string,
  cond: () => T | NotYet | Promise<T | NotYet>,
  { timeoutMs = 30_000, intervalMs = 100, retryErrors = false }: UntilOptions = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await cond();
      if (v !== undefined && v !== null && v !== false) return v;
    } catch (err) {
      if (!retryErrors) throw err;
      lastError = err;
    }
    if (Date.now() > deadline) {
      const cause = lastError === undefined ? '' : ` (last error: ${String(lastError)})`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${cause}`);
    }
    await sleep(intervalMs);
  }
}

/**
 * Waits until the forwarder's /readyz answers 200: MQTT subscribed to every mapping's filter,
 * every producer connected with a reachable broker, nothing held, not stopping. Fails at once
 * if the process exits first.
 */
export async function ready(
  fwd: ForwarderProcess,
  { timeoutMs = 30_000 }: { timeoutMs?: number } = {},
): Promise<void> {
  let last = '';
  try {
    await until(
      `forwarder ${fwd.pid} ready (/readyz 200)`,
      async () => {
        if (fwd.child.exitCode !== null || fwd.child.signalCode !== null)
          throw new Error(`forwarder ${fwd.pid} exited before it was ready`);
        const res = await fwd.get('/readyz');
        last = await res.text();
        return res.status === 200;
      },
      { timeoutMs, intervalMs: 50 },
    );
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new Error(`${why}; last /readyz: ${last.trim() || 'none'}; last lines:\n${fwd.tail()}`);
  }
}

export interface ForwarderPool {
  /** Starts a forwarder that this pool stops, by PID, when its file or suite ends. */
  start(configFile: string, env?: NodeJS.ProcessEnv): ForwarderProcess;
  /** SIGTERM and assert a clean exit (code 0). */
  stop(fwd: ForwarderProcess): Promise<void>;
}

/**
 * Forwarders of one test file (or suite: call it inside `describe`). Any still running when the
 * file or suite ends, whether its tests passed or not, is SIGKILLed, and so is any still running
 * when the test process exits without running its hooks: a failing assertion never leaves a
 * forwarder behind to load the machine or hold an MQTT session.
 */
export function forwarderPool(): ForwarderPool {
  const live = new Set<ForwarderProcess>();
  const killAll = (): void => {
    for (const f of live) f.child.kill('SIGKILL');
  };
  process.once('exit', killAll);
  after(async () => {
    await Promise.all([...live].map((f) => f.stop('SIGKILL', 5_000)));
    process.off('exit', killAll);
  });
  return {
    start(configFile, env = {}) {
      const fwd = new ForwarderProcess(configFile, env);
      live.add(fwd);
      void fwd.exit().then(() => live.delete(fwd));
      return fwd;
    },
    async stop(fwd) {
      const r = await fwd.stop('SIGTERM', 20_000);
      assert.equal(r.code, 0, `forwarder exit: ${JSON.stringify(r)}\n${fwd.tail()}`);
    },
  };
}
