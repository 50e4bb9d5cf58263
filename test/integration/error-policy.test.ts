/**
 * Messages Kafka will not take: a real broker refuses records above a topic's
 * max.message.bytes (MSG_SIZE_TOO_LARGE, permanent). Each `on_error` policy is checked end to
 * end: skip acknowledges and counts, dead_letter writes the original message with headers,
 * stop holds the message unacknowledged, reports not ready, and loses nothing.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { uniqueName } from '../helpers/env';
import { testConfig, writeConfig } from '../helpers/forwarder';
import type { ForwarderProcess, MappingSpec } from '../helpers/forwarder';
import { TOPIC_MARKER, createTopic, readUntil, readWithHeaders } from '../helpers/kafka';
import type { KafkaRecord } from '../helpers/kafka';

const values = (records: readonly KafkaRecord[]): string[] =>
  records.map((r) => r.value.toString()).filter((v) => v !== TOPIC_MARKER);
import { forwarderPool, ready, until } from '../helpers/kit';
import { publishMany } from '../helpers/mqtt';

const LIMIT = '2000';
const BIG = 'B'.repeat(5000);

const pool = forwarderPool();

async function readyz(
  fwd: ForwarderProcess,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await fwd.get('/readyz');
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

function start(
  name: string,
  mapping: Partial<MappingSpec> & Record<string, unknown>,
  clientId = '',
  mqtt: Record<string, unknown> = {},
) {
  const fwd = pool.start(
    writeConfig(
      testConfig(
        [{ name: 'm', mqtt: { topic: `${name}/#`, qos: 1 }, kafka: { topic: name }, ...mapping }],
        { mqtt: { client_id: clientId, ...mqtt }, shutdown_timeout_ms: 1000 },
      ),
    ),
  );
  return fwd;
}

const messages = (name: string) => ({
  count: 3,
  qos: 1 as const,
  topic: (i: number) => `${name}/dev${i}`,
  payload: (i: number) => (i === 1 ? BIG : `small-${i}`),
});

describe('on_error policies against a broker that refuses large records', () => {
  test('skip: the refused message is logged, counted and acknowledged; the others arrive', async () => {
    const name = uniqueName('pol-skip');
    await createTopic(name, { 'max.message.bytes': LIMIT });
    const fwd = start(name, { on_error: 'skip' });
    try {
      await ready(fwd);
      await publishMany(messages(name));
      const records = await readUntil(name, (r) => values(r).length >= 2);
      assert.deepEqual(values(records).sort(), ['small-0', 'small-2']);
      await until('skip counted and window empty', async () => {
        const m = await fwd.metrics();
        return (
          /^mkf_messages_skipped_total\{mapping="m"\} 1$/m.test(m) &&
          /^mkf_inflight_messages 0$/m.test(m)
        );
      });
      const line = await fwd.waitForLog((l) => l['code'] === 'ERR_KAFKA_DELIVERY');
      assert.equal(line['mapping'], 'm');
      assert.equal(line['action'], 'skip');
      assert.match(String(line['kafkaError']), /MSG_SIZE_TOO_LARGE/);
    } finally {
      assert.equal((await fwd.stop()).code, 0);
    }
  });

  test('dead_letter: the original message lands in the dead-letter topic with headers', async () => {
    const name = uniqueName('pol-dlq');
    const dlq = `${name}-dlq`;
    await createTopic(name, { 'max.message.bytes': LIMIT });
    const fwd = start(name, {
      on_error: 'dead_letter',
      dead_letter_topic: dlq,
      wrap_as_json: true,
    });
    try {
      await ready(fwd);
      await publishMany(messages(name));
      const dead = await (async () => {
        await readUntil(dlq, (r) => r.length >= 1);
        return readWithHeaders(dlq);
      })();
      assert.equal(dead.length, 1);
      // The original payload, not the wrapped value that was refused.
      assert.equal(dead[0]!.value, BIG);
      for (const h of [`mqtt_topic=${name}/dev1`, 'mqtt_qos=1', 'mqtt_retain=false', 'mapping=m']) {
        assert.ok(dead[0]!.headers.includes(h), `header ${h} in ${dead[0]!.headers}`);
      }
      assert.match(dead[0]!.headers, /error=ERR_MSG_SIZE_TOO_LARGE/);
      assert.equal(values(await readUntil(name, (r) => values(r).length >= 2)).length, 2);
      await until('dead-letter counted', async () =>
        /^mkf_messages_dead_lettered_total\{mapping="m"\} 1$/m.test(await fwd.metrics()),
      );
    } finally {
      assert.equal((await fwd.stop()).code, 0);
    }
  });

  test('stop: reading stops, not ready, nothing acknowledged past the refused message, nothing lost', async () => {
    const name = uniqueName('pol-stop');
    const clientId = uniqueName('stop-client');
    await createTopic(name, { 'max.message.bytes': LIMIT });
    const fwd = start(name, { on_error: 'stop' }, clientId);
    let restarted: ForwarderProcess | undefined;
    try {
      await ready(fwd);
      await publishMany(messages(name));
      await until('not ready with the halt reason', async () => {
        const r = await readyz(fwd);
        return r.status === 503 && typeof r.body['halted'] === 'string';
      });
      const line = await fwd.waitForLog((l) => l['code'] === 'ERR_KAFKA_DELIVERY');
      assert.equal(line['action'], 'stop');
      assert.equal((await fwd.stop()).code, 0, fwd.tail());

      // The refused message and the one behind it were never acknowledged: a forwarder on the
      // same session, told to skip, receives them again. Nothing was lost.
      restarted = start(name, { on_error: 'skip' }, clientId);
      await ready(restarted);
      await until('redelivered message skipped', async () =>
        /^mkf_messages_skipped_total\{mapping="m"\} 1$/m.test(await restarted!.metrics()),
      );
      const got = values(await readUntil(name, (r) => values(r).length >= 2));
      assert.ok(got.includes('small-0') && got.includes('small-2'), got.join(','));
    } finally {
      if (fwd.child.exitCode === null) await fwd.stop();
      if (restarted) assert.equal((await restarted.stop()).code, 0);
    }
  });

  test('mqtt.max_payload_bytes: a larger message goes through the same policy', async () => {
    const name = uniqueName('pol-max');
    const dlq = `${name}-dlq`;
    const fwd = start(name, { on_error: 'dead_letter', dead_letter_topic: dlq }, '', {
      max_payload_bytes: 3000,
    });
    try {
      await ready(fwd);
      await publishMany(messages(name));
      assert.deepEqual(values(await readUntil(name, (r) => values(r).length >= 2)).sort(), [
        'small-0',
        'small-2',
      ]);
      const dead = await readUntil(dlq, (r) => r.length >= 1);
      assert.equal(dead[0]!.value.toString(), BIG);
      const line = await fwd.waitForLog((l) => l['code'] === 'ERR_KAFKA_DELIVERY');
      assert.match(String(line.msg), /exceeds mqtt\.max_payload_bytes \(3000\)/);
    } finally {
      assert.equal((await fwd.stop()).code, 0);
    }
  });
});
