/**
 * Start/stop lifecycle, repeated: the real forwarder process must exit 0 on SIGTERM, within a
 * bound, in every run — with Kafka up, with messages in flight, with Kafka unreachable from the
 * start (SIGTERM during pending connects: the binding segfaults if a thread ends under a pending
 * native call, DESIGN.md), and with Kafka frozen or killed while messages are in flight.
 *
 * Each scenario runs LIFECYCLE_RUNS times (default 2) in worker mode and LIFECYCLE_INLINE_RUNS
 * times (default 2) in inline mode: the suite checks every path; repetition at a scale where a
 * rare defect shows is `npm run stress:shutdown` (docs/RELIABILITY.md). Failures of single runs
 * are collected, so a failing test reports how often out of N and the forwarder's last log
 * lines for each failed run.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { TestContext } from 'node:test';
import { uniqueName } from '../helpers/env';
import { testConfig, writeConfig } from '../helpers/forwarder';
import type { ForwarderProcess, LogLine } from '../helpers/forwarder';
import { idsOf, readUntil } from '../helpers/kafka';
import { forwarderPool, ready, sleep } from '../helpers/kit';
import { dropSession, publishMany } from '../helpers/mqtt';
import { closedPort, freezeKafka, stackCmd, thawKafka, waitKafkaWritable } from '../helpers/stack';

const RUNS = Number(process.env['LIFECYCLE_RUNS'] ?? 2);
const INLINE_RUNS = Number(process.env['LIFECYCLE_INLINE_RUNS'] ?? Math.min(2, RUNS));

const SHUTDOWN_TIMEOUT_MS = 1_000;
/** The documented bound: no stop takes longer than shutdown_timeout_ms + 5 s. */
const EXIT_BOUND_MS = SHUTDOWN_TIMEOUT_MS + 5_000;
/** Past the bound by this much the test SIGKILLs the forwarder and counts the run as a hang. */
const HANG_MS = EXIT_BOUND_MS + 10_000;
/** Attempts at bringing a run to its premise (e.g. messages really in flight at SIGTERM). */
const PREMISE_ATTEMPTS = 3;
const START_TIMEOUT_MS = 30_000;

const MODES = [
  { name: 'workers', workers: 2, runs: RUNS },
  { name: 'inline', workers: 0, runs: INLINE_RUNS },
] as const;

// Kafka first: a frozen broker is never left behind, whatever the forwarders do.
after(() => thawKafka());
const pool = forwarderPool();

function start(config: Record<string, unknown>): ForwarderProcess {
  return pool.start(writeConfig(config));
}

interface RunResult {
  readonly ms: number;
  readonly failure?: string;
}

/** Error-level log lines (pino level >= 50) written after the signal arrived. */
function shutdownErrors(fwd: ForwarderProcess): LogLine[] {
  const from = fwd.lines.findIndex((l) => l.msg === 'signal received');
  return from < 0 ? [] : fwd.lines.slice(from).filter((l) => Number(l.level ?? 0) >= 50);
}

/**
 * SIGTERMs `fwd` and judges the exit: code 0, no signal (SIGSEGV = crash), within the bound.
 * With `cleanLog`, an error logged during shutdown fails the run too: with Kafka up, stopping
 * must not kill a batch task or lose track of one.
 */
async function stopAndCheck(
  fwd: ForwarderProcess,
  what: string,
  cleanLog = false,
): Promise<RunResult> {
  const r = await fwd.stop('SIGTERM', HANG_MS);
  const problems: string[] = [];
  const errors = shutdownErrors(fwd);
  if (cleanLog && errors.length > 0)
    problems.push(
      `${errors.length} error line(s) during shutdown: ${errors.map((e) => JSON.stringify(e).slice(0, 400)).join(' | ')}`,
    );
  if (r.signal === 'SIGKILL') problems.push(`hang: no exit within ${HANG_MS} ms (SIGKILLed)`);
  else if (r.signal !== null) problems.push(`died by signal ${r.signal}`);
  else if (r.ms > EXIT_BOUND_MS)
    problems.push(`exit after ${r.ms} ms, over the ${EXIT_BOUND_MS} ms bound`);
  else if (r.code !== 0) problems.push(`exit code ${r.code}${r.code === 139 ? ' (segfault)' : ''}`);
  const stderr = fwd.stderr.join('');
  if (/Segmentation fault|FATAL ERROR|Abort|core dumped/i.test(stderr))
    problems.push('crash text on stderr');
  if (!fwd.lines.some((l) => l.msg === 'forwarder stopped'))
    problems.push("no 'forwarder stopped' log line");
  if (problems.length === 0) return { ms: r.ms };
  return {
    ms: r.ms,
    failure: `${what}: ${problems.join('; ')} (code ${r.code}, signal ${r.signal}, ${r.ms} ms); last lines:\n${fwd.tail(25)}`,
  };
}

/** The first log line with `msg`, if any. */
function logLine(fwd: ForwarderProcess, msg: string): LogLine | undefined {
  return fwd.lines.find((l) => l.msg === msg);
}

interface Summary {
  readonly results: RunResult[];
  readonly notes: string[];
}

function report(t: TestContext, label: string, s: Summary): void {
  const times = s.results.map((r) => r.ms).sort((a, b) => a - b);
  const failures = s.results.filter((r) => r.failure !== undefined);
  const line =
    `lifecycle ${label}: runs=${times.length} ok=${times.length - failures.length} ` +
    `exit ms max=${times.at(-1) ?? 0} median=${times[Math.floor(times.length / 2)] ?? 0} ` +
    `min=${times[0] ?? 0}`;
  console.log(line);
  t.diagnostic(line);
  for (const n of s.notes) t.diagnostic(n);
  assert.equal(
    failures.length,
    0,
    `${failures.length} of ${times.length} runs failed:\n${failures.map((f) => f.failure).join('\n---\n')}`,
  );
}

/** A mapping of one topic per run, QoS 1, to a Kafka topic named like it. */
function mappingFor(
  base: string,
): { name: string; mqtt: { topic: string; qos: 1 }; kafka: { topic: string } }[] {
  return [{ name: 'lc', mqtt: { topic: `${base}/#`, qos: 1 }, kafka: { topic: base } }];
}

for (const mode of MODES) {
  describe(`lifecycle: ${mode.name} mode (dispatch.workers ${mode.workers}), ${mode.runs} runs per scenario`, () => {
    const perRunBudget = (ms: number): number => 120_000 + mode.runs * ms;

    test(
      'a. SIGTERM after ready, Kafka up → exit 0',
      { timeout: perRunBudget(20_000) },
      async (t) => {
        const s: Summary = { results: [], notes: [] };
        for (let run = 0; run < mode.runs; run++) {
          const base = uniqueName(`lc-a-${mode.name}`);
          const fwd = start(
            testConfig(mappingFor(base), {
              dispatch: { workers: mode.workers },
              shutdown_timeout_ms: SHUTDOWN_TIMEOUT_MS,
            }),
          );
          try {
            await ready(fwd, { timeoutMs: START_TIMEOUT_MS });
          } catch (err) {
            s.results.push({ ms: 0, failure: `run ${run}: not ready: ${String(err)}` });
            await fwd.stop('SIGKILL', 5_000);
            continue;
          }
          const r = await stopAndCheck(fwd, `run ${run}`, true);
          s.results.push(r);
        }
        report(t, `${mode.name} a (Kafka up)`, s);
      },
    );

    test(
      'b. SIGTERM with QoS 1 messages in flight → exit 0, and a restart delivers every message',
      { timeout: perRunBudget(40_000 * PREMISE_ATTEMPTS) },
      async (t) => {
        const COUNT = 3_000;
        const s: Summary = { results: [], notes: [] };
        for (let run = 0; run < mode.runs; run++) {
          // A run counts only if messages really were in flight at SIGTERM; one that found the
          // window empty (the stream was faster than our look) is tried again.
          for (let attempt = 1; attempt <= PREMISE_ATTEMPTS; attempt++) {
            const held = await inFlightRun(s, run, attempt, COUNT);
            if (held) break;
            if (attempt === PREMISE_ATTEMPTS)
              s.results.push({
                ms: 0,
                failure: `run ${run}: no message in flight at SIGTERM in ${PREMISE_ATTEMPTS} attempts`,
              });
          }
        }
        report(t, `${mode.name} b (messages in flight)`, s);
      },
    );

    /** One start → stream → SIGTERM → restart check; false if nothing was in flight at SIGTERM. */
    async function inFlightRun(
      s: Summary,
      run: number,
      attempt: number,
      count: number,
    ): Promise<boolean> {
      const base = uniqueName(`lc-b-${mode.name}`);
      const config = testConfig(mappingFor(base), {
        mqtt: { client_id: base },
        dispatch: { workers: mode.workers },
        shutdown_timeout_ms: SHUTDOWN_TIMEOUT_MS,
      });
      const fwd = start(config);
      let publishing: Promise<unknown> = Promise.resolve();
      try {
        await ready(fwd, { timeoutMs: START_TIMEOUT_MS });
        publishing = publishMany({
          count,
          qos: 1,
          topic: () => `${base}/d`,
          payload: (i) => String(i),
          timeoutMs: 60_000,
        }).catch((err: unknown) => err);
        // SIGTERM as soon as the window holds messages (bounded: the stream takes ~0.1-0.3 s).
        const until = Date.now() + 10_000;
        while (Date.now() < until && Number((await fwd.readyz())['inflight'] ?? 0) === 0) {
          await sleep(2);
        }
        const r = await stopAndCheck(fwd, `run ${run}`, true);
        const stopping = logLine(fwd, 'forwarder stopping');
        const stopped = logLine(fwd, 'forwarder stopped');
        const inFlight = Number(stopping?.['inFlight'] ?? 0);
        s.notes.push(
          `run ${run} attempt ${attempt}: exit ${r.ms} ms, in flight at SIGTERM ${inFlight}, received ${String(stopped?.['received'])}, released ${String(stopped?.['released'])}`,
        );
        const pubErr = await publishing;
        if (pubErr) throw pubErr;
        if (r.failure) {
          s.results.push(r);
          return true;
        }
        if (inFlight === 0) return false;
        s.results.push(r);

        // Restart with the same client id: the broker redelivers what was not acknowledged
        // and the messages published while the forwarder was down.
        const again = start(config);
        try {
          await ready(again, { timeoutMs: START_TIMEOUT_MS });
          const records = await readUntil(base, (recs) => idsOf(recs).size >= count, 60_000);
          const ids = idsOf(records);
          const missing: number[] = [];
          for (let i = 0; i < count; i++) if (!ids.has(i)) missing.push(i);
          const dups = records.length - ids.size;
          s.notes.push(
            `run ${run} restart check: ${records.length} records, ${ids.size}/${count} ids, ${dups} duplicates, ${missing.length} missing`,
          );
          if (missing.length > 0) {
            s.results.push({
              ms: 0,
              failure: `run ${run}: ${missing.length} of ${count} messages lost after restart (first: ${missing.slice(0, 20).join(',')}); restart log:\n${again.tail(25)}`,
            });
          }
        } finally {
          const r2 = await stopAndCheck(again, `run ${run} (restart)`, true);
          if (r2.failure) s.results.push(r2);
        }
        return true;
      } catch (err) {
        s.results.push({ ms: 0, failure: `run ${run}: ${String(err)}\n${fwd.tail(25)}` });
        await fwd.stop('SIGKILL', 5_000);
        await publishing;
        return true;
      } finally {
        await dropSession(base);
      }
    }

    test(
      'c. Kafka unreachable from the start: SIGTERM during pending connects → exit 0, no crash',
      { timeout: perRunBudget(20_000) },
      async (t) => {
        const s: Summary = { results: [], notes: [] };
        for (let run = 0; run < mode.runs; run++) {
          const port = await closedPort();
          const base = uniqueName(`lc-c-${mode.name}`);
          const fwd = start(
            testConfig(mappingFor(base), {
              kafka: { bootstrap_server: '127.0.0.1', port },
              dispatch: { workers: mode.workers, kafka_connect_timeout_ms: 1_000 },
              shutdown_timeout_ms: SHUTDOWN_TIMEOUT_MS,
            }),
          );
          // Delay measured from 'forwarder starting' (signal handlers are installed by then),
          // spread over 100 ms .. 2 s so SIGTERM lands in connect attempts and backoff sleeps.
          const delay = mode.runs === 1 ? 100 : 100 + Math.round((1_900 * run) / (mode.runs - 1));
          try {
            await fwd.waitForLog((l) => l.msg === 'forwarder starting', START_TIMEOUT_MS, 'start');
          } catch (err) {
            s.results.push({ ms: 0, failure: `run ${run}: ${String(err)}` });
            await fwd.stop('SIGKILL', 5_000);
            continue;
          }
          await sleep(delay);
          const failedConnects = fwd.lines.filter((l) =>
            /kafka producer connect.*failed/.test(String(l.msg)),
          ).length;
          const connected = fwd.lines.some((l) => l.msg === 'kafka producer connected');
          const r = await stopAndCheck(fwd, `run ${run} (SIGTERM ${delay} ms after start)`);
          s.results.push(r);
          // The premise: no producer ever reached the closed port's "broker".
          if (connected)
            s.results.push({ ms: 0, failure: `run ${run}: a producer connected to a closed port` });
          s.notes.push(
            `run ${run}: SIGTERM ${delay} ms after start, ${failedConnects} failed connects before it, exit ${r.ms} ms, ${shutdownErrors(fwd).length} error lines at shutdown`,
          );
        }
        report(t, `${mode.name} c (Kafka unreachable)`, s);
      },
    );

    test(
      'd. Kafka frozen (SIGSTOP) or killed with messages in flight: SIGTERM → exit 0 within the bound',
      { timeout: perRunBudget(90_000) },
      async (t) => {
        const COUNT = 5_000;
        // The slow variant (a real SIGKILL of Kafka and a restart, ~10 s) in two runs.
        const killRuns = new Set(mode.runs >= 6 ? [1, 5] : [1 % mode.runs]);
        const s: Summary = { results: [], notes: [] };
        for (let run = 0; run < mode.runs; run++) {
          const kill = killRuns.has(run);
          const base = uniqueName(`lc-d-${mode.name}`);
          const fwd = start(
            testConfig(mappingFor(base), {
              dispatch: { workers: mode.workers },
              shutdown_timeout_ms: SHUTDOWN_TIMEOUT_MS,
            }),
          );
          let publishing: Promise<unknown> = Promise.resolve();
          let kafkaDown = false;
          try {
            await ready(fwd, { timeoutMs: START_TIMEOUT_MS });
            publishing = publishMany({
              count: COUNT,
              qos: 1,
              topic: () => `${base}/d`,
              payload: (i) => String(i),
              timeoutMs: 60_000,
            }).catch((err: unknown) => err);
            await sleep(30 + ((run * 53) % 120));
            kafkaDown = true;
            if (kill) await stackCmd(['kill', 'kafka'], { timeoutMs: 30_000 });
            else freezeKafka();
            // Let the window fill against the dead broker before the signal.
            await sleep(300);
            const r = await stopAndCheck(fwd, `run ${run} (Kafka ${kill ? 'killed' : 'frozen'})`);
            s.results.push(r);
            const stopping = logLine(fwd, 'forwarder stopping');
            // The premise: batches were held by the dead broker when the signal came.
            if (Number(stopping?.['inFlight'] ?? 0) === 0)
              s.results.push({ ms: 0, failure: `run ${run}: nothing in flight at SIGTERM` });
            s.notes.push(
              `run ${run}: Kafka ${kill ? 'killed' : 'frozen'}, in flight at SIGTERM ${String(stopping?.['inFlight'])}, exit ${r.ms} ms, ${shutdownErrors(fwd).length} error lines at shutdown`,
            );
          } catch (err) {
            s.results.push({ ms: 0, failure: `run ${run}: ${String(err)}\n${fwd.tail(25)}` });
            await fwd.stop('SIGKILL', 5_000);
          } finally {
            if (kafkaDown) {
              thawKafka();
              if (kill) await stackCmd(['up', 'kafka'], { timeoutMs: 120_000 });
              const ms = await waitKafkaWritable(90_000);
              s.notes.push(`run ${run}: Kafka writable again after ${ms} ms`);
            }
            const pubErr = await publishing;
            if (pubErr)
              s.results.push({ ms: 0, failure: `run ${run}: publisher: ${String(pubErr)}` });
          }
        }
        report(t, `${mode.name} d (Kafka frozen/killed)`, s);
      },
    );
  });
}
