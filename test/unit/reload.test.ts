/**
 * The parts of a config reload below the process: subscription ids across router generations,
 * records settling with the policies of the generation that routed them, reloads one at a time.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { serialized } from '../../src/cli/reload';
import { Router } from '../../src/pipeline/2-route/router';
import { KAFKA_ERRORS } from '../../src/seams/rdkafka';
import { fakePipeline, refuse, routeMapping } from '../helpers/fake-pipeline';

const mapping = routeMapping;

test('subscription ids: a kept filter keeps its id, a new one never gets an id used before', () => {
  const g1 = new Router([mapping('a/#', 1), mapping('b/#')], 1);
  assert.deepEqual(
    g1.subscriptions.map((s) => [s.filter, s.id]),
    [
      ['a/#', 1],
      ['b/#', 2],
    ],
  );
  // QoS of a kept filter changes; b moves to the front; c is new.
  const g2 = new Router([mapping('b/#'), mapping('c/#'), mapping('a/#', 2)], 1, g1);
  assert.deepEqual(g2.subscriptions, [
    { filter: 'b/#', qos: 2, id: 2 },
    { filter: 'c/#', qos: 2, id: 3 },
    { filter: 'a/#', qos: 2, id: 1 },
  ]);
  const g3 = new Router([mapping('c/#')], 1, g2);
  assert.deepEqual(g3.subscriptions, [{ filter: 'c/#', qos: 2, id: 3 }]);
  // a/# comes back: a fresh id, so a copy still delivered for its old subscription (id 1) is
  // not taken for the new mapping.
  const g4 = new Router([mapping('c/#'), mapping('a/#')], 1, g3);
  assert.deepEqual(
    g4.subscriptions.map((s) => [s.filter, s.id]),
    [
      ['c/#', 3],
      ['a/#', 4],
    ],
  );
  assert.equal(g4.lastSubscriptionId, 4);
  const route = g4.route('a/x');
  assert.deepEqual(g4.mappingsFor(route, 4), [1]);
  assert.deepEqual(g4.mappingsFor(route, 1), [], 'an id of a removed subscription');
  assert.deepEqual(g4.mappingsFor(route, 2), [], 'an id of a removed subscription');
  assert.deepEqual(g4.mappingsFor(route, [1, 4]), [1]);
  assert.deepEqual(g4.mappingsFor(g4.route('c/x'), 3), [0]);
});

test('a record settles with the policy of the generation that routed it', async () => {
  const p = fakePipeline({ policies: [{ name: 'a', onError: 'skip' }] });
  p.hold = true;
  p.send(1);
  // Reload: mapping a becomes on_error: stop for messages from the next one on.
  p.settler.addGeneration([{ name: 'a', onError: 'stop' }], p.window.lastSeq + 1);
  p.send(2);
  p.answers.push(refuse(KAFKA_ERRORS.ERR_TOPIC_AUTHORIZATION_FAILED, 'denied'));
  p.answers.push(refuse(KAFKA_ERRORS.ERR_TOPIC_AUTHORIZATION_FAILED, 'denied'));
  await p.answer();
  await p.answer();
  assert.deepEqual(p.released, [1], 'the old message skipped (acked), the new one held');
  assert.deepEqual(p.halts, [true], 'reading stopped for the new one');
  assert.equal(await p.counter('mkf_messages_skipped_total', 'a'), 1);
  assert.equal(await p.counter('mkf_messages_failed_total', 'a'), 2);
  p.settler.stopRetries();
});

test('mapping indices of a generation: records of either generation count for their mapping', async () => {
  const p = fakePipeline({
    policies: [
      { name: 'a', onError: 'stop' },
      { name: 'b', onError: 'stop' },
    ],
  });
  p.send(1, 0, 0);
  p.send(2, 0, 1);
  // Reload: a removed, c added in front of b; index 0 is now c, and b keeps index 1.
  p.settler.addGeneration(
    [
      { name: 'c', onError: 'skip' },
      { name: 'b', onError: 'stop' },
    ],
    p.window.lastSeq + 1,
  );
  p.send(3, 0, 0);
  p.send(4, 0, 1);
  await p.turn();
  assert.deepEqual(p.released, [1, 2, 3, 4]);
  assert.equal(await p.counter('mkf_messages_forwarded_total', 'a'), 1);
  assert.equal(await p.counter('mkf_messages_forwarded_total', 'b'), 2);
  assert.equal(await p.counter('mkf_messages_forwarded_total', 'c'), 1);
});

test('serialized: one run at a time; requests during a run make exactly one more', async () => {
  let runs = 0;
  let active = 0;
  const gates: (() => void)[] = [];
  const request = serialized(async () => {
    runs++;
    active++;
    assert.equal(active, 1, 'never two at once');
    await new Promise<void>((r) => gates.push(r));
    active--;
  });
  const first = request();
  void request();
  void request();
  assert.equal(runs, 1);
  gates.shift()!();
  await new Promise((r) => setImmediate(r));
  assert.equal(runs, 2, 'the two requests during the first run made one more');
  gates.shift()!();
  await first;
  assert.equal(runs, 2);
  const later = request();
  assert.equal(runs, 3, 'a request after the runs ended runs at once');
  gates.shift()!();
  await later;
});
