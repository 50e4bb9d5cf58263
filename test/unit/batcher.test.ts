/**
 * Batching per lane (src/pipeline/3-batch/batcher.ts) against a scripted producer lane
 * (test/helpers/fake-pipeline.ts): when a batch is sealed, when it goes out, in which order, and
 * what happens to a task that failed. Timers are node:test's mocked ones: nothing waits.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { capturedLogger, fakePipeline } from '../helpers/fake-pipeline';
import type { FakePipeline, SentRecord } from '../helpers/fake-pipeline';

/** The values of every batch sent so far (on `lane` only, if given), batch by batch. */
function sent(p: FakePipeline, lane?: number): string[][] {
  return p.batches
    .filter((b) => lane === undefined || b[0]!.lane === lane)
    .map((b) => b.map((r: SentRecord) => r.value));
}

describe('a batch is sealed', () => {
  test('at batch_size, at once, without waiting for linger', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const p = fakePipeline({ batchSize: 3, lingerMs: 10_000, batchesPerLane: 4 });
    for (let id = 1; id <= 7; id++) p.send(id);
    assert.deepEqual(sent(p), [
      ['v1', 'v2', 'v3'],
      ['v4', 'v5', 'v6'],
    ]);
  });

  test('when not full, after linger_ms, while the lane has a batch at its producer', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const p = fakePipeline({ batchSize: 3, lingerMs: 50, batchesPerLane: 4 });
    p.hold = true;
    for (let id = 1; id <= 3; id++) p.send(id);
    assert.deepEqual(sent(p), [['v1', 'v2', 'v3']], 'premise: the lane has a batch out');
    p.send(4);
    t.mock.timers.tick(30);
    p.send(5);
    t.mock.timers.tick(19);
    assert.equal(p.batches.length, 1, 'the linger time counts from the first record of the batch');
    t.mock.timers.tick(1);
    assert.deepEqual(sent(p)[1], ['v4', 'v5']);
  });

  test('when not full on a lane with nothing at its producer: at the end of the I/O turn, whatever linger_ms', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const p = fakePipeline({ batchSize: 3, lingerMs: 10_000, batchesPerLane: 4 });
    p.send(1);
    p.send(2);
    assert.deepEqual(sent(p), [], 'not within the turn that added them');
    await p.turn();
    assert.deepEqual(sent(p), [['v1', 'v2']], 'no linger: nothing would be gained by waiting');
  });

  test('with linger_ms 0, on the next setImmediate turn: after the current I/O callback', async () => {
    const p = fakePipeline({ batchSize: 10, lingerMs: 0 });
    p.send(1);
    p.send(2);
    await Promise.resolve();
    assert.deepEqual(sent(p), [], 'not within the same turn, microtasks included');
    await p.turn();
    assert.deepEqual(sent(p), [['v1', 'v2']]);
  });

  test('flushAll seals every open batch of every lane now', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const p = fakePipeline({ lanes: 3, batchSize: 100, lingerMs: 10_000, batchesPerLane: 4 });
    p.send(1, 0);
    p.send(2, 2);
    p.send(3, 0);
    assert.deepEqual(sent(p), []);
    p.batcher.flushAll();
    assert.deepEqual(sent(p, 0), [['v1', 'v3']]);
    assert.deepEqual(sent(p, 1), [], 'a lane with nothing open sends nothing');
    assert.deepEqual(sent(p, 2), [['v2']]);
    t.mock.timers.tick(10_000);
    assert.equal(p.batches.length, 2, 'the linger timers went with the sealed batches');
  });
});

describe('a lingered batch waits for a free slot of its lane', () => {
  test('and keeps growing meanwhile: it goes out whole once a slot frees', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const p = fakePipeline({ batchSize: 10, lingerMs: 5, batchesPerLane: 1 });
    p.hold = true;
    p.send(1);
    await p.turn();
    assert.deepEqual(sent(p), [['v1']], 'an idle lane: out at the end of the turn');
    p.send(2);
    p.send(3);
    t.mock.timers.tick(5);
    p.send(4);
    t.mock.timers.tick(50);
    assert.deepEqual(sent(p), [['v1']], 'lingered, but the only slot is taken');
    await p.answer();
    assert.deepEqual(sent(p), [['v1'], ['v2', 'v3', 'v4']], 'out as soon as the slot freed');
    await p.answer();
    assert.deepEqual(p.released, [1, 2, 3, 4]);
  });

  test('but never beyond batch_size: a full batch is sealed and queued behind the slot', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const p = fakePipeline({ batchSize: 3, lingerMs: 5, batchesPerLane: 1 });
    p.hold = true;
    p.send(1);
    await p.turn();
    for (let id = 2; id <= 5; id++) p.send(id);
    t.mock.timers.tick(5);
    assert.deepEqual(sent(p), [['v1']]);
    await p.answer();
    assert.deepEqual(sent(p), [['v1'], ['v2', 'v3', 'v4']]);
    await p.answer();
    assert.deepEqual(sent(p), [['v1'], ['v2', 'v3', 'v4'], ['v5']], 'the rest, lingered meanwhile');
  });

  test('up to batchesPerLane batches of a lane are at its producer at once', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const p = fakePipeline({ batchSize: 1, lingerMs: 5, batchesPerLane: 3 });
    p.hold = true;
    for (let id = 1; id <= 5; id++) p.send(id);
    assert.deepEqual(sent(p), [['v1'], ['v2'], ['v3']]);
    assert.equal(p.pending.length, 3);
  });
});

describe('lanes', () => {
  test('batches of one lane go out in order; one lane never waits for another', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const p = fakePipeline({ lanes: 2, batchSize: 1, lingerMs: 5, batchesPerLane: 1 });
    p.hold = true;
    p.send(1, 0);
    p.send(2, 0);
    p.send(3, 0);
    p.send(4, 1);
    assert.deepEqual(sent(p, 0), [['v1']]);
    assert.deepEqual(sent(p, 1), [['v4']], 'lane 1 sent while lane 0 is busy');
    p.send(5, 1);
    await p.answer(1);
    assert.deepEqual(sent(p, 1), [['v4'], ['v5']], 'lane 1 goes on while lane 0 still waits');
    assert.deepEqual(sent(p, 0), [['v1']]);
    await p.answer(0);
    await p.answer(0);
    await p.answer(0);
    assert.deepEqual(sent(p, 0), [['v1'], ['v2'], ['v3']]);
    assert.ok(
      p.batches.every((b) => b.every((r) => r.lane === b[0]!.lane)),
      'a batch holds one lane',
    );
  });

  test('each lane has its own open batch, size and linger', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const p = fakePipeline({ lanes: 2, batchSize: 2, lingerMs: 5, batchesPerLane: 4 });
    p.send(1, 0);
    p.send(2, 1);
    p.send(3, 0);
    assert.deepEqual(sent(p, 0), [['v1', 'v3']], 'lane 0 full');
    assert.deepEqual(sent(p, 1), [], 'lane 1 not full: open until the turn ends');
    await p.turn();
    assert.deepEqual(sent(p, 1), [['v2']]);
  });
});

describe('a failed task (the thread or the pool, not a Kafka answer)', () => {
  test('is sent again after 1 s, on the same lane, before what queued behind it', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const { log, lines } = capturedLogger();
    const p = fakePipeline({ lanes: 2, batchSize: 1, lingerMs: 5, batchesPerLane: 1, log });
    p.answers.push(() => 'task-error');
    p.send(1, 1);
    p.send(2, 1);
    await p.turn();
    assert.deepEqual(sent(p, 1), [['v1']]);
    assert.equal(lines.filter((l) => l['msg'] === 'batch task failed; retrying').length, 1);
    t.mock.timers.tick(999);
    await p.turn();
    assert.deepEqual(sent(p, 1), [['v1']], 'not before 1 s');
    t.mock.timers.tick(1);
    await p.turn();
    assert.deepEqual(sent(p, 1), [['v1'], ['v1'], ['v2']]);
    assert.deepEqual(sent(p, 0), []);
    assert.deepEqual(p.released, [1, 2], 'nothing lost, in receive order');
  });

  test('is abandoned after stopRetries(): its message stays unacknowledged', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const p = fakePipeline({ batchSize: 1, lingerMs: 5 });
    p.hold = true;
    p.answers.push(() => 'task-error');
    p.send(1);
    p.batcher.stopRetries();
    await p.answer();
    t.mock.timers.tick(10_000);
    await p.turn();
    assert.equal(p.batches.length, 1, 'not sent again');
    assert.deepEqual(p.released, []);
    assert.equal(p.window.size, 1, 'still held: the broker redelivers it');
  });

  test('whose retry is pending when stopRetries() comes is not sent again', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const p = fakePipeline({ batchSize: 1, lingerMs: 5 });
    p.answers.push(() => 'task-error');
    p.send(1);
    await p.turn();
    p.batcher.stopRetries();
    t.mock.timers.tick(10_000);
    await p.turn();
    assert.equal(p.batches.length, 1);
    assert.deepEqual(p.released, []);
  });
});
