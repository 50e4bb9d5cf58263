/**
 * Runs the real forwarder as a child process (bin/forwarder.js, the same entry users run) with a
 * config written to a temporary file, and reads its JSON log lines. Start forwarders through
 * forwarderPool() (helpers/kit.ts), which stops them whatever happens to the test.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { KAFKA_PORT, MQTT_HOST, MQTT_PORT, REPO_ROOT } from './env';

export type LogLine = Record<string, unknown> & { msg?: string; level?: number };

export interface MappingSpec {
  name: string;
  mqtt: { topic: string; qos?: 0 | 1 | 2 };
  kafka: { topic: string; key?: string | null; headers?: Record<string, unknown> };
  wrap_as_json?: boolean;
}

/** A config for the test stack; `overrides` are merged one level deep per section. */
export function testConfig(
  forwarding: MappingSpec[],
  overrides: {
    mqtt?: object;
    kafka?: object;
    dispatch?: object;
    http?: object;
    [k: string]: unknown;
  } = {},
): Record<string, unknown> {
  const { mqtt, kafka, dispatch, http, ...rest } = overrides;
  return {
    mqtt: { host: MQTT_HOST, port: MQTT_PORT, client_id: '', ...mqtt },
    kafka: { bootstrap_server: '127.0.0.1', port: KAFKA_PORT, ...kafka },
    forwarding,
    dispatch: { ...dispatch },
    // Any free port: several forwarders run at once in some tests.
    http: { host: '127.0.0.1', port: 0, ...(http as object | undefined) },
    log_level: 'debug',
    ...rest,
  };
}

export function writeConfig(config: Record<string, unknown>): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mkf-test-'));
  const file = path.join(dir, 'config.yaml');
  writeFileSync(file, stringify(config));
  return file;
}

export class ForwarderProcess {
  readonly child: ChildProcess;
  readonly lines: LogLine[] = [];
  readonly stderr: string[] = [];
  private readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private waiters: { pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];

  constructor(configFile: string, env: NodeJS.ProcessEnv = {}) {
    this.child = spawn(
      process.execPath,
      [path.join(REPO_ROOT, 'bin', 'forwarder.js'), '--config', configFile],
      {
        cwd: REPO_ROOT,
        env: { ...process.env, LOG_LEVEL: 'debug', ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let buf = '';
    this.child.stdout!.on('data', (c: Buffer) => {
      buf += c.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const text = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let line: LogLine;
        try {
          line = JSON.parse(text) as LogLine;
        } catch {
          line = { msg: text, raw: true };
        }
        this.lines.push(line);
        this.waiters = this.waiters.filter((w) => {
          if (!w.pred(line)) return true;
          w.resolve(line);
          return false;
        });
      }
    });
    this.child.stderr!.on('data', (c: Buffer) => this.stderr.push(c.toString()));
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => resolve({ code, signal }));
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Resolves with the first log line (past or future) that satisfies `pred`. */
  waitForLog(
    pred: (l: LogLine) => boolean,
    timeoutMs = 30_000,
    what = 'log line',
  ): Promise<LogLine> {
    const seen = this.lines.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(
          new Error(`forwarder: no ${what} within ${timeoutMs} ms; last lines:\n${this.tail()}`),
        );
      }, timeoutMs);
      this.waiters.push({
        pred,
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l);
        },
      });
      void this.exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(
          new Error(
            `forwarder exited (${code ?? signal}) before ${what}; last lines:\n${this.tail()}`,
          ),
        );
      });
    });
  }

  /** GET `route` on the forwarder's HTTP server, at the port it logged. */
  async get(route: string): Promise<Response> {
    const line = await this.waitForLog((l) => l.msg === 'http server listening', 30_000, 'http');
    return fetch(`http://127.0.0.1:${String(line['port'])}${route}`);
  }

  /** The body of GET /metrics (Prometheus text). */
  async metrics(): Promise<string> {
    return (await this.get('/metrics')).text();
  }

  /** The body of GET /readyz (its `detail` fields plus `status`). */
  async readyz(): Promise<Record<string, unknown>> {
    return (await (await this.get('/readyz')).json()) as Record<string, unknown>;
  }

  /** Sends `signal` and resolves with the exit status (bounded: SIGKILL after `timeoutMs`). */
  async stop(
    signal: NodeJS.Signals = 'SIGTERM',
    timeoutMs = 30_000,
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }> {
    const t0 = Date.now();
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    const r = await this.exited;
    clearTimeout(timer);
    return { ...r, ms: Date.now() - t0 };
  }

  exit(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    return this.exited;
  }

  tail(n = 15): string {
    return [...this.lines.slice(-n).map((l) => JSON.stringify(l)), ...this.stderr.slice(-5)].join(
      '\n',
    );
  }
}
