/**
 * The reference service (MaibornWolff/mqtt-kafka-forwarding-service, Rust) as a child process,
 * for `compare.ts`: the same role as forwarder-process.ts for this project's forwarder.
 *
 * What the reference does, read from its source, and what follows here:
 * - it reads the YAML file named by $CONFIG_FILE (else ./config.yaml of its working directory);
 *   unknown keys are ignored (serde's default), so the file written for this forwarder serves it;
 * - it logs through env_logger (RUST_LOG) to stderr: `Subscribed to MQTT topics successfully`
 *   (at info, on SUBACK) is the sign it is ready; it connected to Kafka (metadata fetch) before;
 * - it stops cleanly on SIGINT only (the ctrlc crate without its `termination` feature), within
 *   its 2 s poll tick; SIGTERM would end it at once, without an MQTT DISCONNECT;
 * - its HTTP API binds 0.0.0.0:8080, fixed in its code (src/api.rs), and a failed bind aborts the
 *   whole process (release profile `panic = "abort"`): port 8080 must be free while it runs.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { accessSync, constants, createWriteStream, mkdirSync, statSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { SubjectExit, SubjectProcess } from '../types';

/** The reference's HTTP port, fixed in its code. */
export const REFERENCE_HTTP_PORT = 8080;
const READY_LINE = 'Subscribed to MQTT topics successfully';

export interface ReferenceLaunch {
  /** The reference's release binary (`target/release/forwarder` of its cargo build). */
  readonly bin: string;
  readonly configFile: string;
  /** Working directory; the log goes here. */
  readonly dir: string;
  /** RUST_LOG; default info (no line per message at info). */
  readonly logLevel?: string;
  readonly readyTimeoutMs?: number;
}

/** Why `bin` cannot be run, or undefined when it can. */
export function referenceBinaryProblem(bin: string | undefined): string | undefined {
  if (bin === undefined || bin === '') {
    return 'no reference binary given: pass --reference-bin <path> or set REFERENCE_BIN (the release build of the reference service, target/release/forwarder)';
  }
  try {
    if (!statSync(bin).isFile()) return `reference binary ${bin} is not a file`;
    accessSync(bin, constants.X_OK);
  } catch (err) {
    return `reference binary ${bin}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`;
  }
  return undefined;
}

/** True when something accepts connections on 127.0.0.1:`port`. */
export function portAnswers(port: number, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    const done = (v: boolean): void => {
      s.destroy();
      resolve(v);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

export class ReferenceUnderTest implements SubjectProcess {
  readonly child: ChildProcess;
  readonly logFile: string;
  private readonly tail: string[] = [];
  private ready = false;
  private readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  private constructor(l: ReferenceLaunch) {
    mkdirSync(l.dir, { recursive: true });
    this.logFile = path.join(l.dir, 'reference.log');
    const log = createWriteStream(this.logFile, { flags: 'a' });
    this.child = spawn(path.resolve(l.bin), [], {
      cwd: l.dir,
      env: {
        ...process.env,
        CONFIG_FILE: path.resolve(l.configFile),
        RUST_LOG: l.logLevel ?? 'info',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const onData = (c: Buffer): void => {
      log.write(c);
      for (const line of c.toString().split('\n')) {
        if (line.trim() === '') continue;
        this.remember(line);
        if (line.includes(READY_LINE)) this.ready = true;
      }
    };
    this.child.stdout!.on('data', onData);
    this.child.stderr!.on('data', onData);
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

  /**
   * Starts it and waits until it subscribed (bounded). Refuses to start while port 8080 answers:
   * the reference would abort on its bind, or a health check of someone else's would be counted.
   */
  static async start(l: ReferenceLaunch): Promise<ReferenceUnderTest> {
    if (await portAnswers(REFERENCE_HTTP_PORT)) {
      throw new Error(
        `port ${REFERENCE_HTTP_PORT} is taken: the reference binds 0.0.0.0:${REFERENCE_HTTP_PORT} (fixed in its src/api.rs) and aborts when it cannot; free the port`,
      );
    }
    const f = new ReferenceUnderTest(l);
    const timeoutMs = l.readyTimeoutMs ?? 30_000;
    const deadline = Date.now() + timeoutMs;
    let dead = false;
    void f.exited.then(() => (dead = true));
    while (!f.ready) {
      if (dead) {
        const lines = f.lastLines();
        const why = lines.includes('Could not listen on port')
          ? ` (its HTTP API could not bind port ${REFERENCE_HTTP_PORT})`
          : /Failed to connect to mqtt|Could not establish connection to kafka/.test(lines)
            ? ' (a broker did not answer)'
            : '';
        throw new Error(`reference exited during start${why}:\n${lines}`);
      }
      if (Date.now() > deadline) {
        await f.stop(5_000);
        throw new Error(`reference not subscribed within ${timeoutMs} ms:\n${f.lastLines()}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    return f;
  }

  /** SIGINT (its clean stop: MQTT DISCONNECT), SIGKILL after `timeoutMs`. */
  async stop(timeoutMs = 30_000): Promise<SubjectExit> {
    const t0 = Date.now();
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGINT');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    const r = await this.exited;
    clearTimeout(timer);
    return { ...r, ms: Date.now() - t0 };
  }
}
