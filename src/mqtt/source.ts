import { readFileSync } from 'node:fs';
import mqtt from 'mqtt';
import type { IClientOptions, IPublishPacket, MqttClient } from 'mqtt';
import type { Config } from '../config/schema';
import { MqttConnectError } from '../errors';
import type { Logger } from '../observability/logger';
import type { Metrics } from '../observability/metrics';
import type { Subscription } from '../routing/router';
import type { AckToSend } from './ack-gate';
import { AckGate } from './ack-gate';

export interface SourceHooks {
  onPublish(packet: IPublishPacket, conn: number): void;
  admit(next: () => void): void;
}

/**
 * The MQTT side: one mqtt.js client on the main thread. Owns connecting, reconnecting with
 * exponential backoff, and (re)subscribing whenever the broker holds no session for us.
 */
export class MqttSource {
  private client: MqttClient | undefined;
  private gate: AckGate | undefined;
  private backoff: number;
  private subscribedOnce = false;
  /** Subscriptions of the current connection the broker has granted (or the session holds). */
  private subscribedNow = false;
  private stopping = false;

  constructor(
    private readonly cfg: Config['mqtt'],
    private readonly subscriptions: readonly Subscription[],
    private readonly hooks: SourceHooks,
    private readonly log: Logger,
    private readonly metrics: Metrics,
  ) {
    this.backoff = cfg.reconnect_min_ms;
  }

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  /** Connected, and every mapping's filter is subscribed on this connection's session. */
  get subscribed(): boolean {
    return this.connected && this.subscribedNow;
  }

  start(): void {
    const client = mqtt.connect(this.clientOptions());
    this.client = client;
    this.gate = new AckGate(client, this.hooks);
    const target = `${this.cfg.host}:${this.cfg.port}`;

    client.on('connect', (connack) => {
      this.metrics.mqttConnected.set(1);
      this.backoff = this.cfg.reconnect_min_ms;
      client.options.reconnectPeriod = this.backoff;
      this.log.info(
        {
          broker: target,
          sessionPresent: connack.sessionPresent,
          protocol: this.cfg.protocol_version,
        },
        'mqtt connected',
      );
      if (!connack.sessionPresent || !this.subscribedOnce) this.subscribe(client);
      else this.subscribedNow = true;
    });
    client.on('reconnect', () => {
      this.metrics.mqttReconnects.inc();
      this.log.info(
        { broker: target, delayMs: client.options.reconnectPeriod },
        'mqtt reconnecting',
      );
    });
    client.on('close', () => {
      this.metrics.mqttConnected.set(0);
      this.subscribedNow = false;
      if (this.stopping) return;
      // mqtt.js reconnects after a fixed period; growing it here turns that into backoff.
      client.options.reconnectPeriod = this.backoff;
      this.backoff = Math.min(this.backoff * 2, this.cfg.reconnect_max_ms);
      this.log.warn(
        { broker: target, retryInMs: client.options.reconnectPeriod },
        'mqtt connection closed',
      );
    });
    client.on('error', (cause) => {
      const err = new MqttConnectError(`mqtt ${target}: ${cause.message}`, { cause });
      this.log.error(
        { code: err.code, broker: target, reasonCode: (cause as { code?: unknown }).code },
        err.message,
      );
    });
    client.on('disconnect', (packet) => {
      this.log.warn(
        { broker: target, reasonCode: packet.reasonCode },
        'mqtt broker sent DISCONNECT',
      );
    });
  }

  private subscribe(client: MqttClient): void {
    // MQTT 5: one SUBSCRIBE per filter, because a subscription identifier is per packet and the
    // router needs to know which filter each delivered copy was sent for.
    const v5 = this.cfg.protocol_version === 5;
    const groups = v5 ? this.subscriptions.map((s) => [s]) : [this.subscriptions];
    let pending = groups.length;
    let refused = false;
    for (const group of groups) {
      const topics: Record<string, { qos: 0 | 1 | 2 }> = {};
      for (const s of group) topics[s.filter] = { qos: s.qos };
      const opts = v5 ? { properties: { subscriptionIdentifier: group[0]!.id } } : {};
      client.subscribe(topics, opts, (err, granted) => {
        if (err) {
          this.log.error({ err: err.message }, 'mqtt subscribe failed');
          return;
        }
        for (const g of granted ?? []) {
          // 128 and above: the broker refused this filter (MQTT 3.1.1: 0x80; MQTT 5: reason codes).
          if (g.qos >= 128) {
            refused = true;
            this.log.error(
              { filter: g.topic, reasonCode: g.qos },
              'mqtt subscription refused by broker',
            );
          } else {
            this.log.info({ filter: g.topic, qos: g.qos }, 'mqtt subscribed');
          }
        }
        if (--pending === 0 && !refused) {
          this.subscribedOnce = true;
          this.subscribedNow = true;
        }
      });
    }
  }

  /** Writes released acks; see AckGate.release. */
  release(released: readonly AckToSend[]): void {
    this.gate?.release(released);
  }

  /** Disconnects cleanly (DISCONNECT packet), bounded by `timeoutMs`, then forcibly. */
  async stop(timeoutMs: number): Promise<void> {
    this.stopping = true;
    const client = this.client;
    if (!client) return;
    await new Promise<void>((resolve) => {
      if (this.gate?.stalled && client.stream) {
        // Not reading, so mqtt.js would never see the socket close after a graceful end().
        // Half-close instead: the acks just released and the DISCONNECT must reach the socket
        // before it is destroyed, or the broker redelivers messages Kafka already has.
        // And keep reading (discarding) until the broker closes: closing a socket with unread
        // data sends RST, and the broker then drops what it had not read yet — our last acks.
        // The discarded PUBLISHes were never acknowledged; the broker redelivers them.
        const stream = client.stream as NodeJS.ReadWriteStream & { destroyed?: boolean };
        this.gate.sendDisconnect();
        const force = (): void => {
          clearTimeout(timer);
          client.end(true, () => resolve());
        };
        const timer = setTimeout(force, timeoutMs);
        stream.once('close', force);
        stream.once('end', force);
        stream.unpipe();
        stream.on('data', () => undefined);
        stream.resume();
        stream.end();
        return;
      }
      const timer = setTimeout(() => client.end(true, () => resolve()), timeoutMs);
      client.end(false, () => {
        clearTimeout(timer);
        resolve();
      });
    });
    this.log.info('mqtt disconnected');
  }

  private clientOptions(): IClientOptions {
    const c = this.cfg;
    const clean = c.client_id === '';
    const opts: IClientOptions = {
      host: c.host,
      port: c.port,
      protocol: c.tls ? 'mqtts' : 'mqtt',
      protocolVersion: c.protocol_version,
      clientId: c.client_id,
      clean,
      keepalive: c.keepalive_s,
      connectTimeout: c.connect_timeout_ms,
      reconnectPeriod: c.reconnect_min_ms,
      // Subscriptions are restored by us, only when the broker lost the session (see 'connect').
      resubscribe: false,
      queueQoSZero: false,
    };
    if (c.protocol_version === 5) {
      opts.properties = {
        receiveMaximum: c.inflight_window,
        sessionExpiryInterval: clean ? 0 : c.session_expiry_s,
      };
    }
    if (c.credentials) {
      opts.username = c.credentials.username;
      opts.password = c.credentials.password;
    }
    if (c.tls) {
      opts.ca = readFileSync(c.tls.ca_cert);
      if (c.tls.client_cert && c.tls.client_key) {
        opts.cert = readFileSync(c.tls.client_cert);
        opts.key = readFileSync(c.tls.client_key);
      }
      opts.rejectUnauthorized = true;
      if (!c.tls.verify_hostname) {
        // Chain verification stays on; only the name check is skipped.
        (opts as Record<string, unknown>)['checkServerIdentity'] = () => undefined;
        this.log.warn(
          'mqtt.tls.verify_hostname is false: the broker certificate is not checked against the host name',
        );
      }
    }
    return opts;
  }
}
