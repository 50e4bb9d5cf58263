/**
 * Config reload on SIGHUP against the real brokers: mappings added, changed and removed while a
 * QoS 1 stream runs, without a reconnect and without losing or duplicating a message; a config
 * that does not load refused with the lines a start prints; changes outside `forwarding`
 * reported as needing a restart; MQTT 5 subscription identifiers right across reloads.
 *
 * Every stream is numbered (payload = id), so Kafka's content says exactly which messages went
 * where. Reloads are triggered by the stream's progress, never after a fixed time, and each test
 * checks that its reload did fall inside its stream.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { stringify } from 'yaml';
import { MQTT_PORT, REPO_ROOT, uniqueName } from '../helpers/env';
import { testConfig, writeConfig } from '../helpers/forwarder';
import type { ForwarderProcess, LogLine, MappingSpec } from '../helpers/forwarder';
import type { KafkaRecord } from '../helpers/kafka';
import { idsOf, readAll, readUntil } from '../helpers/kafka';
import { forwarderPool, ready, sleep, until } from '../helpers/kit';
import { publishMany, stream } from '../helpers/mqtt';

const pool = forwarderPool();

function rewrite(file: string, config: Record<string, unknown>): void {
  writeFileSync(file, stringify(config));
}

/** Sends SIGHUP and waits for the reload's outcome: applied (generation) or refused. */
async function reload(fwd: ForwarderProcess, generation: number): Promise<LogLine> {
  const before = fwd.lines.length;
  fwd.child.kill('SIGHUP');
  return fwd.waitForLog(
    (l) =>
      fwd.lines.indexOf(l) >= before &&
      ((l.msg === 'config reloaded' && l['generation'] === generation) ||
        l['code'] === 'ERR_CONFIG_RELOAD_REFUSED'),
    30_000,
    `reload to generation ${generation}`,
  );
}

async function metric(fwd: ForwarderProcess, series: string): Promise<number> {
  const text = await fwd.metrics();
  const escaped = series.replace(/[{}]/gu, (c) => `\\${c}`);
  const m = new RegExp(`^${escaped} (\\S+)$`, 'mu').exec(text);
  assert.ok(m, `no series ${series} in /metrics`);
  return Number(m[1]);
}

/** Waits until the forwarder holds no message (everything received confirmed and acked). */
async function drained(fwd: ForwarderProcess): Promise<void> {
  await until('window empty', async () => (await metric(fwd, 'mkf_inflight_messages')) === 0);
}

/** Ids that are not exactly once, or missing from 0..count-1; empty = exactly once each. */
function notExactlyOnce(records: readonly KafkaRecord[], ids: Iterable<number>): string[] {
  const seen = idsOf(records);
  const wrong: string[] = [];
  for (const id of ids) {
    const n = seen.get(id) ?? 0;
    if (n !== 1) wrong.push(`${id}×${n}`);
    seen.delete(id);
  }
  for (const [id, n] of seen) wrong.push(`unexpected ${id}×${n}`);
  return wrong;
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, i) => from + i);
}

/** The MQTT connection stayed up: connected once, never closed, never reconnecting. */
async function connectedOnce(fwd: ForwarderProcess): Promise<void> {
  const connects = fwd.lines.filter((l) => l.msg === 'mqtt connected');
  assert.equal(connects.length, 1, 'one MQTT connection for the whole test');
  assert.equal(
    fwd.lines.filter((l) => l.msg === 'mqtt connection closed' || l.msg === 'mqtt reconnecting')
      .length,
    0,
  );
  assert.equal(await metric(fwd, 'mkf_mqtt_reconnects_total'), 0);
}

function subscribedLog(fwd: ForwarderProcess, filter: string, after: number): Promise<LogLine> {
  return fwd.waitForLog(
    (l) => l.msg === 'mqtt subscribed' && l['filter'] === filter && fwd.lines.indexOf(l) >= after,
    30_000,
    `SUBACK for ${filter}`,
  );
}

describe('config reload (SIGHUP)', () => {
  test(
    'under load: a mapping added and two changed, every message exactly once, no reconnect',
    { timeout: 180_000 },
    async () => {
      const base = uniqueName('rl-load');
      const COUNT = 20_000;
      const a = (qos: 1 | 2): MappingSpec => ({
        name: 'a',
        mqtt: { topic: `${base}/a/#`, qos },
        kafka: { topic: `${base}-a` },
      });
      const b = (wrap: boolean): MappingSpec => ({
        name: 'b',
        mqtt: { topic: `${base}/b/#`, qos: 1 },
        kafka: { topic: `${base}-b` },
        wrap_as_json: wrap,
      });
      const file = writeConfig(testConfig([a(1)]));
      const fwd = pool.start(file);
      await ready(fwd);
      assert.equal(await metric(fwd, 'mkf_config_generation'), 1);

      const s = stream({ count: COUNT, rate: 2_000, topic: (i) => `${base}/a/s${i % 4}` });
      await until('stream at 4000', () => s.handed() >= 4_000 || s.handed() >= COUNT);
      // 1: b added (a second filter: subscription identifiers from now on), a's QoS 1 → 2.
      rewrite(file, testConfig([a(2), b(false)]));
      const mark = fwd.lines.length;
      const first = await reload(fwd, 2);
      assert.equal(first.msg, 'config reloaded', JSON.stringify(first));
      assert.deepEqual([first['added'], first['changed'], first['removed']], [['b'], ['a'], []]);
      await subscribedLog(fwd, `${base}/b/#`, mark);
      const again = await subscribedLog(fwd, `${base}/a/#`, mark);
      assert.equal(again['qos'], 2, "a's filter subscribed again at its new QoS");
      await until('stream at 8000', () => s.handed() >= 8_000 || s.handed() >= COUNT);
      // 2: b wraps its payloads from now on, a back to QoS 1.
      rewrite(file, testConfig([a(1), b(true)]));
      const second = await reload(fwd, 3);
      assert.equal(second.msg, 'config reloaded', JSON.stringify(second));
      assert.deepEqual(second['changed'], ['a', 'b']);
      const handedAtSecond = s.handed();
      assert.ok(handedAtSecond < COUNT, `second reload inside the stream (${handedAtSecond})`);
      await publishMany({
        count: 200,
        qos: 1,
        topic: (i) => `${base}/b/d${i % 3}`,
        payload: (i) => String(i),
      });
      await s.done;

      const bRecords = await readUntil(`${base}-b`, (r) => r.length >= 200);
      await drained(fwd);
      const aRecords = await readAll(`${base}-a`);
      assert.deepEqual(notExactlyOnce(aRecords, range(0, COUNT)).slice(0, 20), []);
      const unwrapped = (await readAll(`${base}-b`)).map((r) => {
        const json = JSON.parse(r.value.toString()) as { topic: string; payload: string };
        assert.match(json.topic, new RegExp(`^${base}/b/d[0-2]$`));
        return { key: r.key, value: Buffer.from(json.payload, 'base64') };
      });
      assert.ok(bRecords.length >= 200);
      assert.deepEqual(notExactlyOnce(unwrapped, range(0, 200)), [], 'b: wrapped, exactly once');

      await connectedOnce(fwd);
      assert.equal(await metric(fwd, 'mkf_config_generation'), 3);
      assert.equal(await metric(fwd, 'mkf_config_reloads_total{result="applied"}'), 2);
      assert.equal(await metric(fwd, 'mkf_config_reloads_total{result="refused"}'), 0);
      await pool.stop(fwd);
    },
  );

  test(
    'a mapping removed under load: what came before arrives, nothing after; ready throughout',
    { timeout: 180_000 },
    async () => {
      const base = uniqueName('rl-remove');
      const COUNT = 12_000;
      const keep: MappingSpec = {
        name: 'keep',
        mqtt: { topic: `${base}/k/#`, qos: 1 },
        kafka: { topic: `${base}-k` },
      };
      const gone: MappingSpec = {
        name: 'gone',
        mqtt: { topic: `${base}/g/#`, qos: 1 },
        kafka: { topic: `${base}-g` },
      };
      const file = writeConfig(testConfig([keep, gone]));
      const fwd = pool.start(file);
      await ready(fwd);
      const probes: number[] = [];
      let probing = true;
      const prober = (async () => {
        while (probing) {
          probes.push((await fwd.get('/readyz')).status);
          await sleep(20);
        }
      })();

      // Kafka creates the topic on the first record, which may take seconds: not in the stream.
      await publishMany({ count: 1, qos: 1, topic: () => `${base}/g/one`, payload: () => '-1' });
      await readUntil(`${base}-g`, (r) => r.length >= 1);
      // One MQTT topic: received in order, so Kafka must hold exactly a prefix of the ids.
      const s = stream({ count: COUNT, rate: 2_000, topic: () => `${base}/g/one` });
      // The mapping demonstrably forwards in the stream before it is removed.
      await until(
        '1000 of the stream forwarded',
        async () =>
          (await metric(fwd, 'mkf_messages_forwarded_total{mapping="gone"}')) >= 1_001 ||
          s.handed() >= COUNT,
      );
      rewrite(file, testConfig([keep]));
      const mark = fwd.lines.length;
      const applied = await reload(fwd, 2);
      assert.deepEqual(applied['removed'], ['gone'], JSON.stringify(applied));
      const handedAtReload = s.handed();
      assert.ok(handedAtReload < COUNT - 1_000, `reload inside the stream (${handedAtReload})`);
      await fwd.waitForLog(
        (l) =>
          l.msg === 'mqtt unsubscribed' &&
          l['filter'] === `${base}/g/#` &&
          fwd.lines.indexOf(l) >= mark,
        60_000,
        'UNSUBSCRIBE of the removed filter',
      );
      await s.done;
      await drained(fwd);
      // After the unsubscribe the broker does not even deliver them.
      const receivedBefore = await metric(fwd, 'mkf_mqtt_messages_received_total');
      await publishMany({
        count: 100,
        qos: 1,
        topic: () => `${base}/g/one`,
        payload: (i) => String(COUNT + i),
      });
      await publishMany({
        count: 50,
        qos: 1,
        topic: () => `${base}/k/x`,
        payload: (i) => String(i),
      });
      const kept = await readUntil(`${base}-k`, (r) => r.length >= 50);
      assert.deepEqual(notExactlyOnce(kept, range(0, 50)), [], 'the kept mapping forwards');
      await drained(fwd);
      assert.equal(
        await metric(fwd, 'mkf_mqtt_messages_received_total'),
        receivedBefore + 50,
        'only the kept filter delivers after the unsubscribe',
      );

      const ids = [...idsOf(await readAll(`${base}-g`)).keys()].filter((id) => id >= 0);
      const n = ids.length;
      assert.ok(n >= 1_000, `forwarded before the reload: ${n}`);
      assert.ok(n < COUNT, `not forwarded after the reload: ${COUNT - n} of ${COUNT}`);
      assert.deepEqual(
        notExactlyOnce(await readAll(`${base}-g`), range(-1, n)).slice(0, 20),
        [],
        'a prefix of the stream, each exactly once: nothing received before the reload lost',
      );

      probing = false;
      await prober;
      assert.ok(probes.length > 10, `readiness sampled (${probes.length})`);
      assert.deepEqual(
        probes.filter((p) => p !== 200),
        [],
        'ready throughout',
      );
      await connectedOnce(fwd);
      await pool.stop(fwd);
    },
  );

  test('a bad reload is refused with the lines a start prints; the running config stays', async () => {
    const base = uniqueName('rl-bad');
    const m: MappingSpec = {
      name: 'm',
      mqtt: { topic: `${base}/#`, qos: 1 },
      kafka: { topic: base },
    };
    const good = testConfig([m]);
    const file = writeConfig(good);
    const fwd = pool.start(file);
    await ready(fwd);
    /** What a start with the file prints: exit 2, the problem lines on stderr. */
    const startLines = (): string[] => {
      const r = spawnSync(
        process.execPath,
        [path.join(REPO_ROOT, 'bin', 'forwarder.js'), '--config', file],
        {
          cwd: REPO_ROOT,
          encoding: 'utf8',
          timeout: 30_000,
        },
      );
      assert.equal(r.status, 2, r.stderr);
      return r.stderr.trimEnd().split('\n');
    };

    const cases: [string, string, string][] = [
      ['not YAML', 'forwarding:\n  - name: m\n   mqtt: [\n', 'ERR_CONFIG_FILE'],
      [
        'a schema error',
        stringify({ ...good, forwarding: [{ ...m, mqtt: { topic: `${base}/#`, qos: -1 } }] }),
        'ERR_CONFIG_INVALID',
      ],
    ];
    for (const [i, [what, text, configError]] of cases.entries()) {
      writeFileSync(file, text);
      const expected = startLines();
      const refused = await reload(fwd, 2);
      assert.equal(
        refused['code'],
        'ERR_CONFIG_RELOAD_REFUSED',
        `${what}: ${JSON.stringify(refused)}`,
      );
      assert.equal(refused.level, 50, 'error level');
      assert.equal(refused['configError'], configError);
      assert.equal(refused['generation'], 1);
      assert.deepEqual(refused['lines'], expected, `${what}: the lines a start prints`);
      assert.equal(await metric(fwd, 'mkf_config_reloads_total{result="refused"}'), i + 1);
      assert.equal(await metric(fwd, 'mkf_config_generation'), 1);
    }
    // Still forwarding with the old config.
    await publishMany({ count: 20, qos: 1, topic: () => `${base}/x`, payload: (i) => String(i) });
    const records = await readUntil(base, (r) => r.length >= 20);
    assert.deepEqual(notExactlyOnce(records, range(0, 20)), []);
    // Fixed: the next SIGHUP applies it.
    rewrite(file, good);
    const applied = await reload(fwd, 2);
    assert.equal(applied.msg, 'config reloaded');
    assert.equal(await metric(fwd, 'mkf_config_generation'), 2);
    assert.equal(await metric(fwd, 'mkf_config_reloads_total{result="applied"}'), 1);
    await pool.stop(fwd);
  });

  test('changes outside forwarding are reported as needing a restart, not applied; forwarding is', async () => {
    const base = uniqueName('rl-restart');
    const a: MappingSpec = {
      name: 'a',
      mqtt: { topic: `${base}/a/#`, qos: 1 },
      kafka: { topic: `${base}-a` },
    };
    const b: MappingSpec = {
      name: 'b',
      mqtt: { topic: `${base}/b/#`, qos: 1 },
      kafka: { topic: `${base}-b` },
    };
    const file = writeConfig(testConfig([a], { dispatch: { workers: 1 } }));
    const fwd = pool.start(file);
    await ready(fwd);
    // Nothing listens on MQTT_PORT + 1: applied, it would drop the connection.
    rewrite(file, testConfig([a, b], { dispatch: { workers: 2 }, mqtt: { port: MQTT_PORT + 1 } }));
    for (const generation of [2, 3]) {
      const mark = fwd.lines.length;
      const applied = await reload(fwd, generation);
      assert.equal(applied.msg, 'config reloaded', JSON.stringify(applied));
      const warn = fwd.lines.slice(mark).find((l) => l['code'] === 'ERR_CONFIG_NEEDS_RESTART');
      assert.ok(warn, 'a restart-required warning');
      assert.equal(warn.level, 40, 'warn level');
      assert.deepEqual(warn['paths'], ['mqtt.port', 'dispatch.workers']);
      assert.match(String(warn.msg), /mqtt\.port, dispatch\.workers/);
      // The first reload adds b; the second (same file) changes no mapping but still warns.
      assert.deepEqual(applied['added'], generation === 2 ? ['b'] : []);
    }
    await ready(fwd);
    await publishMany({ count: 30, qos: 1, topic: () => `${base}/b/x`, payload: (i) => String(i) });
    assert.deepEqual(
      notExactlyOnce(await readUntil(`${base}-b`, (r) => r.length >= 30), range(0, 30)),
      [],
    );
    assert.equal(await metric(fwd, 'mkf_workers'), 1, 'worker count unchanged');
    await connectedOnce(fwd);
    await pool.stop(fwd);
  });

  test(
    'MQTT 5 overlapping filters: a third one added mid-stream, each mapping gets each message once',
    { timeout: 180_000 },
    async () => {
      const base = uniqueName('rl-overlap');
      const COUNT = 8_000;
      const spec = (name: string, topic: string): MappingSpec => ({
        name,
        mqtt: { topic, qos: 1 },
        kafka: { topic: `${base}-${name}` },
      });
      const all = spec('all', `${base}/#`);
      const plus = spec('plus', `${base}/x/+`);
      const exact = spec('exact', `${base}/x/y`);
      const file = writeConfig(testConfig([all, plus], { mqtt: { protocol_version: 5 } }));
      const fwd = pool.start(file);
      await ready(fwd);
      const s = stream({ count: COUNT, rate: 2_000, topic: () => `${base}/x/y` });
      await until('stream at 2000', () => s.handed() >= 2_000 || s.handed() >= COUNT);
      rewrite(file, testConfig([all, plus, exact], { mqtt: { protocol_version: 5 } }));
      const mark = fwd.lines.length;
      const applied = await reload(fwd, 2);
      assert.deepEqual(applied['added'], ['exact'], JSON.stringify(applied));
      await subscribedLog(fwd, `${base}/x/y`, mark);
      // Published after the broker granted the new subscription: the new mapping must have it.
      const from = s.handed();
      assert.ok(from < COUNT - 1_000, `the new filter subscribed inside the stream (${from})`);
      await s.done;
      await readUntil(`${base}-exact`, (r) => idsOf(r).has(COUNT - 1));
      await drained(fwd);
      for (const m of ['all', 'plus']) {
        const wrong = notExactlyOnce(await readAll(`${base}-${m}`), range(0, COUNT));
        assert.deepEqual(wrong.slice(0, 20), [], `${m}: each message exactly once`);
      }
      const got = [...idsOf(await readAll(`${base}-exact`)).keys()].sort((x, y) => x - y);
      const first = got[0]!;
      assert.ok(
        first <= from,
        `exact: from its subscription on (first ${first}, granted at ${from})`,
      );
      assert.deepEqual(
        notExactlyOnce(await readAll(`${base}-exact`), range(first, COUNT)).slice(0, 20),
        [],
        'exact: every message from its first on, once',
      );
      await connectedOnce(fwd);
      await pool.stop(fwd);
    },
  );

  test(
    'MQTT 5, one filter to two overlapping ones mid-stream: identifiers switched on, no duplicate',
    { timeout: 180_000 },
    async () => {
      const base = uniqueName('rl-ids-on');
      const COUNT = 8_000;
      const all: MappingSpec = {
        name: 'all',
        mqtt: { topic: `${base}/#`, qos: 1 },
        kafka: { topic: `${base}-all` },
      };
      const one: MappingSpec = {
        name: 'one',
        mqtt: { topic: `${base}/x/+`, qos: 1 },
        kafka: { topic: `${base}-one` },
      };
      const file = writeConfig(testConfig([all], { mqtt: { protocol_version: 5 } }));
      const fwd = pool.start(file);
      await ready(fwd);
      const s = stream({ count: COUNT, rate: 2_000, topic: () => `${base}/x/y` });
      await until('stream at 2000', () => s.handed() >= 2_000 || s.handed() >= COUNT);
      rewrite(file, testConfig([all, one], { mqtt: { protocol_version: 5 } }));
      const mark = fwd.lines.length;
      await reload(fwd, 2);
      const resubscribed = await subscribedLog(fwd, `${base}/#`, mark);
      assert.equal(resubscribed['id'], 1, 'the first filter subscribed again, with its identifier');
      await subscribedLog(fwd, `${base}/x/+`, mark);
      const from = s.handed();
      assert.ok(from < COUNT - 1_000, `switched inside the stream (${from})`);
      await s.done;
      await readUntil(`${base}-one`, (r) => idsOf(r).has(COUNT - 1));
      await drained(fwd);
      const wrongAll = notExactlyOnce(await readAll(`${base}-all`), range(0, COUNT));
      assert.deepEqual(wrongAll.slice(0, 20), [], 'all: each message exactly once');
      const oneIds = idsOf(await readAll(`${base}-one`));
      const dup = [...oneIds].filter(([, n]) => n > 1);
      assert.deepEqual(dup.slice(0, 20), [], 'one: no message twice');
      const missing = range(from, COUNT).filter((id) => !oneIds.has(id));
      assert.deepEqual(missing.slice(0, 20), [], 'one: every message published after its SUBACK');
      await connectedOnce(fwd);
      await pool.stop(fwd);
    },
  );
});
