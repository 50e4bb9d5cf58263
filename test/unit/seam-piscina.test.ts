/**
 * Seam test for src/seams/piscina.ts: lane-to-thread pinning with real worker threads, and the
 * Piscina behaviour it rests on. A Piscina upgrade that changes what the balancer is handed
 * fails here by name, instead of sending one lane's batches to two producers.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { Piscina } from 'piscina';
import { LaneBalancer, PINNED_PISCINA_VERSION, laneTask } from '../../src/seams/piscina';
import { REPO_ROOT } from '../helpers/env';

const WORKER = path.join(__dirname, '..', 'helpers', 'whoami-worker.js');

function pool(
  lanes: number,
  loadBalancer: NonNullable<ConstructorParameters<typeof Piscina>[0]>['loadBalancer'],
) {
  // The settings of src/pipeline/4-kafka-produce/lanes.ts that the seam relies on.
  return new Piscina({
    filename: WORKER,
    minThreads: lanes,
    maxThreads: lanes,
    idleTimeout: Infinity,
    concurrentTasksPerWorker: 4,
    atomics: 'disabled',
    maxQueue: Infinity as unknown as number,
    ...(loadBalancer ? { loadBalancer } : {}),
  });
}

describe('seam: piscina', () => {
  test(`installed piscina is ${PINNED_PISCINA_VERSION} and package.json pins it exactly`, () => {
    const installed = (
      JSON.parse(
        readFileSync(path.join(REPO_ROOT, 'node_modules/piscina/package.json'), 'utf8'),
      ) as { version: string }
    ).version;
    assert.equal(installed, PINNED_PISCINA_VERSION, 're-check src/seams/piscina.ts, then re-pin');
    const pkg = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    assert.equal(pkg.dependencies['piscina'], PINNED_PISCINA_VERSION);
  });

  test('the balancer is handed thread ids and the lane of each task', async () => {
    const seen: { ids: number[]; lane: number | undefined }[] = [];
    const p = pool(3, (task, workers) => {
      const opts = task[Piscina.queueOptionsSymbol as keyof typeof task] as unknown as
        { lane?: number } | undefined;
      seen.push({ ids: workers.map((w) => w.id), lane: opts?.lane });
      return workers[0] ?? null;
    });
    const threads = await Promise.all(
      Array.from({ length: 6 }, (_, lane) => p.run(laneTask({}, lane)) as Promise<number>),
    );
    await p.destroy();
    const all = new Set(seen.flatMap((s) => s.ids));
    for (const t of threads)
      assert.ok(all.has(t), `thread ${t} was among the ids the balancer saw`);
    assert.deepEqual([...new Set(seen.map((s) => s.lane))].sort(), [0, 1, 2, 3, 4, 5]);
  });

  test('a thread that dies is replaced; its lane moves to the new thread, no other lane moves', async () => {
    const balancer = new LaneBalancer(3);
    const p = pool(3, balancer.balance);
    const before = await Promise.all(
      [0, 1, 2].map((lane) => p.run(laneTask({}, lane)) as Promise<number>),
    );
    await assert.rejects(p.run(laneTask({ die: true }, 1)));
    // Submitted while the replacement starts: the case a positional binding gets wrong.
    const after = await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        (p.run(laneTask({ delayMs: i % 3 }, i % 3)) as Promise<number>).then((t) => ({
          lane: i % 3,
          t,
        })),
      ),
    );
    await p.destroy();
    const byLane = [0, 1, 2].map(
      (lane) => new Set(after.filter((a) => a.lane === lane).map((a) => a.t)),
    );
    assert.deepEqual([...byLane[0]!], [before[0]], 'lane 0 stays');
    assert.deepEqual([...byLane[2]!], [before[2]], 'lane 2 stays');
    assert.equal(byLane[1]!.size, 1, `lane 1 on one thread: ${[...byLane[1]!].join(',')}`);
    assert.ok(!before.includes([...byLane[1]!][0]!), 'lane 1 on the new thread');
    assert.equal(balancer.rebinds, 1);
  });

  for (const lanes of [1, 2, 4]) {
    test(`${lanes} lane(s): every task of a lane reaches one thread, lanes reach distinct threads`, async () => {
      const balancer = new LaneBalancer(lanes);
      const p = pool(lanes, balancer.balance);
      // Submitted at once, while threads are still starting: the case a positional binding
      // gets wrong.
      const tasks = Array.from({ length: lanes * 50 }, (_, i) => {
        const lane = i % lanes;
        return (p.run(laneTask({ delayMs: i % 3 }, lane)) as Promise<number>).then((t) => ({
          lane,
          t,
        }));
      });
      const answers = await Promise.all(tasks);
      await p.destroy();
      const byLane = new Map<number, Set<number>>();
      for (const { lane, t } of answers) byLane.set(lane, (byLane.get(lane) ?? new Set()).add(t));
      for (const [lane, threads] of byLane) {
        assert.equal(threads.size, 1, `lane ${lane} ran on threads ${[...threads].join(',')}`);
        assert.equal([...threads][0], balancer.threadOf(lane), `lane ${lane} on its bound thread`);
      }
      const distinct = new Set([...byLane.values()].map((s) => [...s][0]));
      assert.equal(distinct.size, lanes, 'one thread per lane');
      assert.equal(balancer.rebinds, 0);
    });
  }
});
