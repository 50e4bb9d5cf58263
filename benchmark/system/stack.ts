/** The brokers a matrix run measures on: scripts/stack, on ports and a state folder of its own. */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Environment } from '../types';
import { collectEnvironment } from './environment';
import { REPO_ROOT } from './forwarder-process';

/** Kafka properties of the benchmark stacks (run-matrix.ts, compare.ts), via KAFKA_EXTRA_PROPS. */
export const KAFKA_BENCH_PROPS = [
  '# Written by benchmark/run-matrix.ts or benchmark/compare.ts.',
  '# Record timestamps are the broker append time: latency = append − publish, independent of',
  '# when the benchmark consumer happens to read the record.',
  'log.message.timestamp.type=LogAppendTime',
  '# Benchmark topics are reused across runs: bound what they keep on disk.',
  'log.retention.bytes=268435456',
  'log.segment.bytes=67108864',
  '',
].join('\n');

/** Runs `scripts/stack <cmd>` with `env` (ports, state folder); bounded at 3 minutes. */
export function stack(cmd: string, env: NodeJS.ProcessEnv): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(path.join(REPO_ROOT, 'scripts', 'stack'), [cmd], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 180_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 1, out });
    });
  });
}

/**
 * Uses the stack already running in `stackDir`, or brings it up. Resolves true when it started
 * it (so the caller brings it down again); throws when it cannot come up.
 */
export async function ensureStack(
  stackDir: string,
  env: NodeJS.ProcessEnv,
  log: (msg: string) => void,
): Promise<boolean> {
  if ((await stack('status', env)).code === 0) {
    log(`reusing the running stack (${stackDir}); it stays up afterwards`);
    return false;
  }
  const up = await stack('up', env);
  log(up.out.trim());
  if (up.code !== 0) throw new Error('scripts/stack up failed');
  return true;
}

/** The machine and versions a run is measured on, logged in one line. */
export async function stackEnvironment(
  env: NodeJS.ProcessEnv,
  log: (msg: string) => void,
): Promise<Environment> {
  // "kafka: running (pid …), 3.9.1 answering on …"
  const kafkaVersion =
    /^kafka\b.*?(\d+\.\d+[\w.-]*) answering/m.exec((await stack('status', env)).out)?.[1] ??
    'unknown';
  const environment = collectEnvironment(REPO_ROOT, kafkaVersion);
  log(
    `environment: ${environment.cpuModel}, ${environment.cores} cores, node ${environment.node}, load ${environment.loadAvgAtStart}`,
  );
  return environment;
}

/** mosquitto and Kafka of the stack, for the CPU breakdown (absent ones are left out). */
export function brokerPids(stackDir: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const name of ['mosquitto', 'kafka']) {
    try {
      const pid = Number(readFileSync(path.join(stackDir, `${name}.pid`), 'utf8').trim());
      if (Number.isInteger(pid) && pid > 0) out[name] = pid;
    } catch {
      // not running from this state folder
    }
  }
  return out;
}
