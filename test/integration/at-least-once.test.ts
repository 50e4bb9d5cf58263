/**
 * At least once across crashes: the forwarder is SIGKILLed several times while a publisher streams
 * thousands of QoS 1 messages with sequence-number payloads, and restarted each time with the same
 * persistent session (mqtt.client_id). Once the stream is over and the forwarder caught up, every
 * id must be in Kafka (read with kcat). Duplicates are allowed and reported; a lost id fails.
 *
 * A message can only be lost if its PUBACK went out before Kafka confirmed it: the broker then
 * forgets it, and the kill takes the forwarder's copy with it.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { uniqueName } from '../helpers/env';
import { testConfig, writeConfig } from '../helpers/forwarder';
import { idsOf, readAll, readUntil } from '../helpers/kafka';
import { forwarderPool, ready, sleep } from '../helpers/kit';
import { dropSession, publishMany } from '../helpers/mqtt';

const COUNT = Number(process.env['AT_LEAST_ONCE_COUNT'] ?? 30_000);
/** When each SIGKILL comes, in ms after the (re)started forwarder is ready. */
const KILL_DELAYS_MS = [300, 150, 450];
const TOPICS = 8;
const WORKERS = 2;

const pool = forwarderPool();
const start = pool.start;

const CASES = [
  { protocol: 5, label: 'MQTT 5', qos: 1 },
  { protocol: 4, label: 'MQTT 3.1.1', qos: 1 },
  { protocol: 5, label: 'MQTT 5', qos: 2 },
] as const;

describe(`at least once: ${KILL_DELAYS_MS.length} × SIGKILL during a ${COUNT}-message stream`, () => {
  for (const c of CASES) {
    test(
      `${c.label}, QoS ${c.qos}: restarted with the same client_id, no message is lost`,
      { timeout: 300_000 },
      async (t) => {
        const base = uniqueName(`alo-v${c.protocol}-q${c.qos}`);
        const configFile = writeConfig(
          testConfig(
            [{ name: 'alo', mqtt: { topic: `${base}/#`, qos: c.qos }, kafka: { topic: base } }],
            {
              mqtt: { client_id: base, protocol_version: c.protocol === 5 ? 5 : '3.1.1' },
              dispatch: { workers: WORKERS },
              shutdown_timeout_ms: 2_000,
            },
          ),
        );
        let fwd = start(configFile);
        try {
          // The first start creates the persistent session and its subscription, so every
          // message published from here on is kept for the forwarder while it is down.
          await ready(fwd);
          let handed = 0;
          const t0 = Date.now();
          const publishing = publishMany({
            count: COUNT,
            qos: c.qos,
            protocolVersion: c.protocol,
            // Several topics, so both workers (lanes) carry messages.
            topic: (i) => `${base}/s/${i % TOPICS}`,
            payload: (i) => {
              handed = i + 1;
              return String(i);
            },
            // Keeps the stream going for seconds rather than one burst.
            maxInflight: 2,
            timeoutMs: 180_000,
          }).then(
            () => ({ ms: Date.now() - t0, err: undefined }),
            (err: unknown) => ({ ms: Date.now() - t0, err }),
          );

          const kills: string[] = [];
          let midStream = 0;
          for (const [k, delay] of KILL_DELAYS_MS.entries()) {
            await sleep(delay);
            const r = await fwd.stop('SIGKILL', 10_000);
            const sent = handed;
            assert.equal(r.signal, 'SIGKILL', `kill ${k}: forwarder exit ${JSON.stringify(r)}`);
            const inKafka = idsOf(await readAll(base)).size;
            if (inKafka < sent) midStream++;
            kills.push(
              `kill ${k} at +${Date.now() - t0} ms: ${sent} handed to the publisher, ${inKafka} ids in Kafka`,
            );
            fwd = start(configFile);
            await ready(fwd);
          }

          const pub = await publishing;
          assert.equal(pub.err, undefined, `publisher failed: ${String(pub.err)}`);
          const records = await readUntil(base, (recs) => idsOf(recs).size >= COUNT, 120_000);
          const ids = idsOf(records);
          const missing: number[] = [];
          for (let i = 0; i < COUNT; i++) if (!ids.has(i)) missing.push(i);
          const duplicates = records.length - ids.size;
          for (const k of kills) t.diagnostic(k);
          t.diagnostic(
            `${c.label} QoS ${c.qos}: published ${COUNT} in ${pub.ms} ms; Kafka has ${records.length} records, ${ids.size} distinct ids, ${duplicates} duplicates, ${missing.length} lost`,
          );
          assert.ok(
            midStream > 0,
            `no kill happened while messages were still on their way to Kafka; the test proved nothing:\n${kills.join('\n')}`,
          );
          assert.equal(
            missing.length,
            0,
            `${missing.length} of ${COUNT} messages lost (first ids: ${missing.slice(0, 30).join(',')}); last forwarder lines:\n${fwd.tail(25)}`,
          );
          const stopped = await fwd.stop('SIGTERM', 20_000);
          assert.equal(
            stopped.code,
            0,
            `final SIGTERM exit ${JSON.stringify(stopped)}:\n${fwd.tail(25)}`,
          );
        } finally {
          await fwd.stop('SIGKILL', 5_000);
          await dropSession(base);
        }
      },
    );
  }
});
