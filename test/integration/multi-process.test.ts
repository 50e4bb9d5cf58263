/**
 * `processes: N` against the real brokers: a supervisor and N ingest processes. Mappings split
 * as shards (one process each, per-topic order kept) and as shared subscriptions ($share, every
 * process); one /readyz and one /metrics for all; an ingest process SIGKILLed mid-stream is
 * restarted and nothing is lost; SIGTERM of the supervisor under load drains every process
 * (0 lost, 0 duplicates after the restart); SIGHUP starts a process for a mapping it gains; a
 * SIGKILLed supervisor leaves no ingest process behind.
 *
 * Payload = message id, so Kafka's content says exactly what arrived, how often and in which
 * order per MQTT topic (the record key).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { writeFileSync } from 'node:fs';
import { after, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { MQTT_BROKER, REPO_ROOT, uniqueName } from '../helpers/env';
import { testConfig, writeConfig } from '../helpers/forwarder';
import type { ForwarderProcess, MappingSpec } from '../helpers/forwarder';
import type { KafkaRecord } from '../helpers/kafka';
import { TOPIC_MARKER, idsOf, markTopic, outOfOrder, readUntil } from '../helpers/kafka';
import { forwarderPool, ready, until } from '../helpers/kit';
import { dropSession, publishMany, stream } from '../helpers/mqtt';

const pool = forwarderPool();
const sessions: string[] = [];
after(async () => {
  for (const s of sessions) await dropSession(s);
});

const TOPICS_PER_MAPPING = 4;

/** Ids missing from 0..total-1, and how many records repeat an id. */
function tally(all: readonly KafkaRecord[], total: number): { lost: number[]; dup: number } {
  const records = withoutMarker(all);
  const ids = idsOf(records);
  const lost: number[] = [];
  for (let i = 0; i < total; i++) if (!ids.has(i)) lost.push(i);
  return { lost, dup: records.length - ids.size };
}

function withoutMarker(records: readonly KafkaRecord[]): KafkaRecord[] {
  return records.filter((r) => r.value.toString() !== TOPIC_MARKER);
}

/** Per `process` label, the value of a series in a /metrics body. */
function perProcess(body: string, metric: string): Map<string, number> {
  const out = new Map<string, number>();
  const re = new RegExp(`^${metric}\\{process="(\\d+)"\\} (\\S+)$`, 'gmu');
  for (const m of body.matchAll(re)) out.set(m[1]!, Number(m[2]));
  return out;
}

/** Records Kafka confirmed so far, all processes (the pod's /metrics): a cheap progress probe. */
async function forwardedSoFar(fwd: ForwarderProcess): Promise<number> {
  const body = await fwd.metrics();
  let n = 0;
  for (const m of body.matchAll(/^mkf_messages_forwarded_total\{[^}]*\} (\S+)$/gmu))
    n += Number(m[1]);
  return n;
}

/** Waits (polling /metrics) until `count` records are confirmed. */
async function forwarded(fwd: ForwarderProcess, count: number): Promise<void> {
  await until(`${count} records forwarded`, async () => (await forwardedSoFar(fwd)) >= count, {
    timeoutMs: 30_000,
    intervalMs: 20,
  });
}

/** The ingest processes the supervisor started so far: index → newest pid. */
function children(fwd: ForwarderProcess): Map<number, number> {
  const out = new Map<number, number>();
  for (const l of fwd.lines) {
    if (l.msg === 'ingest process started') out.set(Number(l['process']), Number(l['childPid']));
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** `mappings` mappings, each its own filter and Kafka topic; topic i of message id goes to mapping id % mappings. */
function layout(
  base: string,
  mappings: number,
  share: boolean,
): {
  forwarding: (MappingSpec & { share?: object })[];
  kafkaTopic: string;
  mqttTopic: (i: number) => string;
} {
  const forwarding = Array.from({ length: mappings }, (_, m) => ({
    name: `m${m}`,
    mqtt: { topic: `${base}/m${m}/#`, qos: 1 as const },
    kafka: { topic: base },
    ...(share && { share: {} }),
  }));
  return {
    forwarding,
    kafkaTopic: base,
    mqttTopic: (i) => `${base}/m${i % mappings}/t${Math.floor(i / mappings) % TOPICS_PER_MAPPING}`,
  };
}

describe('processes: N (supervisor and ingest processes)', () => {
  const MATRIX = [
    { n: 2, mode: 'shards' },
    { n: 2, mode: 'shared' },
    { n: 4, mode: 'shards' },
    { n: 4, mode: 'shared' },
  ] as const;
  for (const c of MATRIX) {
    test(`${c.n} processes, ${c.mode}: every message once, per-topic order${c.mode === 'shared' ? ' per member' : ''}, one /readyz and /metrics`, async (t) => {
      const total = 4_000;
      const base = uniqueName(`mp${c.n}-${c.mode}`);
      const shared = c.mode === 'shared';
      // Shards: one mapping per process; shared: one hot mapping on every process.
      const l = layout(base, shared ? 1 : c.n, shared);
      const fwd = pool.start(
        writeConfig(
          testConfig(l.forwarding, {
            processes: c.n,
            // Four processes on the suite's two cores: producers on their main threads.
            dispatch: { workers: c.n > 2 ? 0 : 1 },
          }),
        ),
      );
      await ready(fwd);
      const readyz = await fwd.readyz();
      const procs = readyz['processes'] as { process: number; ready: boolean }[];
      assert.deepEqual(
        procs.map((p) => [p.process, p.ready]),
        Array.from({ length: c.n }, (_, i) => [i, true]),
      );

      await publishMany({ count: total, qos: 1, topic: l.mqttTopic, payload: (i) => String(i) });
      const records = await readUntil(l.kafkaTopic, (r) => idsOf(r).size >= total, 60_000);
      const { lost, dup } = tally(records, total);
      const body = await fwd.metrics();
      const received = perProcess(body, 'mkf_mqtt_messages_received_total');
      t.diagnostic(
        `${records.length} records, ${lost.length} lost, ${dup} duplicates, ${outOfOrder(records)} out of order; received per process: ${JSON.stringify([...received])}`,
      );
      assert.equal(lost.length, 0, `lost: ${lost.slice(0, 20).join(',')}\n${fwd.tail()}`);
      assert.equal(dup, 0);
      assert.equal(received.size, c.n, `a received series per process:\n${body}`);
      const sum = [...received.values()].reduce((a, b) => a + b, 0);
      assert.equal(sum, total);
      if (shared) {
        // mosquitto hands a shared subscription's messages round robin to its members; other
        // brokers choose otherwise (HiveMQ CE gave 2 of 4 members all of them), which the
        // exact-once counts above already cover.
        if (MQTT_BROKER === 'mosquitto')
          for (const [p, n] of received) assert.ok(n > 0, `process ${p} received none`);
      } else {
        // Each process owns one mapping: exactly that mapping's share of the stream, in order.
        for (const [p, n] of received) assert.equal(n, total / c.n, `process ${p}`);
        assert.equal(outOfOrder(records), 0);
      }
      // Summed over the processes, by mapping, without a process label: in shared mode every
      // process forwarded part of the one mapping, and the pod reports one series for it.
      const forwarded = [
        ...body.matchAll(/^mkf_messages_forwarded_total\{mapping="(\w+)"\} (\S+)$/gmu),
      ];
      assert.deepEqual(
        forwarded.map((m) => [m[1], Number(m[2])]),
        l.forwarding.map((m) => [m.name, total / l.forwarding.length]),
      );
      assert.equal(perProcess(body, 'mkf_ingest_process_up').size, c.n);
      await pool.stop(fwd);
    });
  }

  for (const mode of ['shards', 'shared'] as const) {
    test(`SIGKILL of one ingest process mid-stream (${mode}): restarted, 0 lost`, async (t) => {
      const total = 12_000;
      const base = uniqueName(`mp-kill-${mode}`);
      sessions.push(`${base}-0`, `${base}-1`);
      const l = layout(base, mode === 'shared' ? 1 : 2, mode === 'shared');
      await markTopic(l.kafkaTopic);
      const fwd = pool.start(
        writeConfig(testConfig(l.forwarding, { processes: 2, mqtt: { client_id: base } })),
      );
      await ready(fwd);
      const s = stream({ count: total, rate: 2_000, topic: l.mqttTopic });
      await forwarded(fwd, 1_000);
      const victim = children(fwd).get(0)!;
      const handedAtKill = s.handed();
      process.kill(victim, 'SIGKILL');
      assert.ok(handedAtKill < total, 'the kill fell inside the stream');
      await fwd.waitForLog(
        (x) =>
          x.msg === 'ingest process started' &&
          Number(x['childPid']) !== victim &&
          x['process'] === 0,
        15_000,
        'the restart of process 0',
      );
      await s.done;
      const records = await readUntil(l.kafkaTopic, (r) => idsOf(r).size >= total, 60_000);
      const { lost, dup } = tally(records, total);
      t.diagnostic(
        `killed pid ${victim} at ≥ 1,000 records: ${lost.length} lost, ${dup} duplicates (redelivered)`,
      );
      assert.equal(lost.length, 0, `lost: ${lost.slice(0, 20).join(',')}\n${fwd.tail()}`);
      const died = fwd.lines.find((x) => x['code'] === 'ERR_INGEST_PROCESS_DIED');
      assert.equal(died?.['signal'], 'SIGKILL');
      await ready(fwd);
      assert.match(await fwd.metrics(), /^mkf_ingest_process_restarts_total\{process="0"\} 1$/mu);
      await pool.stop(fwd);
    });
  }

  test('SIGTERM of the supervisor under load: exit 0, and after a restart 0 lost, 0 duplicates', async (t) => {
    const total = 12_000;
    const base = uniqueName('mp-term');
    sessions.push(`${base}-0`, `${base}-1`);
    const l = layout(base, 2, false);
    const file = writeConfig(testConfig(l.forwarding, { processes: 2, mqtt: { client_id: base } }));
    await markTopic(l.kafkaTopic);
    let fwd = pool.start(file);
    await ready(fwd);
    const s = stream({ count: total, rate: 2_000, topic: l.mqttTopic });
    await forwarded(fwd, 1_500);
    const handedAtStop = s.handed();
    const stopped = await fwd.stop('SIGTERM', 20_000);
    assert.equal(stopped.code, 0, `supervisor exit ${JSON.stringify(stopped)}\n${fwd.tail()}`);
    const drained = fwd.lines.filter((x) => x.msg === 'ingest process stopped');
    assert.deepEqual(
      drained.map((x) => x['drained']),
      [true, true],
    );
    // The rest of the stream waits in the two persistent sessions.
    await s.done;
    fwd = pool.start(file);
    await ready(fwd);
    const records = await readUntil(l.kafkaTopic, (r) => idsOf(r).size >= total, 60_000);
    const { lost, dup } = tally(records, total);
    t.diagnostic(
      `stopped after ${handedAtStop} of ${total} published: ${lost.length} lost, ${dup} duplicates, ${outOfOrder(records)} out of order`,
    );
    assert.ok(handedAtStop < total, 'the stop fell inside the stream');
    assert.equal(lost.length, 0, `lost: ${lost.slice(0, 20).join(',')}`);
    assert.equal(dup, 0);
    assert.equal(outOfOrder(records), 0);
    await pool.stop(fwd);
  });

  test('SIGHUP: a process that gains a mapping is started; the others reload their share', async () => {
    const base = uniqueName('mp-hup');
    const one = layout(base, 1, false);
    const two = layout(base, 2, false);
    const config = (forwarding: object[]): Record<string, unknown> =>
      testConfig(forwarding as MappingSpec[], { processes: 2 });
    const file = writeConfig(config(one.forwarding));
    const fwd = pool.start(file);
    await ready(fwd);
    assert.deepEqual([...children(fwd).keys()], [0], 'one mapping: only process 0 runs');
    writeFileSync(file, stringify(config(two.forwarding)));
    fwd.child.kill('SIGHUP');
    await fwd.waitForLog((x) => x.msg === 'ingest process started' && x['process'] === 1);
    await ready(fwd);
    await publishMany({ count: 400, qos: 1, topic: two.mqttTopic, payload: (i) => String(i) });
    const records = await readUntil(base, (r) => idsOf(r).size >= 400, 30_000);
    assert.equal(tally(records, 400).lost.length, 0);
    const received = perProcess(await fwd.metrics(), 'mkf_mqtt_messages_received_total');
    assert.equal(received.get('0'), 200);
    assert.equal(received.get('1'), 200);
    await pool.stop(fwd);
  });

  test('fewer processes than before: the orphaned session is reported at start, and its messages wait for it', async () => {
    const base = uniqueName('mp-shrink');
    sessions.push(`${base}-0`, `${base}-1`, `${base}-2`);
    const l = layout(base, 3, false);
    const config = (n: number): string =>
      writeConfig(testConfig(l.forwarding, { processes: n, mqtt: { client_id: base } }));
    await markTopic(base);
    const three = config(3);
    let fwd = pool.start(three);
    await ready(fwd);
    await pool.stop(fwd);
    // Queued in session `<base>-2` (mapping m2's owner) while nothing runs.
    const queued = 300;
    await publishMany({
      count: queued,
      qos: 1,
      topic: (i) => l.mqttTopic(i * 3 + 2),
      payload: (i) => String(i),
    });

    const two = config(2);
    fwd = pool.start(two);
    await ready(fwd);
    const line = await fwd.waitForLog(
      (x) => x['code'] === 'ERR_ORPHAN_SESSION',
      20_000,
      'the orphan report',
    );
    assert.equal(line['clientId'], `${base}-2`);
    assert.equal(line['level'], 50);
    await fwd.waitForLog((x) => x.msg === 'orphaned-session check done');
    assert.match(await fwd.metrics(), /^mkf_orphan_sessions 1$/mu);
    await pool.stop(fwd);
    // The same check on demand, e.g. before going back to a single process.
    const check = spawnSync(
      process.execPath,
      [path.join(REPO_ROOT, 'bin', 'forwarder.js'), 'check-sessions', '-c', two],
      {
        encoding: 'utf8',
        timeout: 30_000,
      },
    );
    assert.equal(check.status, 1, check.stderr);
    assert.match(check.stdout, new RegExp(`^${base}-2: session held by the broker$`, 'mu'));

    // The check kept the session and its queue: the process count that owns it drains it.
    fwd = pool.start(three);
    await ready(fwd);
    const records = await readUntil(base, (r) => idsOf(withoutMarker(r)).size >= queued, 30_000);
    assert.equal(tally(records, queued).lost.length, 0);
    await fwd.waitForLog((x) => x.msg === 'orphaned-session check done');
    assert.match(await fwd.metrics(), /^mkf_orphan_sessions 0$/mu);
    await pool.stop(fwd);
  });

  test('SIGTERM while the ingest processes are still starting: exit 0 (none held anything)', async () => {
    const base = uniqueName('mp-early');
    const l = layout(base, 2, false);
    const fwd = pool.start(writeConfig(testConfig(l.forwarding, { processes: 2 })));
    // The moment both are forked: each is loading its modules, before its signal handlers.
    await until('both forked', () => children(fwd).size === 2, {
      timeoutMs: 20_000,
      intervalMs: 5,
    });
    const r = await fwd.stop('SIGTERM', 20_000);
    assert.equal(r.code, 0, `${JSON.stringify(r)}\n${fwd.tail()}`);
  });

  test('a SIGKILLed supervisor leaves no ingest process behind', async () => {
    const base = uniqueName('mp-orphan');
    const l = layout(base, 2, false);
    const fwd = pool.start(writeConfig(testConfig(l.forwarding, { processes: 2 })));
    await ready(fwd);
    const pids = [...children(fwd).values()];
    assert.equal(pids.length, 2);
    await fwd.stop('SIGKILL');
    // Each notices its closed channel and stops as on SIGTERM (bounded by shutdown_timeout_ms + 5 s).
    await until('ingest processes gone', () => pids.every((p) => !alive(p)), {
      timeoutMs: 20_000,
      intervalMs: 100,
    });
  });
});
