import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Histogram, Registry } from 'prom-client';
import { FastHistogram } from '../../src/observability/fast-histogram';

const BUCKETS = [0.001, 0.01, 0.1, 1];

test('scrapes exactly like a prom-client histogram fed the same values', async () => {
  const ours = new Registry();
  const theirs = new Registry();
  const fast = new FastHistogram('lat_seconds', 'help text', 'mapping', BUCKETS, ours);
  const ref = new Histogram({
    name: 'lat_seconds',
    help: 'help text',
    labelNames: ['mapping'],
    buckets: BUCKETS,
    registers: [theirs],
  });
  // Bucket bounds themselves (le is inclusive), values between, beyond the last bound, zero.
  const values = [0, 0.001, 0.0011, 0.01, 0.05, 0.1, 0.5, 1, 1.5, 30];
  for (const [label, vs] of [
    ['a', values],
    ['b', values.slice(3)],
  ] as const) {
    const child = fast.labels(label);
    const refChild = ref.labels(label);
    for (const v of vs) {
      child.observe(v);
      refChild.observe(v);
    }
  }
  assert.equal(await ours.metrics(), await theirs.metrics());
});

test('a child bound twice shares its series; reset zeroes every series', async () => {
  const reg = new Registry();
  const fast = new FastHistogram('x_seconds', 'h', 'mapping', BUCKETS, reg);
  fast.labels('m').observe(0.5);
  fast.labels('m').observe(2);
  let text = await reg.metrics();
  assert.match(text, /^x_seconds_count\{mapping="m"\} 2$/m);
  assert.match(text, /^x_seconds_bucket\{le="1",mapping="m"\} 1$/m);
  assert.match(text, /^x_seconds_sum\{mapping="m"\} 2.5$/m);
  reg.resetMetrics();
  text = await reg.metrics();
  assert.match(text, /^x_seconds_count\{mapping="m"\} 0$/m);
});

test('refuses buckets that do not increase', () => {
  assert.throws(() => new FastHistogram('y', 'h', 'l', [1, 1], new Registry()), /increase/);
});
