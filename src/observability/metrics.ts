import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { FastHistogram } from './fast-histogram';

/** Resolution of the event-loop delay metrics (mkf_nodejs_eventloop_lag_*). */
const EVENT_LOOP_SAMPLE_MS = 100;

export interface LiveGauges {
  /** MQTT PUBLISH packets received; counted by the forwarder, read at scrape time. */
  received(): number;
  inflightMessages(): number;
  inflightBytes(): number;
  producersReady(): number;
}

/**
 * Prometheus metrics. Labelled by mapping name only — never by MQTT topic, whose cardinality is
 * unbounded on a device fleet (the reference service labels by topic).
 */
export class Metrics {
  readonly registry = new Registry();
  readonly received: Counter;
  readonly unmatched: Counter;
  readonly forwarded: Counter<'mapping'>;
  readonly failed: Counter<'mapping'>;
  readonly skipped: Counter<'mapping'>;
  readonly deadLettered: Counter<'mapping'>;
  readonly inflightMessages: Gauge;
  readonly inflightBytes: Gauge;
  readonly windowLimit: Gauge;
  readonly batchSize: Histogram;
  readonly latency: FastHistogram;
  readonly mqttConnected: Gauge;
  readonly mqttReconnects: Counter;
  readonly producersConnected: Gauge;
  readonly workers: Gauge;
  readonly configGeneration: Gauge;
  readonly configReloads: Counter<'result'>;

  /** `live` is read at scrape time for the gauges that mirror state owned elsewhere. */
  constructor(live: LiveGauges) {
    const registers = [this.registry];
    collectDefaultMetrics({
      register: this.registry,
      prefix: 'mkf_',
      // prom-client samples event-loop delay every 10 ms by default: 100 wake-ups a second,
      // most of an idle forwarder's CPU (measured). 100 ms still shows a loop that is stuck.
      eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS,
    });
    this.received = new Counter({
      name: 'mkf_mqtt_messages_received_total',
      help: 'MQTT PUBLISH packets received (every QoS; broker redeliveries count again).',
      registers,
      // Read at scrape time: an inc() per message is measurable on the hot path.
      collect() {
        this.reset();
        this.inc(live.received());
      },
    });
    this.unmatched = new Counter({
      name: 'mkf_messages_unmatched_total',
      help: 'Messages that matched no mapping; acknowledged without forwarding.',
      registers,
    });
    this.forwarded = new Counter({
      name: 'mkf_messages_forwarded_total',
      help: 'Records Kafka confirmed, by mapping.',
      labelNames: ['mapping'],
      registers,
    });
    this.failed = new Counter({
      name: 'mkf_messages_failed_total',
      help: 'Refusals by Kafka that retrying cannot fix, by mapping (each refusal counts).',
      labelNames: ['mapping'],
      registers,
    });
    this.skipped = new Counter({
      name: 'mkf_messages_skipped_total',
      help: 'Messages acknowledged without reaching Kafka because of on_error: skip, by mapping.',
      labelNames: ['mapping'],
      registers,
    });
    this.deadLettered = new Counter({
      name: 'mkf_messages_dead_lettered_total',
      help: 'Messages written to the dead-letter topic (on_error: dead_letter), by mapping.',
      labelNames: ['mapping'],
      registers,
    });
    this.inflightMessages = new Gauge({
      name: 'mkf_inflight_messages',
      help: 'Messages received and not yet acknowledged (the in-flight window in use).',
      registers,
      collect() {
        this.set(live.inflightMessages());
      },
    });
    this.inflightBytes = new Gauge({
      name: 'mkf_inflight_bytes',
      help: 'Payload bytes received and not yet acknowledged.',
      registers,
      collect() {
        this.set(live.inflightBytes());
      },
    });
    this.windowLimit = new Gauge({
      name: 'mkf_inflight_window_limit',
      help: 'Configured in-flight window (mqtt.inflight_window); reading stops at this size.',
      registers,
    });
    this.batchSize = new Histogram({
      name: 'mkf_batch_records',
      help: 'Records per batch handed to a producer.',
      buckets: [1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000],
      registers,
    });
    this.latency = new FastHistogram(
      'mkf_delivery_latency_seconds',
      'From MQTT receipt to Kafka confirmation, by mapping.',
      'mapping',
      [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      this.registry,
    );
    this.mqttConnected = new Gauge({
      name: 'mkf_mqtt_connected',
      help: '1 while the MQTT connection is up.',
      registers,
    });
    this.mqttReconnects = new Counter({
      name: 'mkf_mqtt_reconnects_total',
      help: 'MQTT reconnect attempts.',
      registers,
    });
    this.producersConnected = new Gauge({
      name: 'mkf_kafka_producers_connected',
      help: 'Kafka producers connected with a reachable broker (one per worker; 1 in inline mode).',
      registers,
      collect() {
        this.set(live.producersReady());
      },
    });
    this.workers = new Gauge({
      name: 'mkf_workers',
      help: 'Producer worker threads (0: inline mode).',
      registers,
    });
    this.configGeneration = new Gauge({
      name: 'mkf_config_generation',
      help: 'Config generation running: 1 at start, +1 per config reload applied (SIGHUP).',
      registers,
    });
    this.configGeneration.set(1);
    this.configReloads = new Counter({
      name: 'mkf_config_reloads_total',
      help: 'Config reloads (SIGHUP), by result: applied, or refused (the new config is invalid; the running one stays).',
      labelNames: ['result'],
      registers,
    });
    // Both series from the start at 0, so the first refusal shows in increase().
    for (const result of ['applied', 'refused']) this.configReloads.labels(result).inc(0);
  }
}
