/**
 * The benchmark's process-tree accounting (benchmark/measure/proc-tree.ts, proc-sampler.ts) on
 * real processes: a parent that starts a CPU-burning child, then a second one after the first
 * exited (as a supervisor restarts an ingest process). The CPU of both children must count,
 * the exited one as last sampled.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { after, test } from 'node:test';
import { ProcSampler } from '../../benchmark/measure/proc-sampler';
import { ProcTreeWatch, descendantPids, readProcStat } from '../../benchmark/measure/proc-tree';

/** CPU seconds each child burns (its own user time, so a busy machine only makes it slower). */
const BURN_S = 0.6;

/**
 * A parent that waits `delayMs` (so the sampler starts first), then runs `children` burners one
 * after the other, then idles until it is killed.
 */
function parentScript(children: number, delayMs: number): string {
  // A syscall per million additions, so that the CPU burnt is user time, not getrusage.
  const burner = `const lim = ${BURN_S * 1e6}; let x = 0; const used = () => { const u = process.cpuUsage(); return u.user + u.system; }; while (used() < lim) { for (let i = 0; i < 1e6; i++) x += i; }`;
  return `
    const { spawn } = require('node:child_process');
    let left = ${children};
    const next = () => {
      if (left-- === 0) { console.log('done'); return; }
      spawn(process.execPath, ['-e', ${JSON.stringify(burner)}], { stdio: 'ignore' })
        .on('exit', next);
    };
    setTimeout(next, ${delayMs});
    setInterval(() => {}, 1000);
  `;
}

const started: ChildProcess[] = [];
after(() => {
  for (const c of started) {
    // The burners end by themselves; the parents idle until killed, by pid.
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
});

function startParent(
  children: number,
  delayMs: number,
): { child: ChildProcess; done: Promise<void> } {
  const child = spawn(process.execPath, ['-e', parentScript(children, delayMs)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  started.push(child);
  const done = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('children did not finish in 20 s')), 20_000);
    child.stdout!.on('data', (c: Buffer) => {
      if (c.toString().includes('done')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on('exit', () => {
      clearTimeout(timer);
      reject(new Error('parent exited early'));
    });
  });
  return { child, done };
}

test('the sampler counts the CPU of every descendant, a restarted one included', async () => {
  const { child, done } = startParent(2, 300);
  await new Promise((r) => child.once('spawn', r));
  const sampler = new ProcSampler(child.pid!, 50);
  await done;
  const s = sampler.stop();
  const procs = s.processes ?? [];
  const kids = procs.filter((p) => p.pid !== child.pid);
  assert.equal(kids.length, 2, `two children seen: ${JSON.stringify(procs)}`);
  assert.ok(
    kids.every((k) => k.goneS !== undefined),
    'both children are gone at the end',
  );
  for (const k of kids) {
    // Up to one interval (50 ms) of an exited child's CPU is not seen.
    assert.ok(k.cpuS > BURN_S - 0.15, `child ${k.pid}: ${k.cpuS} s`);
    assert.equal(k.ppid, child.pid);
  }
  assert.ok(s.cpuS >= kids[0]!.cpuS + kids[1]!.cpuS, `tree total ${s.cpuS} s`);
  assert.ok(s.cpuS < 2 * BURN_S + 2, `tree total ${s.cpuS} s is not inflated`);
  // Each process's main thread did the burning: their sum is the tree's main thread.
  assert.ok(s.mainThreadCpuS > 2 * BURN_S - 0.3, `main threads ${s.mainThreadCpuS} s`);
  assert.ok(
    s.samples.some((x) => (x.processes ?? 0) === 2),
    'a sample saw parent and child alive',
  );
  assert.ok(s.rssMaxMb > (procs[0]?.rssMaxMb ?? 0), 'RSS at a sample is the sum over the tree');
});

test('the machine summary counts the forwarder as the tree the sampler saw', async () => {
  const { child, done } = startParent(1, 0);
  await new Promise((r) => child.once('spawn', r));
  const sampler = new ProcSampler(child.pid!, 50);
  await done;
  const s = sampler.stop();
  assert.equal(s.cpuS, sampler.cpuSoFar());
  assert.ok(s.cpuS > BURN_S - 0.15, `tree ${s.cpuS} s`);
  // The root alone burnt next to nothing.
  assert.ok((readProcStat(child.pid!)?.cpuS ?? 0) < BURN_S / 2);
});

test('ProcTreeWatch finds descendants and SIGKILLs the whole tree by pid', async () => {
  // A parent with a child that idles (a supervisor and an ingest process).
  const child = spawn(
    process.execPath,
    [
      '-e',
      `require('node:child_process').spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' }); setInterval(() => {}, 1000);`,
    ],
    { stdio: 'ignore' },
  );
  started.push(child);
  await new Promise((r) => child.once('spawn', r));
  const watch = new ProcTreeWatch(child.pid!);
  const deadline = Date.now() + 10_000;
  while (watch.descendants().length < 1) {
    assert.ok(Date.now() < deadline, 'the grandchild appears within 10 s');
    await new Promise((r) => setTimeout(r, 50));
  }
  const [grandchild] = watch.descendants();
  assert.deepEqual(descendantPids(child.pid!), [grandchild!.pid]);
  const sent = watch.signalAll('SIGKILL');
  assert.deepEqual([...sent].sort(), [child.pid!, grandchild!.pid].sort());
  await new Promise((r) => child.once('exit', r));
  // The grandchild, re-parented to init and reaped by it, is gone too.
  const until = Date.now() + 5_000;
  while (
    readProcStat(grandchild!.pid) !== undefined &&
    readProcStat(grandchild!.pid)?.state !== 'Z'
  ) {
    assert.ok(Date.now() < until, 'the grandchild is gone within 5 s');
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(watch.descendants().length, 0);
});
