import assert from 'node:assert/strict';
import { test } from 'node:test';
import { forEachRecord, packBatch, packedSize } from '../../src/pipeline/4-kafka-produce/codec';

test('a packed batch decodes to the same records, without copies', () => {
  const records = [
    { topicIndex: 0, key: Buffer.from('a/b'), value: Buffer.from('hello') },
    { topicIndex: 3, key: Buffer.alloc(0), value: Buffer.alloc(0) },
    { topicIndex: 65535, key: Buffer.from('ü'), value: Buffer.from([0, 255, 10]) },
  ];
  const buf = packBatch(records);
  assert.equal(buf.byteLength, packedSize(records));
  const seen: [number, number, string, string][] = [];
  const n = forEachRecord(buf, (i, t, k, v, h) => {
    assert.equal(h, undefined, 'no headers unless given');
    assert.equal(k.buffer, buf, 'key is a view into the batch');
    seen.push([i, t, k.toString('hex'), v.toString('hex')]);
  });
  assert.equal(n, 3);
  assert.deepEqual(
    seen,
    records.map((r, i) => [i, r.topicIndex, r.key.toString('hex'), r.value.toString('hex')]),
  );
});

test('a corrupt batch is rejected, not half-read', () => {
  const buf = packBatch([{ topicIndex: 0, key: Buffer.from('k'), value: Buffer.from('v') }]);
  const longer = new Uint8Array(buf.byteLength + 3);
  longer.set(new Uint8Array(buf));
  assert.throws(() => forEachRecord(longer.buffer, () => undefined), /trailing bytes/);
});

test('headers survive the round trip', () => {
  const buf = packBatch([
    {
      topicIndex: 1,
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
