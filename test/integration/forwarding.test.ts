/**
 * Every message arrives, with the right key and value: QoS 0/1/2 × MQTT 3.1.1/5 × wrap on/off,
 * in worker mode and inline mode, against the real mosquitto and Kafka, read back with kcat.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { uniqueName } from '../helpers/env';
import { testConfig, writeConfig } from '../helpers/forwarder';
import type { ForwarderProcess } from '../helpers/forwarder';
import { readUntil } from '../helpers/kafka';
import { forwarderPool, ready } from '../helpers/kit';
import { publishMany } from '../helpers/mqtt';

const COUNT = 300;
const MODES = [
  { name: 'workers', workers: 2 },
  { name: 'inline', workers: 0 },
] as const;
const PROTOCOLS = [5, 4] as const;

const pool = forwarderPool();

for (const mode of MODES) {
  for (const protocol of PROTOCOLS) {
    describe(`forwarding: ${mode.name} mode, MQTT ${protocol === 5 ? '5' : '3.1.1'}`, () => {
      const base = uniqueName(`fw-${mode.name}-${protocol}`);
      const rawTopic = `${base}-raw`;
      const wrapTopic = `${base}-wrap`;
      let fwd: ForwarderProcess;

      before(async () => {
        fwd = pool.start(
          writeConfig(
            testConfig(
              [
                { name: 'raw', mqtt: { topic: `${base}/raw/#` }, kafka: { topic: rawTopic } },
                {
                  name: 'wrapped',
                  mqtt: { topic: `${base}/wrap/#` },
                  kafka: { topic: wrapTopic },
                  wrap_as_json: true,
                },
              ],
              {
                mqtt: { protocol_version: protocol === 5 ? 5 : '3.1.1' },
                dispatch: { workers: mode.workers },
              },
            ),
          ),
        );
        await ready(fwd);
      });

      after(async () => {
        const { code } = await fwd.stop();
        assert.equal(code, 0, `forwarder exit code; last lines:\n${fwd.tail()}`);
      });

      for (const qos of [0, 1, 2] as const) {
        for (const wrap of [false, true]) {
          test(`QoS ${qos}, wrap_as_json ${wrap}`, async () => {
            const mqttTopic = `${base}/${wrap ? 'wrap' : 'raw'}/q${qos}/dev-1`;
            const payload = (i: number): string => `q${qos}-${i}-${'x'.repeat(i % 50)}`;
            await publishMany({
              count: COUNT,
              qos,
              protocolVersion: protocol,
              topic: () => mqttTopic,
              payload,
            });
            const records = (
              await readUntil(
                wrap ? wrapTopic : rawTopic,
                (r) => r.filter((x) => x.key?.toString() === mqttTopic).length >= COUNT,
              )
            ).filter((r) => r.key?.toString() === mqttTopic);
            assert.equal(records.length, COUNT, `records for ${mqttTopic}`);
            records.forEach((r, i) => {
              const expected = wrap
                ? `{"topic":"${mqttTopic}","payload":"${Buffer.from(payload(i)).toString('base64')}"}`
                : payload(i);
              assert.equal(r.value.toString(), expected, `record ${i}`);
            });
          });
        }
      }
    });
  }
}
