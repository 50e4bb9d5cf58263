/**
 * The security tests' own brokers (scripts/secure-stack): a mosquitto with TLS, mTLS and a
 * password file, and a Kafka with SASL_PLAINTEXT (PLAIN, SCRAM-SHA-512), SSL, SSL with client
 * certificates and SASL_SSL listeners, on ports and a state folder apart from the main test
 * stack. Certificates, keys and passwords are generated when the stack starts.
 *
 * Each test file calls `useSecureStack()`: it starts the stack if it is not running and stops it
 * afterwards only if it started it, so scripts/test (or a developer) can start it once for all
 * files.
 */
import { execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before } from 'node:test';
import { REPO_ROOT } from './env';
import type { ForwarderProcess } from './forwarder';
import { connectClient } from './mqtt';

export interface Pem {
  readonly cert: string;
  readonly key: string;
}

/** scripts/secure-stack's secure.json. */
export interface SecureStack {
  readonly stateDir: string;
  readonly mqtt: {
    readonly host: string;
    readonly ports: { plain: number; tls: number; mtls: number; wrongHost: number };
    readonly user: string;
    readonly password: string;
    readonly trickyUser: string;
    readonly trickyPassword: string;
  };
  readonly kafka: {
    readonly host: string;
    readonly ports: {
      plaintext: number;
      saslPlaintext: number;
      ssl: number;
      mtls: number;
      saslSsl: number;
    };
    readonly plainUser: string;
    readonly plainPassword: string;
    readonly scramUser: string;
    readonly scramPassword: string;
  };
  readonly pki: Record<
    'ca' | 'rogue-ca' | 'server' | 'wrong-host' | 'client-rsa' | 'client-ec' | 'rogue-client',
    Pem
  >;
}

const SCRIPT = path.join(REPO_ROOT, 'scripts', 'secure-stack');
/** Kafka's JVM start plus the SCRAM user; about 10 s here, bounded generously. */
const UP_TIMEOUT_MS = 180_000;
const DOWN_TIMEOUT_MS = 90_000;

function script(
  args: readonly string[],
  timeoutMs: number,
): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(
      SCRIPT,
      [...args],
      { env: process.env, timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 4 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        resolve({ code, out: `${stdout}${stderr}` });
      },
    );
  });
}

function stateDir(): string {
  const dir = process.env['SECURE_STACK_DIR'];
  return dir ? path.resolve(dir) : path.join(REPO_ROOT, '.stack', 'secure');
}

/**
 * Registers before/after hooks that bring the secure stack up for this file; returns a getter
 * for its description (valid once `before` ran).
 */
export function useSecureStack(): () => SecureStack {
  let info: SecureStack | undefined;
  let startedHere = false;
  before(async () => {
    const status = await script(['status'], 30_000);
    if (status.code !== 0) {
      const up = await script(['up'], UP_TIMEOUT_MS);
      if (up.code !== 0) throw new Error(`scripts/secure-stack up failed:\n${up.out}`);
      startedHere = true;
    }
    info = JSON.parse(
      readFileSync(path.join(stateDir(), 'pki', 'secure.json'), 'utf8'),
    ) as SecureStack;
  });
  after(async () => {
    if (!startedHere || process.env['SECURE_STACK_KEEP'] === '1') return;
    const down = await script(['down'], DOWN_TIMEOUT_MS);
    if (down.code !== 0) throw new Error(`scripts/secure-stack down failed:\n${down.out}`);
  });
  return () => {
    if (!info) throw new Error('secure stack not started (useSecureStack before hook)');
    return info;
  };
}

/**
 * A TCP relay in front of a broker port that counts the connections made through it: how often
 * a client retries is measured on the wire, not taken from the client's own log.
 */
export class CountingProxy {
  /** Time (Date.now()) of every accepted connection. */
  readonly connections: number[] = [];
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();

  private constructor(private readonly target: number) {
    this.server = net.createServer((client) => {
      this.connections.push(Date.now());
      const upstream = net.connect({ host: '127.0.0.1', port: this.target });
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
  }

  static async start(target: number): Promise<CountingProxy> {
    const proxy = new CountingProxy(target);
    await new Promise<void>((resolve, reject) => {
      proxy.server.once('error', reject);
      proxy.server.listen(0, '127.0.0.1', () => resolve());
    });
    return proxy;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  /** Connections accepted in [from, to). */
  countBetween(from: number, to: number): number {
    return this.connections.filter((t) => t >= from && t < to).length;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** The forwarder's HTTP port, from its 'http server listening' line. */
export async function httpPort(fwd: ForwarderProcess): Promise<number> {
  const line = await fwd.waitForLog((l) => l.msg === 'http server listening', 15_000);
  return Number(line['port']);
}

/** GET on the forwarder's HTTP server (bounded: 5 s). */
export async function httpGet(
  fwd: ForwarderProcess,
  urlPath: string,
): Promise<{ status: number; body: string }> {
  const port = await httpPort(fwd);
  const res = await fetch(`http://127.0.0.1:${port}${urlPath}`, {
    signal: AbortSignal.timeout(5_000),
  });
  return { status: res.status, body: await res.text() };
}

/**
 * Publishes `n` QoS 1 messages (`msg-0` … on `<base>/m`) anonymously on the plain MQTT listener
 * and returns what the forwarder wrote to the Kafka topic `base` (at least `n` values, or what
 * arrived before the timeout).
 */
export async function publishAndRead(
  stack: SecureStack,
  base: string,
  n: number,
): Promise<string[]> {
  const client = await connectClient({ host: stack.mqtt.host, port: stack.mqtt.ports.plain });
  try {
    for (let i = 0; i < n; i++) await client.publishAsync(`${base}/m`, `msg-${i}`, { qos: 1 });
  } finally {
    await client.endAsync();
  }
  return readValues(stack, base, n);
}

/**
 * Values of `topic` on the secure Kafka (its PLAINTEXT listener, read with kcat), polled until
 * `count` are there or `timeoutMs` passed. One value per line: the tests publish one-line text.
 */
export async function readValues(
  stack: SecureStack,
  topic: string,
  count: number,
  timeoutMs = 30_000,
): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  let values: string[] = [];
  while (Date.now() < deadline) {
    values = await kcatValues(stack, topic, Math.max(2_000, deadline - Date.now()));
    if (values.length >= count) return values;
    await new Promise((r) => setTimeout(r, 300));
  }
  return values;
}

function kcatValues(stack: SecureStack, topic: string, timeoutMs: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      'kcat',
      [
        '-b',
        `127.0.0.1:${stack.kafka.ports.plaintext}`,
        '-q',
        '-C',
        '-t',
        topic,
        '-o',
        'beginning',
        '-e',
        '-f',
        '%s\\n',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0 || /Unknown topic|UNKNOWN_TOPIC/i.test(err)) {
        resolve(out.split('\n').filter((l) => l !== ''));
      } else if (code === null) {
        resolve([]);
      } else {
        reject(new Error(`kcat exited ${code}: ${err.trim()}`));
      }
    });
  });
}

/** Runs `bin/forwarder.js ...args` to completion (bounded), e.g. check-config. */
export function runCli(
  args: readonly string[],
  env: NodeJS.ProcessEnv = {},
  timeoutMs = 20_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(REPO_ROOT, 'bin', 'forwarder.js'), ...args], {
      cwd: REPO_ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
