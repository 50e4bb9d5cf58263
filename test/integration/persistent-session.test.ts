/**
 * Persistent sessions on the real broker (MQTT_BROKER: mosquitto, hivemq or mochi): a forwarder with a
 * fixed mqtt.client_id stops cleanly; what is published while it is down waits in its session
 * on the broker and reaches Kafka when it comes back, none lost — also when the broker itself
 * is restarted while the forwarder is away (the session and its queue come from the broker's
 * persistence: mosquitto's persistence file, HiveMQ's file persistence, mochi's pebble store).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { MQTT_BROKER, MQTT_PORT, REPO_ROOT, uniqueName } from '../helpers/env';
import { testConfig, writeConfig } from '../helpers/forwarder';
import { idsOf, outOfOrder, readUntil } from '../helpers/kafka';
import { forwarderPool, ready } from '../helpers/kit';
import { dropSession, publishMany } from '../helpers/mqtt';
import { stackCmd } from '../helpers/stack';

const DOWN_COUNT = Number(process.env['PERSISTENT_SESSION_COUNT'] ?? 3_000);
const BEFORE_COUNT = 100;
const TOPICS = 8;
const WORKERS = 2;

const pool = forwarderPool();
const sessions: string[] = [];
after(async () => {
  for (const s of sessions) await dropSession(s);
});

function broker2(cmd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(
      path.join(REPO_ROOT, 'scripts', 'broker2'),
      [cmd],
      {
        env: { ...process.env, MKF_BROKER2: MQTT_BROKER, BROKER2_PORT: String(MQTT_PORT) },
        timeout: 120_000,
      },
      (err, stdout, stderr) =>
        err
          ? reject(new Error(`scripts/broker2 ${cmd}: ${String(err)}\n${stdout}${stderr}`))
          : resolve(),
    );
  });
}

/** A graceful stop and start of the broker on MQTT_PORT, with the tool that started it. */
async function restartBroker(): Promise<void> {
  if (MQTT_BROKER === 'mochi' || MQTT_BROKER === 'hivemq') {
    await broker2('down');
    await broker2('up');
  } else {
    await stackCmd(['down', 'mosquitto']);
    await stackCmd(['up', 'mosquitto']);
  }
}

const CASES = [
  { protocol: 5, label: 'MQTT 5', qos: 1, restart: false },
  { protocol: 4, label: 'MQTT 3.1.1', qos: 1, restart: false },
  { protocol: 5, label: 'MQTT 5', qos: 2, restart: false },
  { protocol: 5, label: 'MQTT 5', qos: 1, restart: true },
  { protocol: 4, label: 'MQTT 3.1.1', qos: 2, restart: true },
] as const;

describe(`persistent session on ${MQTT_BROKER}: messages published while the forwarder is down`, () => {
  for (const c of CASES) {
    test(`${c.label}, QoS ${c.qos}${c.restart ? ', broker restarted meanwhile' : ''}: all ${DOWN_COUNT} delivered after the restart`, async (t) => {
      const base = uniqueName(`ps-v${c.protocol}-q${c.qos}${c.restart ? '-r' : ''}`);
      sessions.push(base);
      const configFile = writeConfig(
        testConfig(
          [{ name: 'ps', mqtt: { topic: `${base}/#`, qos: c.qos }, kafka: { topic: base } }],
          {
            mqtt: { client_id: base, protocol_version: c.protocol === 5 ? 5 : '3.1.1' },
            dispatch: { workers: WORKERS },
          },
        ),
      );
      const publish = (from: number, count: number): Promise<void> =>
        publishMany({
          count,
          qos: c.qos,
          protocolVersion: c.protocol,
          topic: (i) => `${base}/s/${(from + i) % TOPICS}`,
          payload: (i) => String(from + i),
        });

      // The first run creates the session and its subscription, and forwards normally.
      let fwd = pool.start(configFile);
      await ready(fwd);
      await publish(0, BEFORE_COUNT);
      await readUntil(base, (r) => idsOf(r).size >= BEFORE_COUNT, 30_000);
      await pool.stop(fwd);

      // Down: the broker queues for the session.
      await publish(BEFORE_COUNT, DOWN_COUNT);
      if (c.restart) await restartBroker();

      fwd = pool.start(configFile);
      await ready(fwd);
      const total = BEFORE_COUNT + DOWN_COUNT;
      const records = await readUntil(base, (r) => idsOf(r).size >= total, 90_000);
      const ids = idsOf(records);
      const missing: number[] = [];
      for (let i = 0; i < total; i++) if (!ids.has(i)) missing.push(i);
      t.diagnostic(
        `${MQTT_BROKER} ${c.label} QoS ${c.qos}${c.restart ? ' (broker restarted)' : ''}: ` +
          `${records.length} records, ${ids.size} distinct, ${records.length - ids.size} duplicates, ` +
          `${missing.length} lost, ${outOfOrder(records)} out of per-topic order`,
      );
      assert.equal(
        missing.length,
        0,
        `${missing.length} of ${total} lost (first: ${missing.slice(0, 20).join(',')}); last lines:\n${fwd.tail(20)}`,
      );
      await pool.stop(fwd);
    });
  }
});
