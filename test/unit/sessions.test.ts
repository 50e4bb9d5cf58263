/** src/supervisor/sessions.ts orphanCandidates: the client ids that may hold an orphaned session. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { orphanCandidates } from '../../src/supervisor/sessions';

const indexed = (id: string, indices: Iterable<number>): string[] =>
  [...indices].map((i) => `${id}-${i}`);
const range = (from: number, to: number): number[] =>
  Array.from({ length: to - from }, (_, k) => from + k);

test('no client id: clean sessions only, nothing to look for', () => {
  assert.deepEqual(orphanCandidates('', 1, new Set()), []);
  assert.deepEqual(orphanCandidates('', 4, new Set([0, 1, 2, 3])), []);
});

test('one process (bare id in use): every indexed id of a former multi-process run', () => {
  const ids = orphanCandidates('fwd', 1, new Set());
  assert.deepEqual(ids, indexed('fwd', range(0, 64)));
  assert.ok(!ids.includes('fwd'), 'the bare id is the one in use');
});

test('several processes: the bare id of a former single-process run, and the unused indices', () => {
  const ids = orphanCandidates('fwd', 3, new Set([0, 1, 2]));
  assert.deepEqual(ids, ['fwd', ...indexed('fwd', range(3, 64))]);
});

test('indices in use are skipped wherever they are', () => {
  const ids = orphanCandidates('fwd', 2, new Set([5, 63]));
  assert.deepEqual(ids, ['fwd', ...indexed('fwd', [...range(0, 5), ...range(6, 63)])]);
});

test('all 64 indices in use: only the bare id is left', () => {
  assert.deepEqual(orphanCandidates('fwd', 64, new Set(range(0, 64))), ['fwd']);
});

test('indices outside [0, 64) in inUse change nothing; no id is listed twice', () => {
  const ids = orphanCandidates('a-b', 2, new Set([-1, 64, 100]));
  assert.deepEqual(ids, ['a-b', ...indexed('a-b', range(0, 64))]);
  assert.equal(new Set(ids).size, ids.length);
});
