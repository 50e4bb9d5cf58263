/**
 * The supervisor of `processes: N`: owns no MQTT connection and no producer. It forks the
 * ingest processes (each the full forwarder of src/forwarder.ts, on its share of the mappings),
 * restarts one that dies, fans signals out, and serves /healthz, /readyz and one /metrics for
 * all of them. See docs/DESIGN.md, "Several processes".
 */
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import type { Server } from 'node:http';
import { AggregatorRegistry, Counter, Gauge, Registry } from 'prom-client';
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { Config } from '../config/schema';
import { ERROR_CODES } from '../errors';
import { startHttpServer } from '../observability/http';
import type { Probe } from '../observability/http';
import type { Logger } from '../observability/logger';
import type { FromIngest, ProbeReply, ProbeRequest } from './ipc';
import { INGEST_ENV, ingestClientId, owningProcesses } from './plan';
import { orphanCandidates, probeSessions } from './sessions';

/** Supervisor exit codes beyond the single process's (0 clean, 1 failure, 2 config, 3 forced). */
export const EXIT_NOT_DRAINED = 4;
const EXIT_FORCED = 3;

/** How often the supervisor asks every process how it is (readiness, liveness). */
const PROBE_EVERY_MS = 1_000;
/** A probe unanswered for this long counts as failed. */
const PROBE_TIMEOUT_MS = 2_000;
/** A process that answered no probe for this long is stuck (its event loop): killed, restarted. */
const STUCK_MS = 15_000;
const RESTART_MIN_MS = 1_000;
const RESTART_MAX_MS = 30_000;
/** A process that ran this long before it died restarts after RESTART_MIN_MS again. */
const STABLE_MS = 60_000;

type State = 'starting' | 'running' | 'restarting' | 'stopped';

interface Ingest {
  readonly index: number;
  readonly clientId: string;
  child: ChildProcess | undefined;
  state: State;
  startedAt: number;
  restarts: number;
  backoff: number;
  restartTimer: NodeJS.Timeout | undefined;
  last: ProbeReply | undefined;
  lastAnswerAt: number;
  stopped: { drained: boolean; producers: string } | undefined;
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  killedAtDeadline: boolean;
}

export interface SupervisorOptions {
  readonly configFile: string;
  readonly count: number;
  /** The hard deadline of one ingest process's stop (its own shutdown bound plus a margin). */
  readonly stopDeadlineMs: number;
}

export class Supervisor implements Probe {
  private readonly ingests: Ingest[] = [];
  private readonly registry = new Registry();
  private readonly processes: Gauge;
  private readonly orphans: Gauge;
  private readonly up: Gauge;
  private readonly restartsTotal: Counter;
  private readonly reloadsRefused: Counter;
  private http: Server | undefined;
  private probeTimer: NodeJS.Timeout | undefined;
  private probeId = 0;
  private readonly pending = new Map<number, (r: ProbeReply | undefined) => void>();
  private lastTick = performance.now();
  private stopping: Promise<number> | undefined;
  private generationNo = 1;

  constructor(
    private readonly cfg: Config,
    private readonly opts: SupervisorOptions,
    private readonly log: Logger,
  ) {
    this.processes = new Gauge({
      name: 'mkf_ingest_processes',
      help: 'Ingest processes this supervisor runs (processes that own no mapping are not started).',
      registers: [this.registry],
    });
    this.orphans = new Gauge({
      name: 'mkf_orphan_sessions',
      help: 'Persistent MQTT sessions the broker holds for client ids no ingest process of this config uses (checked at start): their queued messages are not forwarded.',
      registers: [this.registry],
    });
    this.up = new Gauge({
      name: 'mkf_ingest_process_up',
      help: 'Per ingest process: 1 while it runs and answers the supervisor, else 0.',
      labelNames: ['process'],
      registers: [this.registry],
    });
    this.reloadsRefused = new Counter({
      name: 'mkf_supervisor_config_reloads_refused_total',
      help: 'Config reloads (SIGHUP) the supervisor refused because the file is invalid; the ingest processes were not asked to reload.',
      registers: [this.registry],
    });
    this.restartsTotal = new Counter({
      name: 'mkf_ingest_process_restarts_total',
      help: 'Per ingest process: restarts after it died or stopped answering.',
      labelNames: ['process'],
      registers: [this.registry],
    });
  }

  /** Indices of the processes that own at least one mapping. */
  plannedProcesses(cfg: Config = this.cfg): number[] {
    return owningProcesses(cfg.forwarding, this.opts.count);
  }

  /** The processes running now (for the session check: their client ids are in use). */
  get runningIndices(): ReadonlySet<number> {
    return new Set(this.ingests.map((g) => g.index));
  }

  async start(): Promise<void> {
    const { count } = this.opts;
    const planned = this.plannedProcesses();
    if (this.cfg.http.enabled) {
      this.http = await startHttpServer(
        this.cfg.http.host,
        this.cfg.http.port,
        this,
        { contentType: this.registry.contentType, metrics: () => this.scrape() },
        this.log,
      );
    }
    if (planned.length < count) {
      this.log.warn(
        { processes: count, started: planned.length, mappings: this.cfg.forwarding.length },
        `processes: ${count}, but only ${planned.length} own a mapping (each mapping without share goes to one process); the others are not started. Mark a busy mapping with share to spread it over more processes`,
      );
    }
    this.log.info(
      { processes: planned.length, count, configFile: this.opts.configFile },
      'supervisor starting ingest processes',
    );
    for (const index of planned) this.add(index);
    this.processes.set(planned.length);
    this.probeTimer = setInterval(() => this.probeAll(), PROBE_EVERY_MS);
    this.probeTimer.unref();
    void this.checkSessions();
  }

  /**
   * Sessions left by an earlier process count (`<client_id>-<i>` beyond this one's, or the bare
   * id of a single process): their queued messages reach Kafka only when a forwarder connects
   * with that id again, so each is an error in the log and counted in mkf_orphan_sessions.
   */
  private async checkSessions(): Promise<void> {
    const id = this.cfg.mqtt.client_id;
    if (id === '') return;
    const candidates = orphanCandidates(id, this.opts.count, this.runningIndices);
    const results = await probeSessions(this.cfg.mqtt, candidates, this.log);
    const found = results.filter((r) => r.present);
    this.orphans.set(found.length);
    for (const r of found) {
      this.log.error(
        { code: ERROR_CODES.orphanSession, clientId: r.clientId, processes: this.opts.count },
        `the MQTT broker holds a persistent session for client id ${r.clientId}, which no ingest process of this config uses: messages queued there are not forwarded until a forwarder connects with that id. Run once with a process count that includes it to drain it (docs/DEPLOY.md, "Several processes"), or remove it on the broker if it holds nothing you need`,
      );
    }
    const failed = results.filter((r) => r.error !== undefined);
    if (failed.length > 0) {
      this.log.warn(
        {
          code: ERROR_CODES.orphanSession,
          unchecked: failed.map((r) => r.clientId),
          error: failed[0]!.error,
        },
        `could not check ${failed.length} client id(s) for orphaned sessions`,
      );
    }
    this.log.info(
      { checked: candidates.length, orphans: found.length },
      'orphaned-session check done',
    );
  }

  private add(index: number): void {
    const ingest: Ingest = {
      index,
      clientId: ingestClientId(this.cfg.mqtt.client_id, this.opts.count, index),
      child: undefined,
      state: 'starting',
      startedAt: 0,
      restarts: 0,
      backoff: RESTART_MIN_MS,
      restartTimer: undefined,
      last: undefined,
      lastAnswerAt: 0,
      stopped: undefined,
      exit: undefined,
      killedAtDeadline: false,
    };
    this.ingests.push(ingest);
    this.ingests.sort((a, b) => a.index - b.index);
    this.spawn(ingest);
  }

  private spawn(g: Ingest): void {
    const script = process.argv[1]!;
    const child = fork(script, ['run', '--config', this.opts.configFile], {
      env: { ...process.env, [INGEST_ENV]: `${g.index}/${this.opts.count}` },
      execArgv: process.execArgv,
      // stdout/stderr go straight to the pod's log: JSON lines carrying `process`.
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    g.child = child;
    g.state = 'running';
    g.startedAt = performance.now();
    g.lastAnswerAt = g.startedAt;
    g.last = undefined;
    g.stopped = undefined;
    g.exit = undefined;
    this.up.labels(String(g.index)).set(1);
    this.log.info(
      { process: g.index, childPid: child.pid, clientId: g.clientId || undefined },
      'ingest process started',
    );
    child.on('message', (m: FromIngest) => {
      if (m.t === 'probe') {
        g.lastAnswerAt = performance.now();
        if (!m.metrics) g.last = m;
        this.pending.get(m.id)?.(m);
      } else if (m.t === 'stopped') {
        g.stopped = { drained: m.drained, producers: m.producers };
      }
    });
    // 'close', not 'exit': it comes after the IPC channel is drained, so the stop's report
    // (sent just before the process exits) has been read by then.
    child.on('close', (code, signal) => this.onExit(g, child, code, signal));
  }

  private onExit(
    g: Ingest,
    child: ChildProcess,
    code: number | null,
    signal: NodeJS.Signals | null,
  ): void {
    if (g.child !== child) return;
    g.exit = { code, signal };
    g.child = undefined;
    this.up.labels(String(g.index)).set(0);
    const ranMs = Math.round(performance.now() - g.startedAt);
    if (this.stopping !== undefined) {
      g.state = 'stopped';
      this.log.info(
        { process: g.index, code, signal, drained: g.stopped?.drained },
        'ingest process stopped',
      );
      return;
    }
    // Unasked: it crashed, was killed, or stopped by itself (a fatal start error).
    if (ranMs >= STABLE_MS) g.backoff = RESTART_MIN_MS;
    const delay = g.backoff;
    g.backoff = Math.min(g.backoff * 2, RESTART_MAX_MS);
    g.state = 'restarting';
    const why =
      signal !== null
        ? `killed by ${signal}`
        : code === 2
          ? 'exit code 2 (the config it loaded is invalid: see its error above)'
          : `exit code ${String(code)}`;
    this.log.error(
      { code: ERROR_CODES.ingestProcessDied, process: g.index, exitCode: code, signal, ranMs },
      `ingest process ${g.index} exited (${why}) after ${ranMs} ms; restarting in ${delay} ms. Its unacknowledged messages stay with the broker and are redelivered`,
    );
    g.restartTimer = setTimeout(() => {
      g.restartTimer = undefined;
      if (this.stopping !== undefined) return;
      g.restarts++;
      this.restartsTotal.labels(String(g.index)).inc();
      this.spawn(g);
    }, delay);
  }

  /** One probe to one process: its answer, or undefined when it did not answer in time. */
  private ask(g: Ingest, metrics: boolean): Promise<ProbeReply | undefined> {
    const child = g.child;
    if (!child?.connected) return Promise.resolve(undefined);
    const id = ++this.probeId;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        resolve(undefined);
      }, PROBE_TIMEOUT_MS);
      this.pending.set(id, (r) => {
        clearTimeout(timer);
        this.pending.delete(id);
        resolve(r);
      });
      const req: ProbeRequest = { t: 'probe', id, metrics };
      child.send(req, (err) => {
        if (err) this.pending.get(id)?.(undefined);
      });
    });
  }

  private probeAll(): void {
    const now = performance.now();
    this.lastTick = now;
    for (const g of this.ingests) {
      if (g.state !== 'running' || !g.child) continue;
      if (now - g.lastAnswerAt > STUCK_MS && this.stopping === undefined) {
        this.log.error(
          {
            code: ERROR_CODES.ingestProcessDied,
            process: g.index,
            silentMs: Math.round(now - g.lastAnswerAt),
          },
          `ingest process ${g.index} answered no probe for ${STUCK_MS} ms (event loop stuck); killing it to restart it`,
        );
        g.child.kill('SIGKILL');
        continue;
      }
      void this.ask(g, false);
    }
  }

  /** Alive while the supervisor's own event loop turns; a dead process is restarted, not fatal. */
  health(): { ok: boolean; detail: Record<string, unknown> } {
    const lagMs = Math.round(performance.now() - this.lastTick);
    return { ok: lagMs < STUCK_MS, detail: { eventLoopLagMs: lagMs, processes: this.summary() } };
  }

  /** Ready only when every ingest process is running and ready. */
  readiness(): { ok: boolean; detail: Record<string, unknown> } {
    const fresh = performance.now() - PROBE_TIMEOUT_MS - PROBE_EVERY_MS;
    const ok =
      this.stopping === undefined &&
      this.ingests.length > 0 &&
      this.ingests.every(
        (g) => g.state === 'running' && g.last?.ready === true && g.lastAnswerAt >= fresh,
      );
    return { ok, detail: { stopping: this.stopping !== undefined, processes: this.summary() } };
  }

  private summary(): Record<string, unknown>[] {
    return this.ingests.map((g) => ({
      process: g.index,
      pid: g.child?.pid,
      state: g.state,
      ready: g.state === 'running' && g.last?.ready === true,
      restarts: g.restarts,
      ...(g.last && { detail: g.last.detail }),
    }));
  }

  /** The pod's /metrics: every process's metrics summed (PER_PROCESS_METRICS keep a label). */
  private async scrape(): Promise<string> {
    const answers = await Promise.all(this.ingests.map((g) => this.ask(g, true)));
    const all: MetricObjectWithValues<MetricValue<string>>[][] = [];
    for (const a of answers) if (a?.metrics) all.push(a.metrics);
    const merged = Registry.merge([AggregatorRegistry.aggregate(all), this.registry]);
    return merged.metrics();
  }

  /**
   * SIGHUP: every running process reloads the file itself (its own share of the mappings); a
   * process that owns mappings only under the new file is started. `next`: the file as the
   * supervisor loaded it, already checked.
   */
  get generation(): number {
    return this.generationNo;
  }

  /** A refused reload is logged by the supervisor alone: it is not passed on. */
  countRefused(): void {
    this.reloadsRefused.inc();
  }

  reload(next: Config): void {
    if (this.stopping !== undefined) return;
    this.generationNo++;
    if (next.processes !== this.cfg.processes) {
      this.log.warn(
        { code: ERROR_CODES.configNeedsRestart, paths: ['processes'] },
        'config reload: processes changed; only a restart applies it, the running processes stay',
      );
    }
    for (const g of this.ingests) g.child?.kill('SIGHUP');
    const running = this.runningIndices;
    const added = this.plannedProcesses(next).filter((i) => !running.has(i));
    for (const index of added) this.add(index);
    this.processes.set(this.ingests.length);
    if (added.length > 0) {
      this.log.info({ added }, 'config reload: ingest processes started for their new mappings');
    }
  }

  /**
   * SIGTERM/SIGINT: every process drains as a single one would; the supervisor waits for all,
   * kills any still running at the deadline, and resolves with its exit code: 0 every process
   * drained, EXIT_NOT_DRAINED some stopped with messages unconfirmed (the broker redelivers
   * them), EXIT_FORCED one had to be forced or killed.
   */
  stop(signal: NodeJS.Signals): Promise<number> {
    this.stopping ??= this.drain(signal);
    return this.stopping;
  }

  private async drain(signal: NodeJS.Signals): Promise<number> {
    clearInterval(this.probeTimer);
    for (const g of this.ingests) {
      clearTimeout(g.restartTimer);
      if (g.state === 'restarting') g.state = 'stopped';
    }
    const live = this.ingests.filter((g) => g.child !== undefined);
    this.log.info({ signal, processes: live.length }, 'supervisor stopping ingest processes');
    const exits = live.map(
      (g) =>
        new Promise<void>((resolve) => {
          g.child!.once('close', () => resolve());
        }),
    );
    for (const g of live) g.child!.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(exits),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.opts.stopDeadlineMs);
      }),
    ]);
    clearTimeout(timer);
    for (const g of live) {
      if (g.child === undefined) continue;
      g.killedAtDeadline = true;
      this.log.error(
        { code: ERROR_CODES.shutdownForced, process: g.index },
        `ingest process ${g.index} did not exit within ${this.opts.stopDeadlineMs} ms; killing it`,
      );
      g.child.kill('SIGKILL');
    }
    await Promise.all(exits);
    if (this.http) {
      this.http.closeAllConnections();
      await new Promise<void>((resolve) => this.http!.close(() => resolve()));
    }
    // Ended by the very signal sent: it had not installed its handlers yet (still loading), so
    // it had connected nowhere and held nothing.
    const unstarted = (g: Ingest): boolean => !g.killedAtDeadline && g.exit?.signal === signal;
    const forced = live.filter(
      (g) =>
        g.killedAtDeadline ||
        g.exit?.code === EXIT_FORCED ||
        (g.exit?.signal != null && !unstarted(g)),
    );
    const failed = live.filter((g) => !forced.includes(g) && !unstarted(g) && g.exit?.code !== 0);
    const undrained = live.filter((g) => g.stopped?.drained !== true && !unstarted(g));
    const code =
      forced.length > 0
        ? EXIT_FORCED
        : failed.length > 0
          ? 1
          : undrained.length > 0
            ? EXIT_NOT_DRAINED
            : 0;
    this.log.info(
      {
        exitCode: code,
        processes: live.length,
        forced: forced.map((g) => g.index),
        failed: failed.map((g) => g.index),
        notDrained: undrained.map((g) => g.index),
      },
      code === 0 ? 'supervisor stopped: every process drained' : 'supervisor stopped',
    );
    return code;
  }
}
