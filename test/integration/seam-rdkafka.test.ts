/**
 * Seam test for src/seams/rdkafka.ts: what the forwarder relies on in the Kafka binding beyond
 * its typed API, checked against the installed binding and the real Kafka. An upgrade of the
 * binding that changes any of it fails here, by name, before it can turn a permanent refusal
 * into an endless retry (or the reverse).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { Producer } from 'node-rdkafka';
import type { LibrdKafkaError } from 'node-rdkafka';
import {
  KAFKA_ERRORS,
  LIBRDKAFKA_VERSION,
  PINNED_RDKAFKA_VERSION,
  errorCodeOf,
  kafkaErrorName,
} from '../../src/seams/rdkafka';
import { KAFKA_BROKERS, REPO_ROOT, uniqueName } from '../helpers/env';
import { createTopic } from '../helpers/kafka';

describe('seam: node-rdkafka', () => {
  test(`installed binding is ${PINNED_RDKAFKA_VERSION} and package.json pins it exactly`, (t) => {
    const installed = (
      JSON.parse(
        readFileSync(path.join(REPO_ROOT, 'node_modules/node-rdkafka/package.json'), 'utf8'),
      ) as { version: string }
    ).version;
    assert.equal(installed, PINNED_RDKAFKA_VERSION, 're-check src/seams/rdkafka.ts, then re-pin');
    const pkg = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    assert.match(pkg.dependencies['node-rdkafka']!, new RegExp(`@${PINNED_RDKAFKA_VERSION}$`));
    t.diagnostic(`librdkafka ${LIBRDKAFKA_VERSION}`);
  });

  test('every code has a name, and an unknown code a readable one', () => {
    for (const [name, code] of Object.entries(KAFKA_ERRORS)) {
      if (code === KAFKA_ERRORS.ERR_UNKNOWN) continue;
      // Aliases share a code; the name given back must at least be one of the code's names.
      assert.equal(KAFKA_ERRORS[kafkaErrorName(code) as keyof typeof KAFKA_ERRORS], code, name);
    }
    assert.equal(kafkaErrorName(10), 'ERR_MSG_SIZE_TOO_LARGE');
    assert.equal(kafkaErrorName(123456), 'ERR_123456');
  });

  test('a real delivery failure reaches JS as text only, and the seam gives its code back', async () => {
    const topic = uniqueName('seam-rdkafka');
    // The broker refuses records over 2,000 bytes; librdkafka does not know that limit.
    await createTopic(topic, { 'max.message.bytes': '2000' });
    const producer = new Producer(
      { 'bootstrap.servers': KAFKA_BROKERS, dr_cb: true, log_level: 0 },
      { 'message.timeout.ms': 5_000 },
    );
    await new Promise<void>((resolve, reject) =>
      producer.connect({ timeout: 20_000 }, (err) => (err ? reject(err) : resolve())),
    );
    producer.setPollInterval(10);
    try {
      const report = new Promise<LibrdKafkaError | null>((resolve) =>
        producer.once('delivery-report', (err) => resolve(err)),
      );
      producer.produce(topic, null, Buffer.alloc(5_000), null);
      const err = await report;
      assert.ok(err, 'a delivery error');
      // What the seam works around: the binding hands over no usable code, only the text.
      assert.equal(err.code, KAFKA_ERRORS.ERR_UNKNOWN, `code ${String(err.code)}`);
      assert.equal(errorCodeOf(err), KAFKA_ERRORS.ERR_MSG_SIZE_TOO_LARGE, err.message);
    } finally {
      producer.setPollInterval(0);
      await new Promise<void>((resolve) => producer.disconnect(5_000, () => resolve()));
    }
  });

  test('a local refusal at produce() is thrown with its numeric code', async () => {
    const producer = new Producer({
      'bootstrap.servers': KAFKA_BROKERS,
      log_level: 0,
      'message.max.bytes': 1_000,
    });
    await new Promise<void>((resolve, reject) =>
      producer.connect({ timeout: 20_000 }, (err) => (err ? reject(err) : resolve())),
    );
    try {
      let thrown: unknown;
      try {
        producer.produce(uniqueName('seam-rdkafka-big'), null, Buffer.alloc(5_000), null);
      } catch (err) {
        thrown = err;
      }
      assert.ok(thrown, 'produce() threw');
      assert.equal(errorCodeOf(thrown as LibrdKafkaError), KAFKA_ERRORS.ERR_MSG_SIZE_TOO_LARGE);
    } finally {
      await new Promise<void>((resolve) => producer.disconnect(5_000, () => resolve()));
    }
  });
});
