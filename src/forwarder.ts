/**
 * Composition root: builds the pipeline, and owns start order and drain order.
 *
 *   MqttSource ─▶ Router ─▶ Dispatcher ─▶ ProducerLanes (Piscina workers | inline)
 *        ▲                                      │
 *        └──── AckGate ◀── InflightWindow ◀─────┘ delivery results
 */
import type { Server } from 'node:http';
import type { IPublishPacket } from 'mqtt';
import { buildProducerConfig } from './config/kafka';
import type { Config } from './config/schema';
import { Dispatcher } from './dispatch/dispatcher';
import { ShutdownTimeoutError } from './errors';
import type { ProducerLanes } from './dispatch/lanes';
import { InlineLanes, WorkerLanes } from './dispatch/lanes';
import { InflightWindow } from './dispatch/window';
import type { WindowEntry } from './dispatch/window';
import { MqttSource } from './mqtt/source';
import { startHttpServer } from './observability/http';
import type { Logger } from './observability/logger';
import { Metrics } from './observability/metrics';
import { RateLimitedLog } from './observability/logger';
import { Router, wrapPayload } from './routing/router';
import type { WorkerInit } from './types';

/**
 * What a stop may take after shutdown_timeout_ms: MQTT disconnect, producer flush and
 * disconnect share it. The CLI's hard deadline (STOP_GRACE_MS in cli/main.ts) lies beyond it.
 */
export const STOP_BUDGET_MS = 3_500;
/** Producer flush bound at shutdown, within what is left of STOP_BUDGET_MS. */
const PRODUCER_FLUSH_MS = 2_000;
const MQTT_DISCONNECT_MS = 2_000;
const TICK_MS = 500;
/** /healthz fails when the event loop did not turn for this long. */
const LOOP_STUCK_MS = 10_000;
/** /readyz fails when the window stayed full without moving for this long. */
const WINDOW_STALL_MS = 30_000;

export interface StopOutcome {
  /** Every received message was confirmed by Kafka and acknowledged before the timeout. */
  readonly drained: boolean;
  readonly producers: 'closed' | 'abandoned';
}

export interface ForwarderStats {
  received: number;
  unmatched: number;
  released: number;
}

export class Forwarder {
  readonly stats: ForwarderStats = { received: 0, unmatched: 0, released: 0 };
  private readonly router: Router;
  private readonly window: InflightWindow;
  private readonly lanes: ProducerLanes;
  private readonly dispatcher: Dispatcher;
  private readonly source: MqttSource;
  private readonly unmatchedLog = new RateLimitedLog(10_000);
  private stopped: Promise<StopOutcome> | undefined;
  private statsTimer: NodeJS.Timeout | undefined;
  private tickTimer: NodeJS.Timeout | undefined;
  private lastTick = performance.now();
  /** performance.now() when the window was first seen full, 0 while it has room. */
  private fullSince = 0;
  /** Set while a `stop` policy holds a refused message. */
  private haltReason: string | undefined;
  private http: Server | undefined;
  readonly metrics = new Metrics({
    received: () => this.stats.received,
    inflightMessages: () => this.window.size,
    inflightBytes: () => this.window.bytes,
    producersReady: () => this.lanes.ready,
  });

  constructor(
    private readonly cfg: Config,
    private readonly log: Logger,
  ) {
    const kafkaTopics = [
      ...new Set(
        cfg.forwarding.flatMap((m) =>
          m.dead_letter_topic === undefined
            ? [m.kafka.topic]
            : [m.kafka.topic, m.dead_letter_topic],
        ),
      ),
    ];
    const producer = buildProducerConfig(cfg);
    const init: WorkerInit = {
      global: producer.global,
      topic: producer.topic,
      kafkaTopics,
      connectTimeoutMs: cfg.dispatch.kafka_connect_timeout_ms,
      pollIntervalMs: 1,
      logLevel: cfg.log_level,
    };
    const workers = cfg.dispatch.workers;
    this.lanes =
      workers === 0
        ? new InlineLanes(init, log)
        : new WorkerLanes(workers, cfg.dispatch.batches_per_worker, init, log);

    this.router = new Router(
      cfg.forwarding.map((m) => ({
        filter: m.mqtt.topic,
        qos: m.mqtt.qos,
        kafkaTopicIndex: kafkaTopics.indexOf(m.kafka.topic),
        wrap: m.wrap_as_json,
      })),
      this.lanes.count,
    );
    this.window = new InflightWindow(
      cfg.mqtt.inflight_window,
      cfg.dispatch.max_inflight_bytes,
      (released) => {
        this.stats.released += released.length;
        this.source.release(released);
      },
    );
    this.dispatcher = new Dispatcher(
      this.lanes,
      this.window,
      {
        batchSize: cfg.dispatch.batch_size,
        lingerMs: cfg.dispatch.linger_ms,
        batchesPerLane: cfg.dispatch.batches_per_worker,
      },
      cfg.forwarding.map((m) => ({
        name: m.name,
        onError: m.on_error,
        ...(m.dead_letter_topic === undefined
          ? {}
          : { deadLetterTopicIndex: kafkaTopics.indexOf(m.dead_letter_topic) }),
      })),
      log,
      this.metrics,
      (halted, reason) => this.onHalt(halted, reason),
    );
    this.source = new MqttSource(
      cfg.mqtt,
      this.router.subscriptions,
      {
        onPublish: (packet, conn) => this.onPublish(packet, conn),
        admit: (next) => this.window.whenRoom(next),
      },
      log,
      this.metrics,
    );
    this.metrics.windowLimit.set(cfg.mqtt.inflight_window);
    this.metrics.workers.set(workers);
  }

  /** Alive while the event loop keeps turning; see LOOP_STUCK_MS. */
  health(): { ok: boolean; detail: Record<string, unknown> } {
    const lagMs = Math.round(performance.now() - this.lastTick);
    return { ok: lagMs < LOOP_STUCK_MS, detail: { eventLoopLagMs: lagMs } };
  }

  /**
   * Ready to take traffic: MQTT connected and subscribed, every producer connected with a
   * reachable broker, not stopping, and the window not stuck full (a full window that does not
   * move for WINDOW_STALL_MS means Kafka stopped taking messages).
   */
  readiness(): { ok: boolean; detail: Record<string, unknown> } {
    const stalledMs =
      this.window.hasRoom || this.fullSince === 0
        ? 0
        : Math.round(performance.now() - this.fullSince);
    const detail = {
      mqttConnected: this.source.connected,
      mqttSubscribed: this.source.subscribed,
      producersReady: this.lanes.ready,
      producers: this.lanes.count,
      inflight: this.window.size,
      windowStalledMs: stalledMs,
      halted: this.haltReason ?? false,
      stopping: this.stopped !== undefined,
    };
    const ok =
      detail.mqttSubscribed &&
      detail.producersReady === detail.producers &&
      stalledMs < WINDOW_STALL_MS &&
      this.haltReason === undefined &&
      !detail.stopping;
    return { ok, detail };
  }

  async start(): Promise<void> {
    if (this.cfg.http.enabled) {
      this.http = await startHttpServer(
        this.cfg.http.host,
        this.cfg.http.port,
        this,
        this.metrics,
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
    this.source.start();
    this.tickTimer = setInterval(() => {
      const now = performance.now();
      this.lastTick = now;
      if (this.window.hasRoom) this.fullSince = 0;
      else if (this.fullSince === 0) this.fullSince = now;
    }, TICK_MS).unref();
    this.statsTimer = setInterval(() => {
      this.log.debug(
        { ...this.stats, window: this.window.size, windowBytes: this.window.bytes },
        'stats',
      );
    }, 5_000).unref();
  }

  private onPublish(packet: IPublishPacket, conn: number): void {
    // A PUBLISH mqtt.js had already parsed when shutdown began: not forwarded and never
    // acknowledged, so the broker redelivers it. Dispatching it now would race the producers'
    // disconnect (and the drain has already decided it is done).
    if (this.window.isClosed) {
      this.log.debug(
        { topic: packet.topic },
        'message arrived during shutdown; left unacknowledged',
      );
      return;
    }
    this.stats.received++;
    const topic = packet.topic;
    const payload = packet.payload as Buffer;
    const route = this.router.route(topic);
    const mappings = this.router.mappingsFor(route, packet.properties?.subscriptionIdentifier);
    const entry: WindowEntry = this.window.admit(
      packet.qos,
      packet.messageId ?? 0,
      conn,
      payload.byteLength,
      mappings.length,
      packet.retain,
    );
    if (mappings.length === 0) {
      this.stats.unmatched++;
      this.metrics.unmatched.inc();
      const n = this.unmatchedLog.take();
      if (n >= 0)
        this.log.warn(
          { topic, suppressed: n },
          'message matches no mapping; acknowledged without forwarding',
        );
      return;
    }
    const limit = this.cfg.mqtt.max_payload_bytes;
    if (limit > 0 && payload.byteLength > limit) {
      const reason = `payload of ${payload.byteLength} bytes exceeds mqtt.max_payload_bytes (${limit})`;
      for (const m of mappings)
        this.dispatcher.reject(route.lane, entry, m, route.key, payload, reason);
      return;
    }
    for (const m of mappings) {
      const mapping = this.router.mappings[m]!;
      const value = mapping.wrap ? wrapPayload(topic, payload) : payload;
      this.dispatcher.add(route.lane, entry, m, mapping.kafkaTopicIndex, route.key, value, payload);
    }
  }

  /** A mapping's `stop` policy holds a refused message: stop reading until Kafka takes it. */
  private onHalt(halted: boolean, reason: string): void {
    this.haltReason = halted ? reason : undefined;
    if (halted) {
      this.window.pause();
      this.log.error(
        { reason },
        'stopped reading MQTT: a message Kafka refuses is held (on_error: stop)',
      );
    } else {
      this.window.resume();
      this.log.info('Kafka took the held message; reading MQTT again');
    }
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
    this.dispatcher.flushAll();
    this.dispatcher.stopRetries();
    let timer: NodeJS.Timeout | undefined;
    const drained = await Promise.race([
      this.window.drained().then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (!drained) {
      const err = new ShutdownTimeoutError(
        `${this.window.size} messages not confirmed by Kafka within ${timeoutMs} ms; they stay unacknowledged and the broker redelivers them`,
      );
      this.log.warn({ code: err.code, unacknowledged: this.window.size }, err.message);
    }
    await this.source.stop(left(MQTT_DISCONNECT_MS));
    const producers = await this.lanes.close(left(PRODUCER_FLUSH_MS));
    clearInterval(this.tickTimer);
    if (this.http) {
      // A scrape still open must not hold the stop.
      this.http.closeAllConnections();
      await new Promise<void>((resolve) => this.http!.close(() => resolve()));
    }
    this.log.info({ ...this.stats, producers }, 'forwarder stopped');
    return { drained, producers };
  }
}
