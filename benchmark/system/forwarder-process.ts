/**
 * The forwarder under test: bin/forwarder.js (what users run) as a child process with a
 * generated config. Unlike the test helper it accepts node flags, because --cpu-prof and
 * --perf-basic-prof are refused in NODE_OPTIONS. Log lines go to a file, kept for post-mortems.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import type { ProcessLayout } from '../types';

/** From build/benchmark/system/. */
export const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');

export interface ForwarderLaunch {
  /** Written to `dir`/forwarder-config.yaml; or give `configFile`, an existing file, instead. */
  readonly config?: Record<string, unknown>;
  readonly configFile?: string;
  /** Config and log go here. */
  readonly dir: string;
  readonly nodeArgs?: readonly string[];
  /** Subscriptions and producers to wait for before the run starts. */
  readonly filters: number;
  readonly producers: number;
  readonly readyTimeoutMs?: number;
}

export class ForwarderUnderTest {
  readonly child: ChildProcess;
  readonly logFile: string;
  readonly configFile: string;
  private readonly tail: string[] = [];
  private subscribed = 0;
  private connected = 0;
  private readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  private constructor(l: ForwarderLaunch) {
    mkdirSync(l.dir, { recursive: true });
    this.configFile = l.configFile ?? path.join(l.dir, 'forwarder-config.yaml');
    this.logFile = path.join(l.dir, 'forwarder.log');
    if (l.configFile === undefined) writeFileSync(this.configFile, stringify(l.config ?? {}));
    const log = createWriteStream(this.logFile, { flags: 'a' });
    this.child = spawn(
      process.execPath,
      [
        ...(l.nodeArgs ?? []),
        path.join(REPO_ROOT, 'bin', 'forwarder.js'),
        '--config',
        this.configFile,
      ],
      {
        cwd: REPO_ROOT,
        // Info, not debug: a log line per batch would cost the forwarder time under measurement.
        env: { ...process.env, LOG_LEVEL: 'info' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let buf = '';
    this.child.stdout!.on('data', (c: Buffer) => {
      log.write(c);
      buf += c.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        this.remember(line);
        if (line.includes('"msg":"mqtt subscribed"')) this.subscribed++;
        if (line.includes('"msg":"kafka producer connected"')) this.connected++;
      }
    });
    this.child.stderr!.on('data', (c: Buffer) => {
      log.write(c);
      this.remember(c.toString().trimEnd());
    });
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        log.end();
        resolve({ code, signal });
      });
    });
  }

  private remember(line: string): void {
    this.tail.push(line);
    if (this.tail.length > 30) this.tail.shift();
  }

  get pid(): number {
    return this.child.pid!;
  }

  lastLines(): string {
    return this.tail.join('\n');
  }

  /** Starts it and waits until it subscribed and every producer connected (bounded). */
  static async start(l: ForwarderLaunch): Promise<ForwarderUnderTest> {
    const f = new ForwarderUnderTest(l);
    const deadline = Date.now() + (l.readyTimeoutMs ?? 30_000);
    let dead = false;
    void f.exited.then(() => (dead = true));
    while (f.subscribed < l.filters || f.connected < l.producers) {
      if (dead) throw new Error(`forwarder exited during start:\n${f.lastLines()}`);
      if (Date.now() > deadline) {
        await f.stop(5_000);
        throw new Error(
          `forwarder not ready within ${l.readyTimeoutMs ?? 30_000} ms:\n${f.lastLines()}`,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    return f;
  }

  /** SIGTERM (graceful drain), SIGKILL after `timeoutMs`. */
  async stop(
    timeoutMs = 30_000,
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }> {
    const t0 = Date.now();
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    const r = await this.exited;
    clearTimeout(timer);
    return { ...r, ms: Date.now() - t0 };
  }
}

export interface LoadMapping {
  /** The mapping as it is with one process: `mqtt.topic` is `<prefix>/#`. */
  readonly mapping: Record<string, unknown> & { name: string; mqtt: Record<string, unknown> };
  /** The load's MQTT topics are `<prefix>/0` … `<prefix>/<topics - 1>`. */
  readonly prefix: string;
  readonly topics: number;
  readonly processes: number;
  readonly layout: ProcessLayout;
  /** dispatch.workers of each process (0: inline, one producer on the main thread). */
  readonly workers: number;
}

/**
 * Checks a process layout before any run (throws what loadMappings would throw mid-run), and
 * returns what a forwarder with it waits for at its start.
 */
export function checkLayout(l: Pick<LoadMapping, 'topics' | 'processes' | 'layout'>): {
  readonly filters: number;
  readonly producers: number;
} {
  return loadMappings({ ...l, mapping: { name: 'check', mqtt: {} }, prefix: 'check', workers: 1 });
}

/**
 * The `forwarding` list and top-level keys of a forwarder under load with `processes` ingest
 * processes (types.ts, ProcessLayout), and what ForwarderUnderTest.start waits for: the
 * `mqtt subscribed` lines (one per filter and process that subscribes it) and the producers.
 */
export function loadMappings(l: LoadMapping): {
  readonly top: Record<string, unknown>;
  readonly forwarding: Record<string, unknown>[];
  readonly filters: number;
  readonly producers: number;
} {
  const perProcess = Math.max(1, l.workers);
  if (l.processes <= 1) {
    return { top: {}, forwarding: [l.mapping], filters: 1, producers: perProcess };
  }
  if (l.layout === 'share') {
    return {
      top: { processes: l.processes },
      forwarding: [{ ...l.mapping, share: {} }],
      filters: l.processes,
      producers: l.processes * perProcess,
    };
  }
  // Processes that own no mapping are not started: with fewer topics than processes the run
  // would measure fewer processes than it says.
  if (l.topics < l.processes) {
    throw new Error(
      `--processes ${l.processes} with --process-layout split needs at least ${l.processes} topics (--topics ${l.topics}); or use --process-layout share`,
    );
  }
  return {
    top: { processes: l.processes },
    forwarding: Array.from({ length: l.topics }, (_, t) => ({
      ...l.mapping,
      name: `${l.mapping.name}-${t}`,
      mqtt: { ...l.mapping.mqtt, topic: `${l.prefix}/${t}` },
    })),
    filters: l.topics,
    producers: l.processes * perProcess,
  };
}
