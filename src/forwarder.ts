/**
 * Composition root: wires the stages of src/pipeline/ together, and owns start order and drain
 * order. No message passes through this file; see docs/DESIGN.md, "Life of one message".
 *
 *   1-mqtt-receive ─▶ 2-route ─▶ 3-batch ─▶ 4-kafka-produce
 *         ▲                                      │ Kafka's answer per batch
 *   6-mqtt-ack ◀──────────── 5-settle ◀──────────┘
 */
import type { Server } from 'node:http';
import { buildProducerConfig } from './config/kafka';
import { diffConfigs } from './config/reload-diff';
import type { Config } from './config/schema';
import { ERROR_CODES } from './errors';
import { startHttpServer } from './observability/http';
import type { Logger } from './observability/logger';
import { Metrics } from './observability/metrics';
import { Probes } from './observability/probes';
import { MqttSource } from './pipeline/1-mqtt-receive/mqtt-source';
import { Intake } from './pipeline/2-route/intake';
import { routeMappingsOf } from './pipeline/2-route/mappings';
import { Router } from './pipeline/2-route/router';
import { Batcher } from './pipeline/3-batch/batcher';
import type { ProducerLanes } from './pipeline/4-kafka-produce/lanes';
import { InlineLanes, WorkerLanes } from './pipeline/4-kafka-produce/lanes';
import type { WorkerInit } from './pipeline/4-kafka-produce/protocol';
import { Settler, policiesOf } from './pipeline/5-settle/settle';
import { InflightWindow } from './pipeline/6-mqtt-ack/window';

/**
 * What a stop may take after shutdown_timeout_ms: MQTT disconnect, producer flush and
 * disconnect share it. The CLI's hard deadline (STOP_GRACE_MS in cli/main.ts) lies beyond it.
 */
export const STOP_BUDGET_MS = 3_500;
/** Producer flush bound at shutdown, within what is left of STOP_BUDGET_MS. */
const PRODUCER_FLUSH_MS = 2_000;
const MQTT_DISCONNECT_MS = 2_000;

export interface StopOutcome {
  /** Every received message was confirmed by Kafka and acknowledged before the timeout. */
  readonly drained: boolean;
  readonly producers: 'closed' | 'abandoned';
}

/** What a config reload did; see Forwarder.reload. */
export interface ReloadOutcome {
  /** The config generation now running (1 at start). */
  readonly generation: number;
  readonly added: readonly string[];
  readonly removed: readonly string[];
  readonly changed: readonly string[];
  /** Paths outside `forwarding` that differ: not applied, they need a restart. */
  readonly restartRequired: readonly string[];
}

export interface ForwarderStats {
  received: number;
  unmatched: number;
  released: number;
}

export class Forwarder {
  private readonly intake: Intake;
  private readonly window: InflightWindow;
  private readonly lanes: ProducerLanes;
  private readonly batcher: Batcher;
  private readonly settler: Settler;
  private readonly source: MqttSource;
  private router: Router;
  /**
   * What runs: the start config with the forwarding list of the last applied reload. A reload
   * is compared with it, so a change that needs a restart is reported again on every reload
   * until the restart.
   */
  private running: Config;
  private generationNo = 1;
  readonly probes: Probes;
  private released = 0;
  private stopped: Promise<StopOutcome> | undefined;
  private statsTimer: NodeJS.Timeout | undefined;
  private http: Server | undefined;
  readonly metrics = new Metrics({
    received: () => this.intake.stats.received,
    inflightMessages: () => this.window.size,
    inflightBytes: () => this.window.bytes,
    producersReady: () => this.lanes.ready,
  });

  constructor(
    private readonly cfg: Config,
    private readonly log: Logger,
  ) {
    this.running = cfg;
    const producer = buildProducerConfig(cfg);
    const init: WorkerInit = {
      global: producer.global,
      topic: producer.topic,
      connectTimeoutMs: cfg.dispatch.kafka_connect_timeout_ms,
      logLevel: cfg.log_level,
    };
    const workers = cfg.dispatch.workers;
    this.lanes =
      workers === 0
        ? new InlineLanes(init, log)
        : new WorkerLanes(workers, cfg.dispatch.batches_per_worker, init, log);

    const router = (this.router = new Router(routeMappingsOf(cfg.forwarding), this.lanes.count));
    this.window = new InflightWindow(
      cfg.mqtt.inflight_window,
      cfg.dispatch.max_inflight_bytes,
      (released) => {
        this.released += released.length;
        this.source.release(released);
      },
    );
    // The way out needs the way back (Kafka's answers) and the way back needs the way out
    // (dead-letter copies, held records offered again): the settler is bound once both exist.
    let settler: Settler | undefined;
    this.batcher = new Batcher(
      this.lanes,
      {
        batchSize: cfg.dispatch.batch_size,
        lingerMs: cfg.dispatch.linger_ms,
        batchesPerLane: cfg.dispatch.batches_per_worker,
      },
      { settle: (lane, batch, result) => settler!.settle(lane, batch, result) },
      log,
      this.metrics,
    );
    this.settler = settler = new Settler(
      this.window,
      policiesOf(cfg.forwarding),
      this.batcher,
      log,
      this.metrics,
    );
    this.intake = new Intake(
      router,
      this.window,
      {
        add: (lane, r) => this.batcher.add(lane, r),
        reject: (lane, r, reason) => this.settler.reject(lane, r, reason),
      },
      cfg.mqtt.max_payload_bytes,
      log,
      this.metrics,
    );
    this.source = new MqttSource(
      cfg.mqtt,
      router.subscriptions,
      {
        onPublish: (packet, conn) => this.intake.onPublish(packet, conn),
        admit: (next) => this.window.whenRoom(next),
      },
      log,
      this.metrics,
    );
    this.probes = new Probes({
      mqttConnected: () => this.source.connected,
      mqttSubscribed: () => this.source.subscribed,
      producersReady: () => this.lanes.ready,
      producers: this.lanes.count,
      inflight: () => this.window.size,
      windowHasRoom: () => this.window.hasRoom,
      haltReason: () => this.settler.haltReason,
      stopping: () => this.stopped !== undefined,
    });
    this.metrics.windowLimit.set(cfg.mqtt.inflight_window);
    this.metrics.workers.set(workers);
  }

  get generation(): number {
    return this.generationNo;
  }

  /**
   * Applies a reloaded config (already validated) without dropping the connection: the
   * forwarding list takes effect from the next message on; everything else differing is
   * reported as needing a restart and not applied. Every valid config counts as a generation,
   * even one that changes nothing. Undefined once stopping: a reload is ignored then.
   *
   * The router is swapped between two messages: messages up to window.lastSeq were routed
   * with the old mappings, and their records settle with the old policies (the settler's
   * generation starts at the next seq). New or changed filters are subscribed now; removed
   * ones only once every message received before the reload is released, so the broker never
   * sees an UNSUBSCRIBE for a filter whose messages we still hold unacknowledged. Messages that
   * arrive on a removed filter in between match no mapping and are acknowledged without being
   * forwarded, as for any topic no mapping takes.
   */
  reload(next: Config): ReloadOutcome | undefined {
    if (this.stopped !== undefined) return undefined;
    const diff = diffConfigs(this.running, next);
    const { added, removed, changed } = diff.mappings;
    if (added.length + removed.length + changed.length > 0) {
      const router = new Router(routeMappingsOf(next.forwarding), this.lanes.count, this.router);
      const through = this.window.lastSeq;
      this.settler.addGeneration(policiesOf(next.forwarding), through + 1);
      this.intake.use(router);
      this.router = router;
      const retire = this.source.update(router.subscriptions);
      void this.window.whenReleasedThrough(through).then(retire);
      this.running = { ...this.running, forwarding: next.forwarding };
    }
    const generation = ++this.generationNo;
    this.metrics.configGeneration.set(generation);
    this.metrics.configReloads.labels('applied').inc();
    if (diff.restartRequired.length > 0) {
      this.log.warn(
        {
          code: ERROR_CODES.configNeedsRestart,
          generation,
          paths: diff.restartRequired,
        },
        `config reload: ${diff.restartRequired.join(', ')} changed; only a restart applies ${diff.restartRequired.length === 1 ? 'it' : 'them'}, the running values stay`,
      );
    }
    this.log.info(
      { generation, added, removed, changed, mappings: this.running.forwarding.length },
      'config reloaded',
    );
    return { generation, added, removed, changed, restartRequired: diff.restartRequired };
  }

  countRefused(): void {
    this.metrics.configReloads.labels('refused').inc();
  }

  get stats(): ForwarderStats {
    return { ...this.intake.stats, released: this.released };
  }

  async start(): Promise<void> {
    if (this.cfg.http.enabled) {
      this.http = await startHttpServer(
        this.cfg.http.host,
        this.cfg.http.port,
        this.probes,
        this.metrics.registry,
        this.log,
      );
    }
    this.log.info(
      {
        mappings: this.cfg.forwarding.length,
        workers: this.cfg.dispatch.workers,
        window: this.cfg.mqtt.inflight_window,
        batchSize: this.cfg.dispatch.batch_size,
      },
      'forwarder starting',
    );
    this.probes.start();
    // Nothing is read from MQTT before every lane is known to reach its own producer thread.
    await this.lanes.start();
    this.source.start();
    this.statsTimer = setInterval(() => {
      this.log.debug(
        { ...this.stats, window: this.window.size, windowBytes: this.window.bytes },
        'stats',
      );
    }, 5_000).unref();
  }

  /**
   * Drain order: stop reading MQTT → send open batches → wait (bounded) until Kafka confirmed
   * everything received and its acks went out → disconnect MQTT → flush and disconnect every
   * producer → end the worker threads. `drained`: the window emptied in time; `producers`:
   * 'abandoned' when a producer's connect attempt is still pending, so threads were left
   * running and the process must leave by hardExit.
   */
  stop(): Promise<StopOutcome> {
    this.stopped ??= this.drain();
    return this.stopped;
  }

  private async drain(): Promise<StopOutcome> {
    const timeoutMs = this.cfg.shutdown_timeout_ms;
    const budgetEnd = performance.now() + timeoutMs + STOP_BUDGET_MS;
    const left = (cap: number): number =>
      Math.max(0, Math.min(cap, Math.round(budgetEnd - performance.now())));
    this.log.info({ inFlight: this.window.size, timeoutMs }, 'forwarder stopping');
    clearInterval(this.statsTimer);
    this.window.close();
    this.batcher.flushAll();
    this.batcher.stopRetries();
    this.settler.stopRetries();
    let timer: NodeJS.Timeout | undefined;
    const drained = await Promise.race([
      this.window.drained().then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (!drained) {
      this.log.warn(
        { code: ERROR_CODES.shutdownTimeout, unacknowledged: this.window.size },
        `${this.window.size} messages not confirmed by Kafka within ${timeoutMs} ms; they stay unacknowledged and the broker redelivers them`,
      );
    }
    await this.source.stop(left(MQTT_DISCONNECT_MS));
    const producers = await this.lanes.close(left(PRODUCER_FLUSH_MS));
    this.probes.stop();
    if (this.http) {
      // A scrape still open must not hold the stop.
      this.http.closeAllConnections();
      await new Promise<void>((resolve) => this.http!.close(() => resolve()));
    }
    this.log.info({ ...this.stats, producers }, 'forwarder stopped');
    return { drained, producers };
  }
}
