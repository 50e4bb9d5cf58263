/**
 * Kafka topic and key rendered from MQTT topic levels, a rendered name Kafka cannot take under
 * each on_error policy, and MQTT metadata and MQTT 5 properties as Kafka headers — end to end,
 * read back with kcat.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { uniqueName } from '../helpers/env';
import { testConfig, writeConfig } from '../helpers/forwarder';
import type { ForwarderProcess } from '../helpers/forwarder';
import { readAll, readUntil, readWithHeaders } from '../helpers/kafka';
import { forwarderPool, ready, until } from '../helpers/kit';
import { connectClient, publishMany } from '../helpers/mqtt';

const pool = forwarderPool();

/** kcat's `%h`: `name=value,...`; the test's values contain neither ',' nor '='. */
function headerList(h: string): [string, string][] {
  if (h === '') return [];
  return h.split(',').map((kv) => {
    const eq = kv.indexOf('=');
    return [kv.slice(0, eq), kv.slice(eq + 1)];
  });
}

describe('Kafka topic and key from the MQTT topic', () => {
  const base = uniqueName('tpl');
  let fwd: ForwarderProcess;

  before(async () => {
    fwd = pool.start(
      writeConfig(
        testConfig(
          [
            {
              name: 'levels',
              mqtt: { topic: `${base}/+{site}/sensors/+{device}/#`, qos: 1 },
              kafka: { topic: `${base}-{site}`, key: '{device}' },
            },
            {
              name: 'nokey',
              mqtt: { topic: `${base}n/#`, qos: 1 },
              kafka: { topic: `${base}-n`, key: null },
            },
            {
              name: 'escaped',
              mqtt: { topic: `${base}e/+/+`, qos: 1 },
              kafka: { topic: `${base}-e-{3}` },
            },
          ],
          { dispatch: { workers: 2 } },
        ),
      ),
    );
    await ready(fwd);
  });

  after(async () => {
    assert.equal((await fwd.stop()).code, 0, fwd.tail());
  });

  test('named levels pick the topic and the key; a multi-level tail is matched but not needed', async () => {
    const topics = [
      `${base}/berlin/sensors/t1/temp`,
      `${base}/berlin/sensors/t2/hum/deep`,
      `${base}/paris/sensors/t3/temp`,
    ];
    await publishMany({ count: 3, qos: 1, topic: (i) => topics[i]!, payload: (i) => `p${i}` });
    const berlin = await readUntil(`${base}-berlin`, (r) => r.length >= 2);
    assert.deepEqual(
      berlin.map((r) => [r.key?.toString(), r.value.toString()]),
      [
        ['t1', 'p0'],
        ['t2', 'p1'],
      ],
    );
    const paris = await readUntil(`${base}-paris`, (r) => r.length >= 1);
    assert.deepEqual(
      paris.map((r) => [r.key?.toString(), r.value.toString()]),
      [['t3', 'p2']],
    );
  });

  test('per-topic order holds whatever the rendered topic and key', async () => {
    const n = 2000;
    await publishMany({
      count: n,
      qos: 1,
      topic: (i) => `${base}/lyon/sensors/${i % 2 === 0 ? 'a' : 'b'}/x`,
      payload: (i) => String(i),
    });
    const got = await readUntil(`${base}-lyon`, (r) => r.length >= n);
    for (const device of ['a', 'b']) {
      const seq = got.filter((r) => r.key?.toString() === device).map((r) => Number(r.value));
      assert.equal(seq.length, n / 2);
      assert.deepEqual(
        seq,
        [...seq].sort((x, y) => x - y),
        `device ${device} in receive order`,
      );
    }
  });

  test('key: null gives records without a key', async () => {
    await publishMany({
      count: 2,
      qos: 1,
      topic: (i) => `${base}n/d${i}`,
      payload: (i) => `n${i}`,
    });
    const got = await readUntil(`${base}-n`, (r) => r.length >= 2);
    assert.deepEqual(
      got
        .map((r) => [r.key, r.value.toString()])
        .sort((a, b) => String(a[1]).localeCompare(String(b[1]))),
      [
        [null, 'n0'],
        [null, 'n1'],
      ],
    );
  });

  test("characters Kafka does not allow become '_'; the default key stays the MQTT topic", async () => {
    const topic = `${base}e/x/Wärme 1:a`;
    await publishMany({ count: 1, qos: 1, topic: () => topic, payload: () => 'w' });
    const got = await readUntil(`${base}-e-W_rme_1_a`, (r) => r.length >= 1);
    assert.equal(got[0]?.key?.toString(), topic);
  });
});

describe('a rendered Kafka topic name that Kafka cannot take', () => {
  // `{2}` of `<name>/` is empty: not a legal Kafka topic name, whatever the policy.
  const start = (name: string, policy: Record<string, unknown>, clientId = '') =>
    pool.start(
      writeConfig(
        testConfig(
          [{ name: 'm', mqtt: { topic: `${name}/+`, qos: 1 }, kafka: { topic: '{2}' }, ...policy }],
          { mqtt: { client_id: clientId }, shutdown_timeout_ms: 1000 },
        ),
      ),
    );
  const publish = (name: string) =>
    publishMany({
      count: 3,
      qos: 1,
      topic: (i) => (i === 1 ? `${name}/` : `${name}/${name}-ok`),
      payload: (i) => `m${i}`,
    });

  test('skip: counted, logged, acknowledged; the others arrive', async () => {
    const name = uniqueName('rtp-skip');
    const fwd = start(name, { on_error: 'skip' });
    try {
      await ready(fwd);
      await publish(name);
      const ok = await readUntil(`${name}-ok`, (r) => r.length >= 2);
      assert.deepEqual(
        ok.map((r) => r.value.toString()),
        ['m0', 'm2'],
      );
      await until('skipped and acknowledged', async () => {
        const m = await fwd.metrics();
        return (
          /^mkf_messages_skipped_total\{mapping="m"\} 1$/m.test(m) &&
          /^mkf_inflight_messages 0$/m.test(m)
        );
      });
      const line = await fwd.waitForLog((l) => l['code'] === 'ERR_KAFKA_DELIVERY');
      assert.match(
        String(line.msg),
        /Kafka topic rendered from MQTT topic ".*\/" is not a legal name: Kafka topic name must not be empty/,
      );
      assert.equal(line['action'], 'skip');
    } finally {
      assert.equal((await fwd.stop()).code, 0, fwd.tail());
    }
  });

  test('dead_letter: the original message lands in the dead-letter topic, saying why', async () => {
    const name = uniqueName('rtp-dlq');
    const fwd = start(name, { on_error: 'dead_letter', dead_letter_topic: `${name}-dlq` });
    try {
      await ready(fwd);
      await publish(name);
      await readUntil(`${name}-ok`, (r) => r.length >= 2);
      await readUntil(`${name}-dlq`, (r) => r.length >= 1);
      const [dead] = await readWithHeaders(`${name}-dlq`);
      assert.equal(dead?.value, 'm1');
      const h = new Map(headerList(dead!.headers));
      assert.equal(h.get('mqtt_topic'), `${name}/`);
      assert.match(h.get('error') ?? '', /not a legal name/);
    } finally {
      assert.equal((await fwd.stop()).code, 0, fwd.tail());
    }
  });

  test('stop: not ready, the message stays unacknowledged and is redelivered; nothing lost', async () => {
    const name = uniqueName('rtp-stop');
    const clientId = uniqueName('rtp-stop-client');
    const fwd = start(name, { on_error: 'stop' }, clientId);
    let restarted: ForwarderProcess | undefined;
    try {
      await ready(fwd);
      await publish(name);
      await until('not ready, naming the rendered topic', async () => {
        const r = await fwd.get('/readyz');
        const body = (await r.json()) as Record<string, unknown>;
        return r.status === 503 && /not a legal name/.test(String(body['halted']));
      });
      assert.equal((await fwd.stop()).code, 0, fwd.tail());
      // Same session, told to skip: the held message and the one behind it come again.
      restarted = start(name, { on_error: 'skip' }, clientId);
      await ready(restarted);
      await until('the redelivered message is skipped', async () =>
        /^mkf_messages_skipped_total\{mapping="m"\} 1$/m.test(await restarted!.metrics()),
      );
      const ok = await readUntil(
        `${name}-ok`,
        (r) => new Set(r.map((x) => x.value.toString())).size >= 2,
      );
      assert.deepEqual([...new Set(ok.map((r) => r.value.toString()))].sort(), ['m0', 'm2']);
    } finally {
      if (fwd.child.exitCode === null) await fwd.stop();
      if (restarted) assert.equal((await restarted.stop()).code, 0, restarted.tail());
    }
  });
});

describe('MQTT metadata and MQTT 5 properties as Kafka headers', () => {
  const base = uniqueName('hdr');
  let fwd: ForwarderProcess;

  before(async () => {
    // Retained before the forwarder subscribes: delivered to it with the retain flag set.
    const c = await connectClient({ protocolVersion: 4 });
    await c.publishAsync(`${base}/retained`, 'r', { qos: 1, retain: true });
    await c.endAsync();
    fwd = pool.start(
      writeConfig(
        testConfig([
          {
            name: 'with',
            mqtt: { topic: `${base}/#`, qos: 1 },
            kafka: {
              topic: `${base}-with`,
              headers: {
                user_properties: ['trace-id', 'ünï', 'rep', 'mqtt_topic'],
                user_property_prefix: 'u.',
              },
            },
          },
          {
            name: 'without',
            mqtt: { topic: `${base}/#`, qos: 1 },
            kafka: { topic: `${base}-without` },
          },
        ]),
      ),
    );
    await ready(fwd);
  });

  after(async () => {
    const c = await connectClient({ protocolVersion: 4 });
    await c.publishAsync(`${base}/retained`, '', { qos: 1, retain: true });
    await c.endAsync();
    assert.equal((await fwd.stop()).code, 0, fwd.tail());
  });

  test('MQTT 3.1.1 and MQTT 5 publishers: metadata, properties, allowed user properties only', async () => {
    const v4 = await connectClient({ protocolVersion: 4 });
    await v4.publishAsync(`${base}/v4`, 'a', { qos: 1 });
    await v4.endAsync();
    const v5 = await connectClient({ protocolVersion: 5 });
    await v5.publishAsync(`${base}/v5`, 'b', {
      qos: 1,
      properties: {
        contentType: 'application/json',
        payloadFormatIndicator: true,
        responseTopic: 'reply/here',
        correlationData: Buffer.from('corr-1'),
        messageExpiryInterval: 3600,
        userProperties: {
          'trace-id': 'abc',
          ünï: 'wert-ä',
          rep: ['1', '2'],
          forged: 'x',
          mqtt_topic: 'evil',
        },
      },
    });
    // Not UTF-8: Kafka header values pass the binding as text, so these go as base64.
    await v5.publishAsync(`${base}/v5`, 'c', {
      qos: 1,
      properties: { correlationData: Buffer.from([0xff, 0x00, 0x80]) },
    });
    await v5.endAsync();

    const got = await readUntil(`${base}-with`, (r) => r.length >= 4);
    const byValue = new Map(
      (await readWithHeaders(`${base}-with`)).map((r) => [r.value, headerList(r.headers)]),
    );
    assert.equal(got.length, 4);
    assert.deepEqual(byValue.get('r'), [
      ['mqtt_topic', `${base}/retained`],
      ['mqtt_qos', '1'],
      ['mqtt_retain', 'true'],
    ]);
    assert.deepEqual(byValue.get('a'), [
      ['mqtt_topic', `${base}/v4`],
      ['mqtt_qos', '1'],
      ['mqtt_retain', 'false'],
    ]);
    const b = byValue.get('b')!;
    const expiry = b.find(([k]) => k === 'mqtt_message_expiry_interval')?.[1];
    assert.ok(Number(expiry) > 3500 && Number(expiry) <= 3600, `expiry ${expiry}`);
    assert.deepEqual(
      b.filter(([k]) => k !== 'mqtt_message_expiry_interval'),
      [
        ['mqtt_topic', `${base}/v5`],
        ['mqtt_qos', '1'],
        ['mqtt_retain', 'false'],
        ['mqtt_content_type', 'application/json'],
        ['mqtt_payload_format_indicator', '1'],
        ['mqtt_response_topic', 'reply/here'],
        ['mqtt_correlation_data', 'corr-1'],
        ['u.trace-id', 'abc'],
        ['u.ünï', 'wert-ä'],
        ['u.rep', '1'],
        ['u.rep', '2'],
        ['u.mqtt_topic', 'evil'],
      ],
      'a user property never passes as a metadata header, and forged is not on the allow-list',
    );
    assert.deepEqual(byValue.get('c'), [
      ['mqtt_topic', `${base}/v5`],
      ['mqtt_qos', '1'],
      ['mqtt_retain', 'false'],
      ['mqtt_correlation_data_base64', '/wCA'],
    ]);
    const without = await readUntil(`${base}-without`, (r) => r.length >= 4);
    assert.equal(without.length, 4);
    for (const r of await readWithHeaders(`${base}-without`))
      assert.equal(r.headers, '', 'no headers unless asked for');
    assert.deepEqual((await readAll(`${base}-with`)).map((r) => r.key?.toString()).sort(), [
      `${base}/retained`,
      `${base}/v4`,
      `${base}/v5`,
      `${base}/v5`,
    ]);
  });
});
