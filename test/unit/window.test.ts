import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InflightWindow } from '../../src/pipeline/6-mqtt-ack/window';
import type { WindowEntry } from '../../src/pipeline/6-mqtt-ack/window';

function setup(maxMessages = 10, maxBytes = 1_000_000) {
  const released: number[][] = [];
  const w = new InflightWindow(maxMessages, maxBytes, (r: readonly WindowEntry[]) =>
    released.push(r.map((e) => e.messageId)),
  );
  return { w, released };
}

test('releases acks only as the confirmed prefix, in receive order', () => {
  const { w, released } = setup();
  const a = w.admit(1, 1, 1, 10, 1);
  const b = w.admit(1, 2, 1, 10, 1);
  const c = w.admit(1, 3, 1, 10, 1);
  w.confirm(c);
  w.confirm(b);
  assert.deepEqual(released, [], 'nothing before the oldest is confirmed');
  w.confirm(a);
  assert.deepEqual(released, [[1, 2, 3]], 'all three in one release, in order');
  assert.equal(w.size, 0);
  assert.equal(w.bytes, 0);
});

test('a message for several mappings is released after its last delivery', () => {
  const { w, released } = setup();
  const a = w.admit(2, 7, 1, 1, 3);
  w.confirm(a);
  w.confirm(a);
  assert.deepEqual(released, []);
  w.confirm(a);
  assert.deepEqual(released, [[7]]);
  assert.throws(() => w.confirm(a), /confirmed more often/);
});

test('a message matching no mapping is released at once, behind older ones', () => {
  const { w, released } = setup();
  const a = w.admit(1, 1, 1, 1, 1);
  w.admit(1, 2, 1, 1, 0);
  assert.deepEqual(released, []);
  w.confirm(a);
  assert.deepEqual(released, [[1, 2]]);
});

test('full by count: the reader is held until a release makes room', () => {
  const { w } = setup(2);
  const a = w.admit(1, 1, 1, 1, 1);
  w.admit(1, 2, 1, 1, 1);
  let resumed = 0;
  w.whenRoom(() => resumed++);
  assert.equal(resumed, 0);
  w.confirm(a);
  assert.equal(resumed, 1);
});

test('full by bytes: the reader is held until a release makes room', () => {
  const { w } = setup(100, 1000);
  const a = w.admit(1, 1, 1, 999, 1);
  w.admit(1, 2, 1, 1, 1);
  let resumed = 0;
  w.whenRoom(() => resumed++);
  assert.equal(resumed, 0);
  w.confirm(a);
  assert.equal(resumed, 1);
});

test('after close() the reader is never resumed, and drained() waits for the rest', async () => {
  const { w } = setup();
  const a = w.admit(1, 1, 1, 1, 1);
  w.close();
  let resumed = 0;
  w.whenRoom(() => resumed++);
  let drained = false;
  const p = w.drained().then(() => (drained = true));
  await Promise.resolve();
  assert.equal(drained, false);
  w.confirm(a);
  await p;
  assert.equal(drained, true);
  assert.equal(resumed, 0);
});

test('stays in order across compaction of a long run', () => {
  const { w, released } = setup(5000, 1e9);
  const entries = Array.from({ length: 4000 }, (_, i) => w.admit(1, i, 1, 1, 1));
  for (let i = entries.length - 1; i >= 0; i--) w.confirm(entries[i]!);
  assert.equal(released.length, 1);
  assert.deepEqual(
    released[0],
    Array.from({ length: 4000 }, (_, i) => i),
  );
  const more = Array.from({ length: 3000 }, (_, i) => w.admit(1, i, 1, 1, 1));
  for (const e of more) w.confirm(e);
  assert.equal(released.flat().length, 7000);
});

test('settling: confirms inside release once, at the end, as one ordered prefix', () => {
  const { w, released } = setup();
  const entries = [1, 2, 3, 4].map((id) => w.admit(1, id, 0, 10, 1));
  w.settling(() => {
    w.confirm(entries[0]!);
    w.confirm(entries[1]!);
    w.confirm(entries[3]!);
    assert.deepEqual(released, [], 'nothing released before settling ends');
  });
  assert.deepEqual(released, [[1, 2]], 'one release; 4 waits behind unconfirmed 3');
  w.confirm(entries[2]!);
  assert.deepEqual(released, [
    [1, 2],
    [3, 4],
  ]);
});

test('settling: a throwing callback still releases what it confirmed', () => {
  const { w, released } = setup();
  const a = w.admit(1, 1, 0, 10, 1);
  assert.throws(() =>
    w.settling(() => {
      w.confirm(a);
      throw new Error('boom');
    }),
  );
  assert.deepEqual(released, [[1]]);
});

test('whenReleasedThrough: resolves once everything admitted up to a seq is released', async () => {
  const { w } = setup();
  assert.equal(w.lastSeq, -1, 'nothing admitted yet');
  await w.whenReleasedThrough(-1);
  const a = w.admit(1, 1, 1, 1, 1);
  const b = w.admit(1, 2, 1, 1, 1);
  const through = w.lastSeq;
  assert.equal(through, b.seq);
  const later = w.admit(1, 3, 1, 1, 1);
  const done: string[] = [];
  void w.whenReleasedThrough(through).then(() => done.push('through b'));
  void w.whenReleasedThrough(a.seq).then(() => done.push('through a'));
  void w.whenReleasedThrough(later.seq).then(() => done.push('through later'));
  const settle = () => new Promise((r) => setImmediate(r));
  w.confirm(b);
  await settle();
  assert.deepEqual(done, [], 'b confirmed, but a (older) holds the release');
  w.confirm(a);
  await settle();
  assert.deepEqual(done, ['through a', 'through b'], 'in seq order; the newer one still waits');
  w.confirm(later);
  await settle();
  assert.deepEqual(done, ['through a', 'through b', 'through later']);
  await w.whenReleasedThrough(later.seq);
});

test('whenReleasedThrough: a message matching nothing and an empty window count as released', async () => {
  const { w } = setup();
  const held = w.admit(1, 1, 1, 1, 1);
  w.admit(1, 2, 1, 1, 0);
  let resolved = false;
  void w.whenReleasedThrough(w.lastSeq).then(() => (resolved = true));
  await new Promise((r) => setImmediate(r));
  assert.equal(resolved, false);
  w.confirm(held);
  await new Promise((r) => setImmediate(r));
  assert.equal(resolved, true);
  assert.equal(w.size, 0);
  let empty = false;
  await w.whenReleasedThrough(w.lastSeq).then(() => (empty = true));
  assert.equal(empty, true);
});
