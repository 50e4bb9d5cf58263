/**
 * Fault injection with zero loss. Each scenario publishes a numbered QoS 1 stream, injects a
 * fault into a real process (the forwarder, Kafka or mosquitto), then proves with kcat (an
 * independent consumer) that every published id reached Kafka. Duplicates are counted and
 * reported, never losses.
 *
 * The test command runs a reduced form; `npm run chaos` runs the full form (CHAOS_FULL=1: longer
 * streams, 10 kills, a 30 s Kafka outage) and writes docs/RELIABILITY.md (CHAOS_REPORT).
 * Scenarios run one after another on the suite's broker stack and leave it running.
 *
 * Scenario 7 is scenario 1 with a supervisor: `processes: CHAOS_PROCESSES` (default 2) and one
 * mapping per process, and the kill is a SIGKILL of one ingest process (a child of the
 * supervisor, found through /proc), which the supervisor restarts. CHAOS_PROCESSES=1 skips it.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { after, describe, test } from 'node:test';
import type { TestContext } from 'node:test';
import { uniqueName } from '../helpers/env';
import { testConfig, writeConfig } from '../helpers/forwarder';
import type { ForwarderProcess, LogLine } from '../helpers/forwarder';
import { readUntil } from '../helpers/kafka';
import { forwarderPool, ready, sleep, until } from '../helpers/kit';
import { dropSession, publishMany } from '../helpers/mqtt';
import { TreeGuard } from '../helpers/proc-tree';
import { stackCmd, waitKafkaWritable } from '../helpers/stack';

const FULL = process.env['CHAOS_FULL'] === '1';
const COUNT = FULL ? 50_000 : 6_000;
const KILLS = FULL ? 10 : 3;
const KAFKA_OUTAGE_MS = FULL ? 30_000 : 8_000;
const TOPICS = 16;
/** Scenario 7's paced stream: PACED_BURST messages every PACED_EVERY_MS (about 250 msg/s). */
const PACED_BURST = 25;
const PACED_EVERY_MS = 100;
/** Ingest processes of scenario 7; 1 skips it. */
const PROCESSES = Number(process.env['CHAOS_PROCESSES'] ?? 2);
if (!Number.isInteger(PROCESSES) || PROCESSES < 1 || PROCESSES > 64) {
  throw new Error(`CHAOS_PROCESSES=${process.env['CHAOS_PROCESSES']}: expected 1..64`);
}
/**
 * The kill moments are random; the seed is printed so a failing run can be replayed with
 * CHAOS_SEED=<seed>.
 */
const SEED = Number(process.env['CHAOS_SEED'] ?? Math.floor(Math.random() * 2 ** 31));
console.log(`faults: CHAOS_SEED=${SEED}`);
/** mulberry32: a small deterministic generator, uniform on [0, 1). */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const random = seeded(SEED);

interface Outcome {
  readonly scenario: string;
  readonly published: number;
  readonly lost: number;
  readonly duplicates: number;
  readonly recoveryMs: number;
  readonly note: string;
}
const outcomes: Outcome[] = [];

const pool = forwarderPool();
/** The process trees of multi-process forwarders: their ingest processes are killed by PID too. */
const guards: TreeGuard[] = [];
after(async () => {
  for (const g of guards) g.killAll();
  // Whatever a scenario did, leave both brokers running for the files after this one.
  await stackCmd(['up']);
  const file = process.env['CHAOS_REPORT'];
  if (file) writeFileSync(file, renderReport());
});

class Scenario {
  readonly base = uniqueName('chaos');
  readonly kafkaTopic = this.base;
  readonly clientId = uniqueName('chaos-fwd');

  /**
   * `processes` > 1: a supervisor with that many ingest processes and one mapping per process
   * (`<base>/p<k>/#`, owned by process k), the stream spread over all of them.
   */
  constructor(
    readonly name: string,
    private readonly overrides: Record<string, unknown> = {},
    readonly processes = 1,
  ) {}

  start(): ForwarderProcess {
    const { mqtt, ...rest } = this.overrides as { mqtt?: object };
    const mappings =
      this.processes === 1
        ? [
            {
              name: 'chaos',
              mqtt: { topic: `${this.base}/#`, qos: 1 as const },
              kafka: { topic: this.kafkaTopic },
            },
          ]
        : Array.from({ length: this.processes }, (_, k) => ({
            name: `chaos-${k}`,
            mqtt: { topic: `${this.base}/p${k}/#`, qos: 1 as const },
            kafka: { topic: this.kafkaTopic },
          }));
    return pool.start(
      writeConfig(
        testConfig(mappings, {
          mqtt: { client_id: this.clientId, ...mqtt },
          dispatch: { workers: 2 },
          shutdown_timeout_ms: 5_000,
          ...(this.processes > 1 ? { processes: this.processes } : {}),
          ...rest,
        }),
      ),
    );
  }

  /** Publishes ids [from, to) spread over TOPICS topics; resolves once the broker has them all. */
  publish(from: number, to: number, maxInflight = 200): Promise<void> {
    const prefix = (id: number): string =>
      this.processes === 1 ? this.base : `${this.base}/p${id % this.processes}`;
    return publishMany({
      count: to - from,
      qos: 1,
      topic: (i) => `${prefix(from + i)}/dev${(from + i) % TOPICS}`,
      payload: (i) => String(from + i),
      maxInflight,
      timeoutMs: 300_000,
    });
  }

  /** Reads Kafka until ids 0..count-1 are all there (bounded); returns the tally. */
  async verify(
    count: number,
    timeoutMs = 180_000,
  ): Promise<{ lost: number; duplicates: number; ms: number }> {
    const t0 = Date.now();
    const records = await readUntil(
      this.kafkaTopic,
      (r) => new Set(r.map((x) => x.value.toString())).size >= count,
      timeoutMs,
    );
    const seen = new Map<number, number>();
    for (const r of records) {
      const id = Number(r.value.toString());
      seen.set(id, (seen.get(id) ?? 0) + 1);
    }
    let lost = 0;
    for (let i = 0; i < count; i++) if (!seen.has(i)) lost++;
    const duplicates = records.length - seen.size;
    return { lost, duplicates, ms: Date.now() - t0 };
  }

  /** Ends the persistent session(s) so the broker frees them (`<client_id>-<k>` per process). */
  async dropSession(): Promise<void> {
    if (this.processes === 1) return dropSession(this.clientId);
    for (let k = 0; k < this.processes; k++) await dropSession(`${this.clientId}-${k}`);
  }

  record(t: TestContext, o: Omit<Outcome, 'scenario'>): void {
    const outcome = { scenario: this.name, ...o };
    outcomes.push(outcome);
    t.diagnostic(JSON.stringify(outcome));
  }
}

/** The supervisor's line for an ingest process that died (`ingest process <i> exited (...)`). */
function diedLine(l: LogLine): boolean {
  return l['code'] === 'ERR_INGEST_PROCESS_DIED' && /^ingest process \d+ exited/.test(l.msg ?? '');
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
}

describe(`fault injection (${FULL ? 'full' : 'reduced'} form)`, () => {
  test(`1. kill -9 of the forwarder ${KILLS} times during the stream`, async (t) => {
    const s = new Scenario('kill -9 forwarder');
    let fwd = s.start();
    await ready(fwd);
    const publishing = s.publish(0, COUNT);
    const t0 = Date.now();
    for (let k = 0; k < KILLS; k++) {
      // Random moments, spread over the stream's expected duration.
      await sleep(300 + random() * 1200);
      await fwd.stop('SIGKILL');
      fwd = s.start();
      await ready(fwd);
    }
    await publishing;
    const v = await s.verify(COUNT);
    s.record(t, {
      published: COUNT,
      lost: v.lost,
      duplicates: v.duplicates,
      recoveryMs: v.ms,
      note: `${KILLS} kills in ${Date.now() - t0} ms (CHAOS_SEED=${SEED})`,
    });
    assert.equal(v.lost, 0);
    assert.equal((await fwd.stop()).code, 0);
    await s.dropSession();
  });

  test(`2. Kafka killed (-9) for ${KAFKA_OUTAGE_MS / 1000} s: the forwarder stops reading, stays bounded, resumes`, async (t) => {
    const s = new Scenario('Kafka kill -9 + restart', { mqtt: { inflight_window: 1000 } });
    const fwd = s.start();
    await ready(fwd);
    await s.publish(0, COUNT / 2);
    await stackCmd(['kill', 'kafka']);
    const killedAt = Date.now();
    // Publishing goes on into mosquitto while Kafka is down; the forwarder must hold still.
    const publishing = s.publish(COUNT / 2, COUNT);
    let maxRss = 0;
    while (Date.now() - killedAt < KAFKA_OUTAGE_MS) {
      maxRss = Math.max(maxRss, rssMb(fwd.pid));
      assert.equal(fwd.child.exitCode, null, 'forwarder keeps running while Kafka is down');
      await sleep(500);
    }
    await stackCmd(['up', 'kafka']);
    await waitKafkaWritable();
    const restartedAt = Date.now();
    await publishing;
    const v = await s.verify(COUNT);
    const lines = fwd.lines.filter((l) => l.msg === 'stats').map((l) => Number(l['window']));
    s.record(t, {
      published: COUNT,
      lost: v.lost,
      duplicates: v.duplicates,
      recoveryMs: Date.now() - restartedAt,
      note: `outage ${Math.round((restartedAt - killedAt) / 1000)} s, max RSS ${maxRss} MB, max window ${Math.max(0, ...lines)}`,
    });
    assert.equal(v.lost, 0);
    assert.ok(maxRss < 400, `RSS bounded (max ${maxRss} MB)`);
    assert.ok(Math.max(0, ...lines) <= 1000, 'window never above its bound');
    assert.equal((await fwd.stop()).code, 0);
    await s.dropSession();
  });

  test('3. mosquitto restarted (graceful, persistence on): reconnect, resubscribe, nothing lost', async (t) => {
    const s = new Scenario('mosquitto restart');
    const fwd = s.start();
    await ready(fwd);
    await s.publish(0, COUNT / 2);
    await stackCmd(['down', 'mosquitto']);
    const downAt = Date.now();
    await sleep(1_000);
    await stackCmd(['up', 'mosquitto']);
    await fwd.waitForLog(
      (l) => l.msg === 'mqtt connected' && Date.parse(String(l['time'])) > downAt,
      60_000,
      'reconnect',
    );
    const reconnectedMs = Date.now() - downAt;
    await s.publish(COUNT / 2, COUNT);
    const v = await s.verify(COUNT);
    s.record(t, {
      published: COUNT,
      lost: v.lost,
      duplicates: v.duplicates,
      recoveryMs: reconnectedMs,
      note: 'recovery = broker down → forwarder reconnected',
    });
    assert.equal(v.lost, 0);
    assert.equal((await fwd.stop()).code, 0);
    await s.dropSession();
  });

  test('4. brokers unreachable at start-up: retries with backoff, no crash, forwards once they appear', async (t) => {
    const s = new Scenario('brokers down at start-up', {
      dispatch: { workers: 2, kafka_connect_timeout_ms: 1_000 },
    });
    await stackCmd(['down']);
    const fwd = s.start();
    await sleep(FULL ? 15_000 : 6_000);
    assert.equal(fwd.child.exitCode, null, 'no crash while the brokers are missing');
    const mqttRetries = fwd.lines
      .filter((l) => l.msg === 'mqtt reconnecting')
      .map((l) => Number(l['delayMs']));
    const kafkaRetries = fwd.lines.filter((l) => l['code'] === 'ERR_KAFKA_CONNECT').length;
    assert.ok(mqttRetries.length >= 2, 'MQTT reconnect attempts are logged');
    assert.ok(
      mqttRetries.at(-1)! > mqttRetries[0]!,
      `MQTT backoff grows (${mqttRetries.join(', ')} ms)`,
    );
    assert.ok(kafkaRetries >= 1, 'Kafka connect failures are logged with their code');
    const upAt = Date.now();
    await stackCmd(['up']);
    await waitKafkaWritable();
    await ready(fwd, { timeoutMs: 90_000 });
    const readyMs = Date.now() - upAt;
    await s.publish(0, COUNT);
    const v = await s.verify(COUNT);
    s.record(t, {
      published: COUNT,
      lost: v.lost,
      duplicates: v.duplicates,
      recoveryMs: readyMs,
      note: `${mqttRetries.length} MQTT retries (${mqttRetries.join('/')} ms), ${kafkaRetries} Kafka connect retries`,
    });
    assert.equal(v.lost, 0);
    assert.equal((await fwd.stop()).code, 0);
    await s.dropSession();
  });

  test('5. SIGTERM under load: drains in time; a graceful restart redelivers nothing acked', async (t) => {
    const s = new Scenario('SIGTERM under load');
    let fwd = s.start();
    await ready(fwd);
    const publishing = s.publish(0, COUNT);
    await sleep(800);
    const stopped = await fwd.stop('SIGTERM');
    assert.equal(stopped.code, 0, fwd.tail());
    assert.ok(
      stopped.ms < 5_000 + 3_000,
      `drained within shutdown_timeout_ms (+margin): ${stopped.ms} ms`,
    );
    assert.ok(
      fwd.lines.some((l) => l.msg === 'forwarder stopped'),
      'orderly stop logged',
    );
    assert.ok(
      !fwd.lines.some((l) => l['code'] === 'ERR_SHUTDOWN_TIMEOUT'),
      'drained before the timeout',
    );
    fwd = s.start();
    await ready(fwd);
    await publishing;
    const v = await s.verify(COUNT);
    s.record(t, {
      published: COUNT,
      lost: v.lost,
      duplicates: v.duplicates,
      recoveryMs: stopped.ms,
      note: 'recovery = SIGTERM → exit',
    });
    assert.equal(v.lost, 0);
    assert.equal(v.duplicates, 0, 'no message acknowledged before the exit is delivered again');
    assert.equal((await fwd.stop()).code, 0);
    await s.dropSession();
  });

  test('6. forwarder paused (SIGSTOP) past the MQTT keepalive, then resumed', async (t) => {
    const s = new Scenario('SIGSTOP past keepalive', { mqtt: { keepalive_s: 2 } });
    const fwd = s.start();
    await ready(fwd);
    const publishing = s.publish(0, COUNT);
    await sleep(500);
    fwd.child.kill('SIGSTOP');
    // 1.5 × keepalive is 3 s: the broker drops the connection meanwhile.
    await sleep(FULL ? 20_000 : 6_000);
    const resumedAt = Date.now();
    fwd.child.kill('SIGCONT');
    await publishing;
    const v = await s.verify(COUNT);
    const reconnects = fwd.lines.filter((l) => l.msg === 'mqtt connected').length - 1;
    s.record(t, {
      published: COUNT,
      lost: v.lost,
      duplicates: v.duplicates,
      recoveryMs: Date.now() - resumedAt,
      note: `${reconnects} reconnect(s) after resume`,
    });
    assert.equal(v.lost, 0);
    assert.equal((await fwd.stop()).code, 0);
    await s.dropSession();
  });

  test(
    `7. kill -9 of one ingest process (of ${PROCESSES}) ${KILLS} times during the stream: the supervisor restarts it`,
    { skip: PROCESSES < 2 ? 'CHAOS_PROCESSES=1' : false },
    async (t) => {
      const s = new Scenario(`kill -9 ingest process (processes: ${PROCESSES})`, {}, PROCESSES);
      const fwd = s.start();
      const guard = new TreeGuard(fwd);
      guards.push(guard);
      await ready(fwd);
      let kids = await guard.waitChildren(PROCESSES);
      // A paced stream for as long as the kills last, so each kill lands while both processes
      // receive: a restart takes seconds (backoff, start-up), longer than a whole stream at full
      // speed. Bounded in count (COUNT) and time; the rest of COUNT goes after the last kill.
      let next = 0;
      let killing = true;
      const streamDeadline = Date.now() + 600_000;
      const streaming = (async (): Promise<void> => {
        while (killing && next < COUNT && Date.now() < streamDeadline) {
          const to = Math.min(COUNT, next + PACED_BURST);
          await s.publish(next, to);
          next = to;
          await sleep(PACED_EVERY_MS);
        }
      })();
      const t0 = Date.now();
      const restartMs: number[] = [];
      const sentAtKill: number[] = [];
      for (let k = 0; k < KILLS; k++) {
        await sleep(300 + random() * 1200);
        const victim = kids[Math.floor(random() * kids.length)]!;
        sentAtKill.push(next);
        const exitedBefore = fwd.lines.filter((l) => diedLine(l)).length;
        const startedBefore = fwd.lines.filter((l) => l.msg === 'ingest process started').length;
        const killedAt = Date.now();
        process.kill(victim.pid, 'SIGKILL');
        await until(
          'the supervisor to log the exit and a restart',
          () =>
            fwd.lines.filter((l) => diedLine(l)).length > exitedBefore &&
            fwd.lines.filter((l) => l.msg === 'ingest process started').length > startedBefore,
          { timeoutMs: 60_000 },
        );
        assert.equal(fwd.child.exitCode, null, 'the supervisor keeps running');
        // A new pid in the victim's place, the others untouched.
        kids = await until(
          `${PROCESSES} ingest processes again`,
          () => {
            const now = guard.children().filter((c) => c.ppid === fwd.pid);
            return now.length === PROCESSES && !now.some((c) => c.pid === victim.pid) && now;
          },
          { timeoutMs: 60_000 },
        );
        await ready(fwd, { timeoutMs: 60_000 });
        restartMs.push(Date.now() - killedAt);
      }
      killing = false;
      await streaming;
      await s.publish(next, COUNT);
      const v = await s.verify(COUNT);
      s.record(t, {
        published: COUNT,
        lost: v.lost,
        duplicates: v.duplicates,
        recoveryMs: v.ms,
        note: `${KILLS} ingest-process kills in ${Date.now() - t0} ms, ids published before each kill ${sentAtKill.join('/')}, kill → ready ${restartMs.join('/')} ms (CHAOS_SEED=${SEED})`,
      });
      assert.equal(v.lost, 0);
      const stopped = await guard.stop('SIGTERM', 30_000);
      assert.equal(stopped.code, 0, `supervisor exit: ${JSON.stringify(stopped)}\n${fwd.tail()}`);
      assert.deepEqual(stopped.orphans, [], 'no ingest process outlives the supervisor');
      await s.dropSession();
    },
  );
});

function renderReport(): string {
  const rows = outcomes.map(
    (o) =>
      `| ${o.scenario} | ${o.published} | ${o.lost} | ${o.duplicates} | ${(o.recoveryMs / 1000).toFixed(1)} s | ${o.note} |`,
  );
  return [
    '| scenario | published | lost | duplicates | recovery | notes |',
    '| --- | ---: | ---: | ---: | ---: | --- |',
    ...rows,
    '',
  ].join('\n');
}
