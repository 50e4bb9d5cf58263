/**
 * issue 11 §3: a record Kafka itself refuses as too large (MSG_SIZE_TOO_LARGE, librdkafka code
 * 10) under `on_error: stop` is offered again every STOP_RETRY_MS, so the forwarder resumes by
 * itself once the topic's max.message.bytes is raised. Only the forwarder's own payload limit
 * (mqtt.max_payload_bytes) is never retried. The refusal used to be marked with the same number
 * 10 as the payload limit, and a Kafka refusal was held until a restart.
 *
 * This runs a real forwarder against the real brokers; test/unit/settle.test.ts checks the same
 * rule on the batcher and settler alone, for both origins.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { STOP_RETRY_MS } from '../../src/pipeline/5-settle/settle';
import { uniqueName } from '../helpers/env';
import { testConfig, writeConfig } from '../helpers/forwarder';
import type { MappingSpec } from '../helpers/forwarder';
import { TOPIC_MARKER, createTopic, readUntil } from '../helpers/kafka';
import { forwarderPool, ready, until } from '../helpers/kit';
import { publishMany } from '../helpers/mqtt';
import { alterTopicConfig, describeTopicConfig } from '../helpers/topic-config';

const BIG = 'B'.repeat(5000);
/** Time allowed past the retry period: the retried produce, the ack release, MQTT resuming. */
const MARGIN_MS = 15_000;

const pool = forwarderPool();

describe('on_error: stop, Kafka refuses a record as too large, then its limit is raised', () => {
  test('the forwarder resumes by itself within the retry period and loses nothing', async (t) => {
    const name = uniqueName('oversize-resume');
    await createTopic(name, { 'max.message.bytes': '2000' });
    const mapping: MappingSpec & { on_error: string } = {
      name: 'm',
      mqtt: { topic: `${name}/#`, qos: 1 },
      kafka: { topic: name },
      on_error: 'stop',
    };
    const fwd = pool.start(writeConfig(testConfig([mapping], { shutdown_timeout_ms: 1000 })));
    await ready(fwd);

    // The big message first, then small ones on other topics behind it.
    await publishMany({
      count: 4,
      qos: 1,
      topic: (i) => `${name}/dev${i}`,
      payload: (i) => (i === 0 ? BIG : `small-${i}`),
    });
    await until(
      'not ready with the halt reason',
      async () => {
        const r = await fwd.get('/readyz');
        const body = (await r.json()) as Record<string, unknown>;
        return r.status === 503 && typeof body['halted'] === 'string';
      },
      { timeoutMs: 30_000 },
    );
    const refusal = await fwd.waitForLog((l) => l['code'] === 'ERR_KAFKA_DELIVERY');
    assert.equal(refusal['kafkaError'], 'ERR_MSG_SIZE_TOO_LARGE');
    assert.equal(refusal['action'], 'stop');
    const refusedAt = Date.parse(String(refusal['time']));
    assert.ok(Number.isFinite(refusedAt), `log time ${String(refusal['time'])}`);

    // Published while reading is paused: the broker holds them until the forwarder resumes.
    await publishMany({
      count: 2,
      qos: 1,
      topic: (i) => `${name}/late${i}`,
      payload: (i) => `late-${i}`,
    });

    await alterTopicConfig(name, { 'max.message.bytes': '1000000' });
    assert.equal((await describeTopicConfig(name))['max.message.bytes'], '1000000');
    const raisedAt = Date.now();

    // The retry timer started at the refusal: the held record goes out at the next offer.
    const deadline = refusedAt + STOP_RETRY_MS + MARGIN_MS;
    const resumed = await fwd.waitForLog(
      (l) => l.msg === 'Kafka took the held message; reading MQTT again',
      Math.max(deadline - Date.now(), 1_000),
      'resume after the limit was raised',
    );
    const resumedAt = Date.parse(String(resumed['time']));
    t.diagnostic(
      `refused→resumed ${resumedAt - refusedAt} ms; limit raised→resumed ${resumedAt - raisedAt} ms`,
    );
    assert.equal(fwd.child.exitCode, null, 'resumed without a restart');
    assert.equal(refusal['origin'], 'kafka');

    const expected = [BIG, 'small-1', 'small-2', 'small-3', 'late-0', 'late-1'];
    const got = (
      await readUntil(name, (r) => {
        const v = new Set(r.map((x) => x.value.toString()));
        return expected.every((e) => v.has(e));
      })
    )
      .map((r) => r.value.toString())
      .filter((v) => v !== TOPIC_MARKER);
    for (const e of expected) {
      assert.ok(got.includes(e), `${e.slice(0, 12)} in Kafka: ${got.map((v) => v.slice(0, 12))}`);
    }
    assert.deepEqual([...new Set(got)].sort(), [...expected].sort(), 'nothing unexpected');

    // Everything acknowledged to MQTT and ready again.
    await until(
      'window empty and ready',
      async () => {
        const m = await fwd.metrics();
        return /^mkf_inflight_messages 0$/m.test(m) && (await fwd.get('/readyz')).status === 200;
      },
      { timeoutMs: 10_000 },
    );
    await pool.stop(fwd);
  });
});
