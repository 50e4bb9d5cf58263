/**
 * Composition root: builds the pipeline, and owns start order and drain order.
 *
 *   MqttSource ─▶ Router ─▶ Dispatcher ─▶ ProducerLanes (Piscina workers | inline)
 *        ▲                                      │
 *        └──── AckGate ◀── InflightWindow ◀─────┘ delivery results
 */
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
import type { Logger } from './observability/logger';
import { RateLimitedLog } from './observability/logger';
import { Router, wrapPayload } from './routing/router';
import type { WorkerInit } from './types';

/** Producer flush bound at shutdown, after the window drained (or its timeout passed). */
const PRODUCER_FLUSH_MS = 5_000;
const MQTT_DISCONNECT_MS = 2_000;

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
  private stopped: Promise<boolean> | undefined;
  private statsTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly cfg: Config,
    private readonly log: Logger,
  ) {
    const kafkaTopics = [...new Set(cfg.forwarding.map((m) => m.kafka.topic))];
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
      cfg.forwarding.map((m) => m.name),
      log,
    );
    this.source = new MqttSource(
      cfg.mqtt,
      this.router.subscriptions,
      {
        onPublish: (packet, conn) => this.onPublish(packet, conn),
        admit: (next) => this.window.whenRoom(next),
      },
      log,
    );
  }

  start(): void {
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
    this.statsTimer = setInterval(() => {
      this.log.debug(
        { ...this.stats, window: this.window.size, windowBytes: this.window.bytes },
        'stats',
      );
    }, 5_000).unref();
  }

  private onPublish(packet: IPublishPacket, conn: number): void {
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
    );
    if (mappings.length === 0) {
      this.stats.unmatched++;
      const n = this.unmatchedLog.take();
      if (n >= 0)
        this.log.warn(
          { topic, suppressed: n },
          'message matches no mapping; acknowledged without forwarding',
        );
      return;
    }
    for (const m of mappings) {
      const mapping = this.router.mappings[m]!;
      const value = mapping.wrap ? wrapPayload(topic, payload) : payload;
      this.dispatcher.add(route.lane, entry, m, mapping.kafkaTopicIndex, route.key, value);
    }
  }

  /**
   * Drain order: stop reading MQTT → send open batches → wait (bounded) until Kafka confirmed
   * everything received and its acks went out → disconnect MQTT → flush and disconnect every
   * producer → end the worker threads. Returns true if the window drained in time.
   */
  stop(): Promise<boolean> {
    this.stopped ??= this.drain();
    return this.stopped;
  }

  private async drain(): Promise<boolean> {
    const timeoutMs = this.cfg.shutdown_timeout_ms;
    this.log.info({ inFlight: this.window.size, timeoutMs }, 'forwarder stopping');
    clearInterval(this.statsTimer);
    this.window.close();
    this.dispatcher.flushAll();
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
    await this.source.stop(MQTT_DISCONNECT_MS);
    await this.lanes.close(PRODUCER_FLUSH_MS);
    this.log.info({ ...this.stats }, 'forwarder stopped');
    return drained;
  }
}
