/**
 * Delivery bookkeeping on compact delivery reports (report ids and error codes), and across a
 * replaced Kafka client (kafka-producer.ts, replaceLostClient): records detached from a lost
 * client are produced again on the next one, settle once on its report, and a late report from
 * the lost client is ignored.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Producer } from 'node-rdkafka';
import { packBatch } from '../../src/pipeline/4-kafka-produce/codec';
import { KAFKA_ERRORS } from '../../src/seams/rdkafka';
import { Deliveries } from '../../src/pipeline/4-kafka-produce/deliveries';
import { createLogger } from '../../src/observability/logger';

interface FakeClient {
  /** The report id (opaque) of every produce() call, in order. */
  readonly produced: number[];
  readonly producer: Producer;
}

function fakeClient(): FakeClient {
  const produced: number[] = [];
  const producer = {
    produce: (...args: unknown[]) => {
      produced.push(args[5] as number);
      return true;
    },
  } as unknown as Producer;
  return { produced, producer };
}

function reports(...pairs: [id: number, code: number][]): [Uint32Array, Int32Array] {
  return [Uint32Array.from(pairs, (p) => p[0]), Int32Array.from(pairs, (p) => p[1])];
}

function deliveriesOn(client: () => FakeClient, generation: () => number = () => 1): Deliveries {
  return new Deliveries(
    {
      current: () => client().producer,
      stopping: () => false,
      delivered: () => undefined,
      generation,
    },
    createLogger('silent'),
  );
}

const value = new Uint8Array([1]);

function twoRecords(deliveries: Deliveries) {
  return deliveries.batch(
    packBatch([
      { kafkaTopic: 't', key: null, value },
      { kafkaTopic: 't', key: null, value },
    ]),
  );
}

test('each attempt gets a new report id; a report settles its record once, in any order', async () => {
  const client = fakeClient();
  const deliveries = deliveriesOn(() => client);
  const batch = twoRecords(deliveries);
  assert.equal(client.produced.length, 2);
  const [a, b] = client.produced as [number, number];
  assert.notEqual(a, b);
  assert.ok(a >= 1 && b >= 1, 'id 0 would be no opaque at all');

  // A retriable error produces the record again under a new id; the old id is spent.
  deliveries.onReports(...reports([b, KAFKA_ERRORS.ERR__MSG_TIMED_OUT]), 1);
  // The first retry waits 200 ms (RETRY_MIN_MS doubled once).
  for (let i = 0; i < 100 && client.produced.length < 3; i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(client.produced.length, 3);
  const b2 = client.produced[2]!;
  assert.ok(b2 !== a && b2 !== b);
  assert.equal(deliveries.unconfirmed, 2);

  // The late duplicate of b's report, and a's report twice in one event: settled once each.
  deliveries.onReports(...reports([b, 0], [a, 0], [a, 0]), 1);
  assert.equal(deliveries.unconfirmed, 1);
  deliveries.onReports(...reports([b2, 0]), 1);
  assert.deepEqual(await batch, { kind: 'batch', delivered: 2, failures: [] });
  assert.equal(deliveries.unconfirmed, 0);
});

test("a permanent refusal reaches the result with its code and librdkafka's text", async () => {
  const client = fakeClient();
  const deliveries = deliveriesOn(() => client);
  const batch = twoRecords(deliveries);
  const [a, b] = client.produced as [number, number];
  deliveries.onReports(...reports([a, 0], [b, KAFKA_ERRORS.ERR_TOPIC_AUTHORIZATION_FAILED]), 1);
  assert.deepEqual(await batch, {
    kind: 'batch',
    delivered: 1,
    failures: [
      {
        index: 1,
        code: KAFKA_ERRORS.ERR_TOPIC_AUTHORIZATION_FAILED,
        message: 'ERR_TOPIC_AUTHORIZATION_FAILED: Broker: Topic authorization failed',
      },
    ],
  });
});

test('records detached from a lost client settle once, on the next client', async () => {
  const lost = fakeClient();
  const next = fakeClient();
  let current = lost;
  let generation = 1;
  const deliveries = deliveriesOn(
    () => current,
    () => generation,
  );
  const batch = twoRecords(deliveries);
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
  deliveries.onReports(
    ...reports([lost.produced[0]!, KAFKA_ERRORS.ERR__PURGE_QUEUE], [lost.produced[1]!, 0]),
    1,
  );
  assert.equal(deliveries.unconfirmed, 2);
  assert.equal(next.produced.length, 2, 'no extra attempt for a stale report');

  deliveries.onReports(...reports([next.produced[0]!, 0], [next.produced[1]!, 0]), 2);
  assert.deepEqual(await batch, { kind: 'batch', delivered: 2, failures: [] });
  assert.equal(deliveries.unconfirmed, 0);
});
