import assert from 'node:assert/strict';
import { test } from 'node:test';
import { forEachRecord, packBatch } from '../../src/pipeline/4-kafka-produce/codec';

test('a packed batch decodes to the same records, without copies', () => {
  const records = [
    { kafkaTopic: 'plant.a', key: Buffer.from('a/b'), value: Buffer.from('hello') },
    { kafkaTopic: 'plant.b', key: Buffer.alloc(0), value: Buffer.alloc(0) },
    { kafkaTopic: 'plant.a', key: Buffer.from('ü'), value: Buffer.from([0, 255, 10]) },
    { kafkaTopic: 'ünï.c', key: Buffer.from('x'), value: Buffer.from('y') },
  ];
  const buf = packBatch(records);
  const seen: [number, string, string, string][] = [];
  const n = forEachRecord(buf, (i, t, k, v, h) => {
    assert.equal(h, undefined, 'no headers unless given');
    assert.equal(k?.buffer, buf, 'key is a view into the batch');
    seen.push([i, t, k!.toString('hex'), v.toString('hex')]);
  });
  assert.equal(n, 4);
  assert.deepEqual(
    seen,
    records.map((r, i) => [i, r.kafkaTopic, r.key.toString('hex'), r.value.toString('hex')]),
  );
});

test('a corrupt batch is rejected, not half-read', () => {
  const buf = packBatch([{ kafkaTopic: 't', key: Buffer.from('k'), value: Buffer.from('v') }]);
  const longer = new Uint8Array(buf.byteLength + 3);
  longer.set(new Uint8Array(buf));
  assert.throws(() => forEachRecord(longer.buffer, () => undefined), /trailing bytes/);
});

test('headers survive the round trip', () => {
  const buf = packBatch([
    {
      kafkaTopic: 't',
      key: Buffer.from('k'),
      value: Buffer.from('v'),
      headers: [
        { key: 'mqtt_topic', value: Buffer.from('a/b') },
        { key: 'error', value: Buffer.from('ERR_MSG_SIZE_TOO_LARGE: too big') },
      ],
    },
  ]);
  forEachRecord(buf, (_i, _t, _k, _v, h) => {
    assert.deepEqual(
      h?.map((x) => Object.entries(x).map(([k, v]) => [k, v.toString()])),
      [[['mqtt_topic', 'a/b']], [['error', 'ERR_MSG_SIZE_TOO_LARGE: too big']]],
    );
  });
});

test('each topic is named once per batch, whatever the number of its records', () => {
  const one = (n: number) =>
    packBatch(
      Array.from({ length: n }, () => ({
        kafkaTopic: 'a-rather-long-kafka-topic-name',
        key: Buffer.alloc(0),
        value: Buffer.alloc(0),
      })),
    ).byteLength;
  assert.equal(one(2) - one(1), one(3) - one(2), 'a record costs the same without its topic name');
  assert.ok(one(2) - one(1) < 'a-rather-long-kafka-topic-name'.length);
});
