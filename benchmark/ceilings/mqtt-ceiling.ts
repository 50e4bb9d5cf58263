/**
 * MQTT-only ceiling: the benchmark's own publisher (either client) → mosquitto → a subscriber
 * that acknowledges at once. Two subscribers: a bare mqtt.js client (mqtt.js's default, one
 * PUBACK write per message) and the raw subscriber (raw-subscriber.ts, one ack write per socket
 * read). The raw one is the honest ceiling: with the lean publisher, mqtt.js's per-message cost
 * is the limit of the first, and the forwarder, which batches its acks, can beat it.
 * `forwarder / ceiling` is how much of the MQTT path the forwarder keeps.
 *
 * Also the publisher's own ceiling: the same publisher with nobody subscribed, which shows
 * whether the load generator could be the bottleneck of a run.
 */
import mqtt from 'mqtt';
import type { MqttClient } from 'mqtt';
import { nowMs } from '../load/payload';
import { Publisher } from '../load/publisher';
import { runBenchmark } from '../run';
import type {
  MqttCeiling,
  PublisherCeiling,
  PublisherConfig,
  RunOptions,
  Sink,
  SinkInfo,
  SubscriberClient,
} from '../types';
import { RawSubscriberSink } from './raw-subscriber';

export class MqttSubscriberSink implements Sink {
  readonly name = 'bare mqtt.js subscriber';
  private client: MqttClient | undefined;

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly protocolVersion: 4 | 5,
    private readonly filter: string,
    private readonly qos: 0 | 1 | 2,
  ) {}

  start(onPayload: (value: Buffer, arrivedAt: number) => void): Promise<void> {
    return new Promise((resolve, reject) => {
      const client = mqtt.connect({
        host: this.host,
        port: this.port,
        protocolVersion: this.protocolVersion,
        clientId: `mkf-ceiling-sub-${process.pid}-${Date.now().toString(36)}`,
        clean: true,
        reconnectPeriod: 0,
        connectTimeout: 10_000,
        // Like the forwarder's window: mqtt.js refuses inbound QoS 2 beyond its receive-maximum.
        ...(this.protocolVersion === 5 ? { properties: { receiveMaximum: 65535 } } : {}),
      });
      this.client = client;
      client.on('message', (_topic, payload) => onPayload(payload, nowMs()));
      client.once('error', reject);
      client.once('connect', () => {
        client.subscribe(this.filter, { qos: this.qos }, (err) => (err ? reject(err) : resolve()));
      });
    });
  }

  async flush(): Promise<void> {}

  async stop(): Promise<SinkInfo> {
    await new Promise<void>((resolve) => {
      if (!this.client) return resolve();
      const t = setTimeout(resolve, 2_000);
      this.client.end(true, {}, () => {
        clearTimeout(t);
        resolve();
      });
    });
    return { arrival: "receipt by the subscriber (mqtt.js 'message' event)" };
  }
}

/** One MQTT-only ceiling run: the benchmark harness with a subscriber instead of Kafka. */
export async function mqttCeiling(
  opts: RunOptions,
  subscriber: SubscriberClient,
): Promise<MqttCeiling> {
  const Subscriber = subscriber === 'raw' ? RawSubscriberSink : MqttSubscriberSink;
  const sink = new Subscriber(
    opts.mqttHost,
    opts.mqttPort,
    opts.protocolVersion,
    `${opts.topicPrefix}/#`,
    opts.qos,
  );
  return { ...(await runBenchmark({ ...opts, wrapped: false }, sink)), subscriber };
}

/** The publisher alone, nobody subscribed: mosquitto acknowledges and discards. */
export async function publisherCeiling(cfg: PublisherConfig): Promise<PublisherCeiling> {
  const r = await new Publisher(cfg).done;
  return {
    client: cfg.client ?? 'raw',
    qos: cfg.qos,
    messages: cfg.messages,
    acked: r.acked,
    msgS: (r.acked * 1000) / Math.max(1, r.endedAt - r.startedAt),
    busy: r.busy,
    cpuPct: r.cpuPct,
    timedOut: r.timedOut,
    ...(r.error === undefined ? {} : { error: r.error }),
  };
}
