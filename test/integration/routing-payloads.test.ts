/**
 * Filter semantics and payload edge cases end to end: wildcard and overlapping mappings, topics
 * starting with `$`, binary, empty and 1 MB payloads, and publish order of 20k messages.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { uniqueName } from '../helpers/env';
import { testConfig, writeConfig } from '../helpers/forwarder';
import type { ForwarderProcess } from '../helpers/forwarder';
import { readAll, readAtLeast, readUntil } from '../helpers/kafka';
import { forwarderPool, ready } from '../helpers/kit';
import { publishMany } from '../helpers/mqtt';

const pool = forwarderPool();

describe('routing and payloads', () => {
  const base = uniqueName('rt');
  const k = (s: string): string => `${base}-${s}`;
  let fwd: ForwarderProcess;

  before(async () => {
    fwd = pool.start(
      writeConfig(
        testConfig(
          [
            { name: 'plus', mqtt: { topic: `${base}/+/temp` }, kafka: { topic: k('plus') } },
            { name: 'hash', mqtt: { topic: `${base}/#` }, kafka: { topic: k('hash') } },
            { name: 'exact', mqtt: { topic: `${base}/dev1/temp` }, kafka: { topic: k('exact') } },
            // A `$` topic reaches us through this subscription; the leading `+` below must not match it.
            { name: 'dollar', mqtt: { topic: `$${base}/#` }, kafka: { topic: k('dollar') } },
            {
              name: 'leading-plus',
              mqtt: { topic: `+/dollar-probe` },
              kafka: { topic: k('lplus') },
            },
            { name: 'payloads', mqtt: { topic: `pl-${base}/#` }, kafka: { topic: k('payloads') } },
            {
              name: 'order',
              mqtt: { topic: `ord-${base}/#`, qos: 1 },
              kafka: { topic: k('order') },
            },
            {
              name: 'shared',
              mqtt: { topic: `$share/g/shr-${base}/#` },
              kafka: { topic: k('shared') },
            },
          ],
          // 1 MB payloads: room for a few in the window, and a Kafka message size to match.
          { dispatch: { workers: 2 }, kafka: { config: { 'message.max.bytes': 2_000_000 } } },
        ),
      ),
    );
    await ready(fwd);
  });

  after(async () => {
    assert.equal((await fwd.stop()).code, 0);
  });

  test('one message matching three mappings lands in each of their topics exactly once', async () => {
    await publishMany({
      count: 1,
      qos: 1,
      topic: () => `${base}/dev1/temp`,
      payload: () => 'overlap',
    });
    for (const t of ['plus', 'hash', 'exact']) {
      const records = await readAtLeast(k(t), 1);
      assert.deepEqual(
        records.map((r) => r.value.toString()),
        ['overlap'],
        `topic ${t}`,
      );
    }
  });

  test('wildcards: + matches one level only, # matches the parent level too', async () => {
    await publishMany({
      count: 3,
      qos: 1,
      topic: (i) => [`${base}/dev2/temp`, `${base}/dev2/x/temp`, `${base}`][i]!,
      payload: (i) => `w${i}`,
    });
    const hash = await readUntil(k('hash'), (r) => r.length >= 4);
    assert.deepEqual(hash.map((r) => r.value.toString()).sort(), ['overlap', 'w0', 'w1', 'w2']);
    const plus = await readUntil(k('plus'), (r) => r.length >= 2);
    assert.deepEqual(
      plus.map((r) => r.value.toString()),
      ['overlap', 'w0'],
    );
  });

  test('a leading wildcard does not match a topic starting with $', async () => {
    await publishMany({
      count: 1,
      qos: 1,
      topic: () => `$${base}/dollar-probe`,
      payload: () => 'dollar',
    });
    // Control message through the same leading-plus mapping, published after the `$` one.
    await publishMany({
      count: 1,
      qos: 1,
      topic: () => `ctl/dollar-probe`,
      payload: () => 'control',
    });
    assert.deepEqual(
      (await readAtLeast(k('dollar'), 1)).map((r) => r.value.toString()),
      ['dollar'],
    );
    const lplus = await readAtLeast(k('lplus'), 1);
    assert.deepEqual(
      lplus.map((r) => r.value.toString()),
      ['control'],
    );
  });

  test('a shared subscription ($share/<group>/<filter>) forwards by its inner filter', async () => {
    await publishMany({
      count: 3,
      qos: 1,
      topic: (i) => `shr-${base}/d${i}`,
      payload: (i) => `s${i}`,
    });
    const records = await readAtLeast(k('shared'), 3);
    assert.deepEqual(records.map((r) => r.value.toString()).sort(), ['s0', 's1', 's2']);
  });

  test('binary, empty and 1 MB payloads arrive byte for byte', async () => {
    const binary = Buffer.from(Array.from({ length: 512 }, (_, i) => i % 256));
    // 1 MB: fits Kafka's default broker limit (message.max.bytes 1048588) with key and overhead.
    const big = Buffer.alloc(1_000_000);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31 + 7) % 251;
    const payloads = [binary, Buffer.alloc(0), big, Buffer.from('\n\r\0"{}', 'utf8')];
    await publishMany({
      count: payloads.length,
      qos: 1,
      topic: (i) => `pl-${base}/p${i}`,
      payload: (i) => payloads[i]!,
    });
    const records = await readAtLeast(k('payloads'), payloads.length);
    const byKey = new Map(records.map((r) => [r.key!.toString(), r.value]));
    payloads.forEach((p, i) => {
      const got = byKey.get(`pl-${base}/p${i}`);
      assert.ok(got, `payload ${i} missing`);
      assert.equal(got.length, p.length, `payload ${i} length`);
      assert.ok(got.equals(p), `payload ${i} bytes`);
    });
  });

  test('20k messages on one topic arrive in publish order', async () => {
    const n = 20_000;
    await publishMany({
      count: n,
      qos: 1,
      topic: () => `ord-${base}/dev`,
      payload: (i) => String(i),
      maxInflight: 1000,
    });
    const records = await readAtLeast(k('order'), n, 120_000);
    const seq = records.map((r) => Number(r.value.toString()));
    // At-least-once allows a duplicate after a retry, never a reordering of first deliveries.
    const firstSeen: number[] = [];
    const seen = new Set<number>();
    for (const s of seq) {
      if (seen.has(s)) continue;
      seen.add(s);
      firstSeen.push(s);
    }
    assert.equal(firstSeen.length, n, 'every message arrived');
    for (let i = 0; i < n; i++)
      if (firstSeen[i] !== i) assert.fail(`position ${i} holds ${firstSeen[i]}`);
    assert.equal((await readAll(k('order'))).length, seq.length);
  });
});
