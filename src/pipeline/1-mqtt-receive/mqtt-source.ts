import { readFileSync } from 'node:fs';
import mqtt from 'mqtt';
import type { IClientOptions, IPublishPacket, MqttClient } from 'mqtt';
import type { Config } from '../../config/schema';
import { ERROR_CODES } from '../../errors';
import type { Logger } from '../../observability/logger';
import type { Metrics } from '../../observability/metrics';
import type { Subscription } from '../2-route/router';
import type { AckToSend } from '../6-mqtt-ack/ack-gate';
import { AckGate } from '../6-mqtt-ack/ack-gate';
import {
  clientStream,
  disableNagle,
  reconnectPeriod,
  setReconnectPeriod,
  statelessIncomingStore,
} from '../../seams/mqtt-client';

/** What the broker's session holds for one filter of ours, as its SUBACK told us. */
interface Held {
  readonly qos: 0 | 1 | 2;
  /** The subscription identifier it was subscribed with; undefined: none. */
  readonly id: number | undefined;
}

/** A SUBSCRIBE (spec) or UNSUBSCRIBE (null) sent on this connection and not answered yet. */
interface Sent {
  readonly spec: Held | null;
}

const sameHeld = (a: Held, b: Held): boolean => a.qos === b.qos && a.id === b.id;

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
  private stopping = false;
  /** Connections made so far: a SUBSCRIBE answer or retry belongs to the connection that sent it. */
  private connections = 0;
  /** The current config generation's subscriptions: what a new session gets. */
  private wanted: readonly Subscription[];
  /**
   * Filters a reload removed that stay subscribed until every message received before that
   * reload is acknowledged (update()'s retire function); the value says which update removed it.
   */
  private readonly retiring = new Map<
    string,
    { readonly sub: Subscription; readonly by: object }
  >();
  /** Per filter, what the broker's session holds as far as this process subscribed it. */
  private readonly held = new Map<string, Held>();
  /** Per filter, the newest SUBSCRIBE/UNSUBSCRIBE of this connection still unanswered. */
  private readonly sent = new Map<string, Sent>();
  private retryAttempt = 0;
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly cfg: Config['mqtt'],
    subscriptions: readonly Subscription[],
    private readonly hooks: SourceHooks,
    private readonly log: Logger,
    private readonly metrics: Metrics,
  ) {
    this.backoff = cfg.reconnect_min_ms;
    this.wanted = subscriptions;
  }

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  /** Connected, and every filter of the current generation is subscribed on this session. */
  get subscribed(): boolean {
    return this.connected && this.wanted.every((s) => this.held.has(s.filter));
  }

  /**
   * A config reload: `subscriptions` is what is subscribed from now on, on this connection and
   * on every later one. Filters that are new, or kept with another QoS or identifier, are
   * subscribed at once. Filters no longer wanted stay subscribed until the returned function is
   * called (once every message received before the reload is acknowledged) and are then
   * unsubscribed, unless a later reload wants them again.
   */
  update(subscriptions: readonly Subscription[]): () => void {
    const removal = {};
    const now = new Set(subscriptions.map((s) => s.filter));
    for (const f of now) this.retiring.delete(f);
    for (const s of this.wanted) {
      if (!now.has(s.filter)) this.retiring.set(s.filter, { sub: s, by: removal });
    }
    this.wanted = subscriptions;
    if (this.client) this.sync(this.client);
    return () => {
      const due = [...this.retiring].filter(([, r]) => r.by === removal).map(([f]) => f);
      for (const f of due) this.retiring.delete(f);
      if (due.length > 0 && this.client) this.sync(this.client);
    };
  }

  start(): void {
    const client = mqtt.connect(mqttClientOptions(this.cfg, this.log));
    this.client = client;
    this.gate = new AckGate(client, this.hooks);
    const target = `${this.cfg.host}:${this.cfg.port}`;

    client.on('connect', (connack) => {
      disableNagle(client);
      this.metrics.mqttConnected.set(1);
      this.connections++;
      this.backoff = this.cfg.reconnect_min_ms;
      setReconnectPeriod(client, this.backoff);
      this.log.info(
        {
          broker: target,
          sessionPresent: connack.sessionPresent,
          protocol: this.cfg.protocol_version,
        },
        'mqtt connected',
      );
      this.sent.clear();
      this.retryAttempt = 0;
      clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
      if (!connack.sessionPresent) {
        // A new session holds nothing of ours, and no message received on an earlier one can be
        // acknowledged any more: nothing is retiring either.
        this.held.clear();
        this.retiring.clear();
      }
      // With a session kept, only what it may lack (a SUBSCRIBE unanswered when the connection
      // dropped, a reload while disconnected) is sent again.
      this.sync(client);
    });
    client.on('reconnect', () => {
      this.metrics.mqttReconnects.inc();
      this.log.info({ broker: target, delayMs: reconnectPeriod(client) }, 'mqtt reconnecting');
    });
    client.on('close', () => {
      this.metrics.mqttConnected.set(0);
      this.sent.clear();
      if (this.stopping) return;
      // mqtt.js reconnects after a fixed period; growing it here turns that into backoff.
      setReconnectPeriod(client, this.backoff);
      this.backoff = Math.min(this.backoff * 2, this.cfg.reconnect_max_ms);
      this.log.warn(
        {
          code: ERROR_CODES.mqttConnectionLost,
          broker: target,
          retryInMs: reconnectPeriod(client),
        },
        'mqtt connection closed',
      );
    });
    let lastCause: Error | undefined;
    client.on('error', (cause) => {
      // mqtt.js emits a TLS failure twice (its TLS stream builder and its stream handler).
      if (cause === lastCause) return;
      lastCause = cause;
      const failure = describeFailure(cause);
      if (failure.permanent && !this.stopping) {
        // A CA that does not match, a refused certificate or refused credentials fail the same
        // way on every attempt: retry only at the longest delay (the broker side may be fixed
        // without restarting us), never in a loop. mqtt.js schedules the retry right after this
        // 'error' (CONNACK: reconnectOnConnackError) or on the following 'close' (TLS), in both
        // cases with options.reconnectPeriod; 'close' keeps it because backoff is at its cap.
        this.backoff = this.cfg.reconnect_max_ms;
        setReconnectPeriod(client, this.backoff);
      }
      const retry = failure.permanent && !this.stopping ? `; retrying in ${this.backoff} ms` : '';
      this.log.error(
        {
          code: ERROR_CODES.mqttConnect,
          broker: target,
          reasonCode: (cause as { code?: unknown }).code,
          ...(failure.kind !== undefined && { failure: failure.kind }),
        },
        `mqtt ${target}: ${failure.text}${retry}`,
      );
    });
    client.on('disconnect', (packet) => {
      this.log.warn(
        { code: ERROR_CODES.mqttConnectionLost, broker: target, reasonCode: packet.reasonCode },
        'mqtt broker sent DISCONNECT',
      );
    });
  }

  /**
   * What the session should hold: the current generation's filters and the retiring ones. MQTT 5
   * with several filters: each carries its subscription identifier, because the router needs to
   * know which filter each delivered copy was sent for. With one filter every copy is for it,
   * and the identifier would only cost a property parse per message (5 % of the main thread in
   * the flame graph).
   */
  private target(): { readonly sub: Subscription; readonly spec: Held }[] {
    const subs = [...this.wanted, ...[...this.retiring.values()].map((r) => r.sub)];
    const withIds = this.cfg.protocol_version === 5 && subs.length > 1;
    return subs.map((sub) => ({ sub, spec: { qos: sub.qos, id: withIds ? sub.id : undefined } }));
  }

  /**
   * Brings the session to target(): SUBSCRIBE what it lacks or holds with another QoS or
   * identifier, UNSUBSCRIBE what it holds and should not. Filters the session already holds are
   * sent first: when a second filter makes identifiers necessary, the first must carry its
   * identifier before the broker sends any copy for the second, or a copy without identifier
   * would go to both filters' mappings while the second also gets its own.
   */
  private sync(client: MqttClient): void {
    if (this.stopping || this.client !== client || !client.connected) return;
    const target = this.target();
    const kept: { readonly sub: Subscription; readonly spec: Held }[] = [];
    const fresh: { readonly sub: Subscription; readonly spec: Held }[] = [];
    for (const t of target) {
      const pending = this.sent.get(t.sub.filter);
      const now = pending === undefined ? this.held.get(t.sub.filter) : pending.spec;
      if (now !== undefined && now !== null && sameHeld(now, t.spec)) continue;
      (this.held.has(t.sub.filter) ? kept : fresh).push(t);
    }
    const targeted = new Set(target.map((t) => t.sub.filter));
    const gone = new Set<string>();
    for (const f of [...this.held.keys(), ...this.sent.keys()]) {
      if (!targeted.has(f) && this.sent.get(f)?.spec !== null) gone.add(f);
    }
    const ordered = [...kept, ...fresh];
    if (ordered.length > 0) {
      // Identifiers are per packet: one SUBSCRIBE per filter then, else one for all.
      const groups = ordered[0]!.spec.id !== undefined ? ordered.map((t) => [t]) : [ordered];
      for (const g of groups) this.sendSubscribe(client, g);
    }
    for (const f of gone) this.sendUnsubscribe(client, f);
  }

  private sendSubscribe(
    client: MqttClient,
    group: readonly { readonly sub: Subscription; readonly spec: Held }[],
  ): void {
    const connection = this.connections;
    const mine = new Map<string, Sent>();
    const topics: Record<string, { qos: 0 | 1 | 2; nl?: boolean; rap?: boolean; rh?: number }> = {};
    for (const { sub, spec } of group) {
      // Sent again for a filter the session holds (new QoS or identifier): retain handling 1,
      // so the broker does not send its retained messages a second time (MQTT 5 only; MQTT
      // 3.1.1 always sends them again).
      topics[sub.filter] =
        this.held.has(sub.filter) && this.cfg.protocol_version === 5
          ? { qos: spec.qos, nl: false, rap: false, rh: 1 }
          : { qos: spec.qos };
      const sent: Sent = { spec };
      mine.set(sub.filter, sent);
      this.sent.set(sub.filter, sent);
    }
    const id = group[0]!.spec.id;
    const opts = id !== undefined ? { properties: { subscriptionIdentifier: id } } : {};
    client.subscribe(topics, opts, (err, granted) => {
      if (this.connections !== connection) return;
      for (const [f, sent] of mine) {
        if (this.sent.get(f) === sent) this.sent.delete(f);
      }
      if (err) {
        // A SUBSCRIBE can fail for a reason that passes: mochi-mqtt 2.7 refuses one whose
        // packet id equals that of a PUBLISH it has in flight to us (the other direction's id
        // space), "Packet identifier in use", while it redelivers a resumed session. Send it
        // again, with a new packet id, for as long as this connection lasts; a new connection
        // subscribes afresh if it has to.
        this.retryLater(client, err.message, 'mqtt subscribe failed');
        return;
      }
      for (const g of granted ?? []) {
        // 128 and above: the broker refused this filter (MQTT 3.1.1: 0x80; MQTT 5: reason codes).
        if (g.qos >= 128) {
          this.log.error(
            { code: ERROR_CODES.mqttSubscribe, filter: g.topic, reasonCode: g.qos },
            'mqtt subscription refused by broker',
          );
        } else {
          const spec = mine.get(g.topic)?.spec;
          if (spec) this.held.set(g.topic, spec);
          this.log.info(
            { filter: g.topic, qos: g.qos, ...(spec?.id !== undefined && { id: spec.id }) },
            'mqtt subscribed',
          );
        }
      }
    });
  }

  private sendUnsubscribe(client: MqttClient, filter: string): void {
    const connection = this.connections;
    const sent: Sent = { spec: null };
    this.sent.set(filter, sent);
    client.unsubscribe(filter, (err, packet) => {
      if (this.connections !== connection) return;
      if (this.sent.get(filter) === sent) this.sent.delete(filter);
      if (err) {
        this.retryLater(client, err.message, 'mqtt unsubscribe failed');
        return;
      }
      this.held.delete(filter);
      // MQTT 5 UNSUBACK reason codes: 0x11 (no such subscription) is as good as done; 0x80 and
      // above is a refusal, which leaves the filter delivering messages no mapping takes.
      const reason = (packet as { granted?: unknown[] } | undefined)?.granted?.[0];
      if (typeof reason === 'number' && reason >= 128) {
        this.log.error(
          { code: ERROR_CODES.mqttSubscribe, filter, reasonCode: reason },
          'mqtt unsubscribe refused by broker; its messages are acknowledged without forwarding',
        );
      } else {
        this.log.info({ filter }, 'mqtt unsubscribed');
      }
    });
  }

  /** One retry of sync() at a time, with backoff, for as long as this connection lasts. */
  private retryLater(client: MqttClient, err: string, what: string): void {
    const retryInMs = Math.min(
      this.cfg.reconnect_min_ms * 2 ** Math.min(this.retryAttempt++, 16),
      this.cfg.reconnect_max_ms,
    );
    this.log.error({ code: ERROR_CODES.mqttSubscribe, err, retryInMs }, what);
    if (this.retryTimer !== undefined) return;
    const connection = this.connections;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (this.connections === connection) this.sync(client);
    }, retryInMs);
    this.retryTimer.unref();
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
      const stream = clientStream(client);
      if (this.gate?.stalled && stream) {
        // Not reading, so mqtt.js would never see the socket close after a graceful end().
        // Half-close instead: the acks just released and the DISCONNECT must reach the socket
        // before it is destroyed, or the broker redelivers messages Kafka already has.
        // And keep reading (discarding) until the broker closes: closing a socket with unread
        // data sends RST, and the broker then drops what it had not read yet — our last acks.
        // The discarded PUBLISHes were never acknowledged; the broker redelivers them.
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
}

/**
 * Node's codes for a broker certificate that does not verify (chain, validity, host name):
 * the error should say so, not only "self-signed certificate in certificate chain".
 */
const TLS_VERIFY_CODES: ReadonlySet<string> = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'CERT_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_CHAIN_TOO_LONG',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'INVALID_CA',
  'INVALID_PURPOSE',
  'PATH_LENGTH_EXCEEDED',
  'HOSTNAME_MISMATCH',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

const NOT_AUTHORISED = 'not authorised';
const CHECK_CREDENTIALS = "check mqtt.credentials and the broker's password file and ACLs";

/**
 * CONNACK codes that refuse who we are (MQTT 3.1.1: 2, 4, 5; MQTT 5: 133–135, 138, 140): the
 * next attempt gets the same answer, so they are permanent failures.
 */
const CONNACK_PERMANENT = new Map<number, string>([
  [4, `${NOT_AUTHORISED} (bad user name or password); ${CHECK_CREDENTIALS}`],
  [5, `${NOT_AUTHORISED}; ${CHECK_CREDENTIALS}`],
  [134, `${NOT_AUTHORISED} (bad user name or password); ${CHECK_CREDENTIALS}`],
  [135, `${NOT_AUTHORISED}; ${CHECK_CREDENTIALS}`],
  [138, `${NOT_AUTHORISED}: this client is banned by the broker`],
  [140, `${NOT_AUTHORISED}: the broker does not support the authentication method`],
  [2, 'client identifier rejected; check mqtt.client_id'],
  [133, 'client identifier rejected; check mqtt.client_id'],
]);

interface Failure {
  /** Retrying at once cannot help: the same attempt fails the same way. */
  readonly permanent: boolean;
  readonly kind?: 'tls_verification' | 'tls_handshake' | 'not_authorised' | 'refused';
  readonly text: string;
}

/** What an mqtt.js 'error' means for the operator. Never includes credentials. */
function describeFailure(cause: Error & { code?: unknown }): Failure {
  const code = cause.code;
  if (typeof code === 'string' && TLS_VERIFY_CODES.has(code)) {
    return {
      permanent: true,
      kind: 'tls_verification',
      text: `TLS certificate verification failed: ${cause.message} (${code}); the broker certificate is not signed by mqtt.tls.ca_cert or not issued for this host`,
    };
  }
  if (typeof code === 'string' && code.startsWith('ERR_SSL_')) {
    // E.g. ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED, ..._ALERT_UNKNOWN_CA: the broker refused
    // our certificate (or its absence). OpenSSL's `reason` reads better than its message, which
    // starts with an error queue dump.
    const reason = (cause as { reason?: unknown }).reason;
    return {
      permanent: true,
      kind: 'tls_handshake',
      text: `TLS handshake failed: ${typeof reason === 'string' ? reason : cause.message} (${code}); check mqtt.tls (the broker may require a client certificate it trusts)`,
    };
  }
  // mqtt.js reports a refused CONNACK as "Connection refused: <reason>" with the numeric code.
  if (typeof code === 'number' && cause.message.startsWith('Connection refused')) {
    const text = CONNACK_PERMANENT.get(code);
    if (text !== undefined) {
      return {
        permanent: true,
        kind: text.startsWith(NOT_AUTHORISED) ? 'not_authorised' : 'refused',
        text: `${text} (CONNACK code ${code}: ${cause.message})`,
      };
    }
    return { permanent: false, kind: 'refused', text: `${cause.message} (CONNACK code ${code})` };
  }
  return { permanent: false, text: cause.message };
}

/**
 * The mqtt.js options of a connection for `c`: the forwarder's own, and a session probe's (so
 * a probe authenticates and negotiates exactly as the forwarder with that client id would).
 */
export function mqttClientOptions(c: Config['mqtt'], log: Logger): IClientOptions {
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
    // Without it mqtt.js gives up for good after a refused CONNACK (wrong password): the
    // forwarder would never recover once the broker accepts it again. The 'error' handler
    // stretches the delay of such retries to reconnect_max_ms.
    reconnectOnConnackError: true,
    queueQoSZero: false,
    incomingStore: statelessIncomingStore(),
    // mqtt.js calls its debug logger several times per packet; even disabled, that costs
    // more per message than our routing. Its lines say nothing our own logs do not.
    log: () => undefined,
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
      log.warn(
        'mqtt.tls.verify_hostname is false: the broker certificate is not checked against the host name',
      );
    }
  }
  return opts;
}
