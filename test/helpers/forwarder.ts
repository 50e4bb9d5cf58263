/**
 * Runs the real forwarder as a child process (bin/forwarder.js, the same entry users run) with a
 * config written to a temporary file, and reads its JSON log lines.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import { stringify } from 'yaml';
import { KAFKA_PORT, MQTT_HOST, MQTT_PORT, REPO_ROOT } from './env';

export type LogLine = Record<string, unknown> & { msg?: string; level?: number };

export interface MappingSpec {
  name: string;
  mqtt: { topic: string; qos?: 0 | 1 | 2 };
  kafka: { topic: string };
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

  /** Waits until MQTT is subscribed to `filters` and every producer connected. */
  async ready(filters: number, producers: number, timeoutMs = 30_000): Promise<void> {
    await this.waitForLog((l) => l.msg === 'mqtt connected', timeoutMs, 'mqtt connection');
    const deadline = Date.now() + timeoutMs;
    while (
      this.lines.filter((l) => l.msg === 'mqtt subscribed').length < filters ||
      this.lines.filter((l) => l.msg === 'kafka producer connected').length < producers
    ) {
      if (Date.now() > deadline)
        throw new Error(`forwarder not ready in ${timeoutMs} ms:\n${this.tail()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** The body of GET /readyz (its `detail` fields plus `status`), from the port it logged. */
  async readyz(): Promise<Record<string, unknown>> {
    const line = await this.waitForLog((l) => l.msg === 'http server listening', 30_000, 'http');
    const res = await fetch(`http://127.0.0.1:${String(line['port'])}/readyz`);
    return (await res.json()) as Record<string, unknown>;
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

/**
 * Forwarders of one test file: `start` tracks each one, `stop` sends SIGTERM and asserts a clean
 * exit, and any still running when the file ends is SIGKILLed, so a failing assertion never
 * leaves a forwarder behind.
 */
export function forwarderPool(): {
  start(configFile: string, env?: NodeJS.ProcessEnv): ForwarderProcess;
  stop(fwd: ForwarderProcess): Promise<void>;
} {
  const live = new Set<ForwarderProcess>();
  after(async () => {
    await Promise.all([...live].map((f) => f.stop('SIGKILL', 5_000)));
  });
  return {
    start(configFile, env = {}) {
      const fwd = new ForwarderProcess(configFile, env);
      live.add(fwd);
      void fwd.exit().then(() => live.delete(fwd));
      return fwd;
    },
    async stop(fwd) {
      const r = await fwd.stop('SIGTERM', 20_000);
      assert.equal(r.code, 0, `forwarder exit: ${JSON.stringify(r)}\n${fwd.tail()}`);
    },
  };
}
