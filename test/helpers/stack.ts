/**
 * Broker control for fault tests: runs scripts/stack with this process's environment (scripts/test
 * exports MKF_STACK_DIR, MQTT_PORT, KAFKA_PORT and KAFKA_CONTROLLER_PORT for the suite's stack, so
 * a test stops and starts exactly the brokers it talks to), freezes Kafka with SIGSTOP (an
 * unresponsive broker: connections stay open, nothing answers) and finds closed ports.
 */
import { execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { KAFKA_BROKERS, REPO_ROOT } from './env';

export interface StackResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs `scripts/stack ...args` with process.env, bounded by `timeoutMs` (SIGKILL after it).
 * Rejects on a non-zero exit unless `allowFailure`.
 */
export function stackCmd(
  args: readonly string[],
  { timeoutMs = 120_000, allowFailure = false } = {},
): Promise<StackResult> {
  return new Promise((resolve, reject) => {
    execFile(
      path.join(REPO_ROOT, 'scripts', 'stack'),
      [...args],
      { env: process.env, timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 4 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
        if (err && !allowFailure) {
          reject(
            new Error(
              `scripts/stack ${args.join(' ')} failed (${err.killed ? `killed after ${timeoutMs} ms` : `exit ${String(err.code)}`}):\n${stdout}${stderr}`,
            ),
          );
          return;
        }
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** The state folder scripts/stack uses with this environment. */
export function stackDir(): string {
  const dir = process.env['MKF_STACK_DIR'];
  return dir ? path.resolve(dir) : path.join(REPO_ROOT, '.stack', 'default');
}

/**
 * PID of this stack's Kafka, only if that process is alive and runs this state folder's config
 * (the same check scripts/stack makes, so a recycled PID is never signalled).
 */
export function kafkaPid(): number {
  const dir = stackDir();
  const pidFile = path.join(dir, 'kafka.pid');
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`${pidFile}: no pid`);
  let cmdline: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    throw new Error(`kafka (pid ${pid} from ${pidFile}) is not running`);
  }
  if (!cmdline.includes(path.join(dir, 'kafka.properties'))) {
    throw new Error(`pid ${pid} from ${pidFile} is not this stack's kafka: ${cmdline}`);
  }
  return pid;
}

const frozen = new Set<number>();
let exitHookInstalled = false;

/**
 * SIGSTOPs Kafka: it keeps its sockets and the kernel keeps accepting connections, but no request
 * is answered, like a hung broker. Always pair with `thawKafka()` in a `finally`; as a last
 * resort a process exit hook resumes it too.
 */
export function freezeKafka(): number {
  const pid = kafkaPid();
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const p of frozen) {
        try {
          process.kill(p, 'SIGCONT');
        } catch {
          // already gone
        }
      }
    });
  }
  frozen.add(pid);
  process.kill(pid, 'SIGSTOP');
  return pid;
}

/** SIGCONTs every Kafka this process froze. Safe to call when nothing is frozen. */
export function thawKafka(): void {
  for (const pid of frozen) {
    try {
      process.kill(pid, 'SIGCONT');
    } catch {
      // killed meanwhile
    }
  }
  frozen.clear();
}

function kcatProduce(topic: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn(
      'kcat',
      ['-b', KAFKA_BROKERS, '-P', '-t', topic, '-X', `message.timeout.ms=${timeoutMs}`],
      { stdio: ['pipe', 'ignore', 'ignore'] },
    );
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs + 5_000);
    child.on('error', () => resolve(false));
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve(code === 0);
    });
    child.stdin.end('probe\n');
  });
}

/**
 * Waits until Kafka answers metadata (scripts/stack status) and accepts a produce (kcat), e.g.
 * after SIGCONT or a restart: a broker that was frozen past its session timeout re-registers
 * with the controller before it takes writes again. Resolves with the time it took.
 */
export async function waitKafkaWritable(timeoutMs = 60_000): Promise<number> {
  const t0 = Date.now();
  const deadline = t0 + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    const status = await stackCmd(['status', 'kafka'], { timeoutMs: 20_000, allowFailure: true });
    last = status.stdout + status.stderr;
    if (status.code === 0 && (await kcatProduce('mkf-stack-probe', 5_000))) return Date.now() - t0;
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error(`kafka not writable within ${timeoutMs} ms; last status: ${last.trim()}`);
}

/** A TCP port on 127.0.0.1 that nothing listens on (checked by a refused connect). */
export async function closedPort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = net.createServer();
      srv.once('error', reject);
      srv.listen(0, '127.0.0.1', () => {
        const addr = srv.address();
        srv.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 0));
      });
    });
    if (port > 0 && !(await portOpen(port))) return port;
  }
  throw new Error('no closed port found in 20 attempts');
}

/** True if something accepts TCP connections on 127.0.0.1:`port` (bounded: 2 s). */
export function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    const done = (open: boolean): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve(open);
    };
    const timer = setTimeout(() => done(false), 2_000);
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}
