/**
 * Deliveries across a replaced Kafka client (kafka-producer.ts, replaceLostClient): records
 * detached from a lost client are produced again on the next one, settle once on its report,
 * and a late report from the lost client is ignored.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DeliveryReport, LibrdKafkaError, Producer } from 'node-rdkafka';
import { packBatch } from '../../src/pipeline/4-kafka-produce/codec';
import { Deliveries } from '../../src/pipeline/4-kafka-produce/deliveries';
import { createLogger } from '../../src/observability/logger';

interface FakeClient {
  readonly produced: unknown[];
  readonly producer: Producer;
}

function fakeClient(): FakeClient {
  const produced: unknown[] = [];
  const producer = {
    produce: (...args: unknown[]) => {
      produced.push(args[5]);
      return true;
    },
  } as unknown as Producer;
  return { produced, producer };
}

function report(opaque: unknown): DeliveryReport {
  return { opaque, topic: 't', partition: 0, offset: 0, size: 1 } as unknown as DeliveryReport;
}

test('records detached from a lost client settle once, on the next client', async () => {
  const lost = fakeClient();
  const next = fakeClient();
  let current = lost;
  let generation = 1;
  const deliveries = new Deliveries(
    {
      current: () => current.producer,
      stopping: () => false,
      delivered: () => undefined,
      awaiting: () => undefined,
      generation: () => generation,
    },
    createLogger('silent'),
  );
  const value = new Uint8Array([1]);
  const batch = deliveries.batch(
    packBatch([
      { kafkaTopic: 't', key: null, value },
      { kafkaTopic: 't', key: null, value },
    ]),
  );
  assert.equal(lost.produced.length, 2);
  assert.equal(deliveries.unconfirmed, 2);

  // The client is lost: both records are detached and produced again on the next client.
  const detached = deliveries.detach();
  assert.equal(detached.length, 2);
  assert.equal(deliveries.unconfirmed, 0);
  current = next;
  generation = 2;
  deliveries.produceAgain(detached);
  assert.equal(next.produced.length, 2);
  assert.equal(deliveries.unconfirmed, 2);

  // A late report from the lost client (here: the purge at its destroy) changes nothing.
  const purged = { code: -152, message: 'purged' } as unknown as LibrdKafkaError;
  deliveries.onReport(purged, report(lost.produced[0]), 1);
  deliveries.onReport(null, report(lost.produced[1]), 1);
  assert.equal(deliveries.unconfirmed, 2);
  assert.equal(next.produced.length, 2, 'no extra attempt for a stale report');

  deliveries.onReport(null, report(next.produced[0]), 2);
  deliveries.onReport(null, report(next.produced[1]), 2);
  assert.deepEqual(await batch, { kind: 'batch', delivered: 2, failures: [] });
  assert.equal(deliveries.unconfirmed, 0);
});
