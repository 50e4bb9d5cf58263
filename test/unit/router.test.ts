import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Router, matchesFilter, topicHash } from '../../src/pipeline/2-route/router';
import { wrapPayload } from '../../src/pipeline/2-route/wrap';
import { routeMapping } from '../helpers/fake-pipeline';

test('matchesFilter follows MQTT filter semantics', () => {
  const cases: [string, string, boolean][] = [
    ['a/b', 'a/b', true],
    ['a/b', 'a/c', false],
    ['a/+', 'a/b', true],
    ['a/+', 'a/b/c', false],
    ['a/+', 'a', false],
    ['a/+', 'a/', true],
    ['+/+', '/x', true],
    ['a/#', 'a', true],
    ['a/#', 'a/b/c', true],
    ['#', 'a/b', true],
    ['#', '$SYS/x', false],
    ['+/x', '$dev/x', false],
    ['$dev/#', '$dev/x', true],
    ['a/+/c', 'a/b/c', true],
    ['a/+/c', 'a/b/d', false],
    ['a/b', 'a/b/c', false],
    ['$share/group/a/+', 'a/b', true],
    ['$share/group/#', 'x/y', true],
    ['$share/group/a/+', 'group/a/b', false],
  ];
  for (const [f, t, want] of cases) assert.equal(matchesFilter(f, t), want, `${f} vs ${t}`);
});

test('wrapPayload is the reference service JSON, byte for byte', () => {
  assert.equal(
    wrapPayload('foo/bar', Buffer.from('hello')).toString(),
    '{"topic":"foo/bar","payload":"aGVsbG8="}',
  );
  // serde_json escapes quotes, backslashes and control characters, nothing else.
  assert.equal(
    wrapPayload('a"b\\c\n\u0001/ü', Buffer.alloc(0)).toString(),
    '{"topic":"a\\"b\\\\c\\n\\u0001/ü","payload":""}',
  );
  assert.equal(
    wrapPayload('t', Buffer.from([0xff, 0xfe, 0x00])).toString(),
    '{"topic":"t","payload":"//4A"}',
  );
});

const mapping = routeMapping;

test('one subscription per distinct filter, at the highest QoS asked for', () => {
  const r = new Router([mapping('a/#', 1), mapping('b/+'), mapping('a/#', 2), mapping('c', 0)], 2);
  assert.deepEqual(r.subscriptions, [
    { filter: 'a/#', qos: 2, id: 1 },
    { filter: 'b/+', qos: 2, id: 2 },
    { filter: 'c', qos: 0, id: 3 },
  ]);
});

test('routes a copy to the mappings of the subscription it was delivered for', () => {
  const r = new Router([mapping('a/#'), mapping('a/+/c'), mapping('a/b/c'), mapping('a/#')], 2);
  const route = r.route('a/b/c');
  assert.deepEqual(route.mappings, [0, 1, 2, 3]);
  assert.equal(route.targets[0]?.key?.toString(), 'a/b/c');
  assert.equal(route.targets[0]?.key, route.topicBytes, 'the default key is the topic, one Buffer');
  assert.deepEqual(r.mappingsFor(route, undefined), [0, 1, 2, 3], 'MQTT 3.1.1: every match');
  assert.deepEqual(r.mappingsFor(route, 1), [0, 3], 'both mappings of filter a/#');
  assert.deepEqual(r.mappingsFor(route, 2), [1]);
  assert.deepEqual(r.mappingsFor(route, [2, 3]), [1, 2]);
  assert.deepEqual(r.mappingsFor(route, 99), [], 'unknown id: a stale subscription');
  // A stale id whose filter does not match this topic is not trusted.
  assert.deepEqual(r.mappingsFor(r.route('a/x'), 2), []);
  // Not even when it names as many mappings as match the topic: a/x matches only a/# (mapping
  // 0), and a copy carrying x/+'s id (left in the session by another config) must not reach
  // mapping 1.
  const s = new Router([mapping('a/#'), mapping('x/+'), mapping('y/+')], 1);
  assert.deepEqual(s.mappingsFor(s.route('a/x'), 2), [], 'one stale mapping, one match');
});

test('a topic always maps to the same lane', () => {
  const r = new Router([mapping('#')], 4);
  const lanes = new Set(Array.from({ length: 200 }, (_, i) => r.route(`dev/${i}`).lane));
  assert.ok(lanes.size > 1, 'topics spread over lanes');
  assert.equal(r.route('dev/7').lane, topicHash('dev/7') % 4);
  assert.equal(topicHash('dev/7'), topicHash('dev/7'));
});
