/**
 * Seam: every use of mqtt.js beyond its public API. mqtt.js is pinned to exactly
 * PINNED_MQTT_VERSION, and test/integration/seam-mqtt-client.test.ts checks the installed
 * version and each behaviour below against a real broker, so an upgrade fails a named test
 * instead of corrupting acks.
 *
 * Relied on (see pipeline/6-mqtt-ack/ack-gate.ts for why):
 * - `_sendPacket(packet, cb)` writes every outgoing packet; its callback lets mqtt.js read on.
 *   PUBACK, PUBREC and PUBCOMP are the only packets mqtt.js sends without keeping state.
 * - `handleMessage(packet, cb)` is where a QoS 0 PUBLISH waits before the next is read.
 * - `_trackIncomingQoS2Publish(id)` enforces the advertised receive maximum on QoS 2 ids; the
 *   ids it records serve only that check and the clean-up of the incoming store.
 * - `incomingStore` (a client option) keeps each inbound QoS 2 PUBLISH until its PUBREL; when
 *   its `get()` fails at PUBREL, mqtt.js writes PUBCOMP at once, without 'message' or
 *   `handleMessage`.
 * - `reschedulePing(force)` restarts the keepalive timer.
 * - `stream` is the socket; writes to it are not seen by mqtt.js.
 * - `options.reconnectPeriod` is read again before every reconnect attempt.
 */
import { Store } from 'mqtt';
import type { IPublishPacket, IStore, MqttClient } from 'mqtt';
import { DependencyDriftError, ERROR_CODES } from '../errors';

export const PINNED_MQTT_VERSION = '5.16.0';

type SendPacket = (
  packet: Record<string, unknown>,
  cb?: (err?: Error) => void,
  ...rest: unknown[]
) => void;

interface ClientInternals {
  _sendPacket: SendPacket;
  _trackIncomingQoS2Publish: (messageId: number, done: () => void, pump?: unknown) => boolean;
  reschedulePing: (force?: boolean) => void;
  handleMessage: (packet: IPublishPacket, cb: (err?: Error) => void) => void;
  stream?: NodeJS.ReadWriteStream & { destroyed?: boolean };
}

/** What the ack gate does in place of mqtt.js's own handling. */
export interface AckInterception {
  /** mqtt.js is about to write PUBACK or PUBREC; call `done` to let it read on. */
  onAck(done: () => void): void;
  /** A QoS 0 PUBLISH was handled; call `done` to let mqtt.js read on. */
  onQoS0(done: () => void): void;
  /** mqtt.js is about to write PUBCOMP for `messageId` (connected); the hook writes it. */
  onPubcomp(messageId: number): void;
  /** mqtt.js is about to write DISCONNECT: whatever the hooks hold back must go first. */
  beforeDisconnect(): void;
}

/** The calls the ack gate makes past mqtt.js's bookkeeping. */
export interface RawClient {
  /** Sends a packet through mqtt.js's encoder, bypassing the interception. */
  send(packet: Record<string, unknown>): void;
  /** Keeps mqtt.js's keepalive timer from expiring while it does not read. */
  keepAlive(): void;
  /** Writes bytes to the socket, or returns false when there is none. */
  write(bytes: Buffer): boolean;
}

function internals(client: MqttClient): ClientInternals {
  const c = client as unknown as ClientInternals;
  for (const name of [
    '_sendPacket',
    '_trackIncomingQoS2Publish',
    'handleMessage',
    'reschedulePing',
  ] as const) {
    if (typeof c[name] !== 'function') {
      throw new DependencyDriftError(
        ERROR_CODES.mqttInternals,
        `mqtt.js has no ${name}(); the ack gate needs mqtt ${PINNED_MQTT_VERSION} exactly`,
      );
    }
  }
  return c;
}

/**
 * Takes over mqtt.js's PUBACK/PUBREC writes and its read continuation, and relaxes its QoS 2
 * receive-maximum check (the forwarder's window is the real bound). Throws MQTT_INTERNALS when
 * the installed mqtt.js lacks any of it.
 */
export function interceptAcks(client: MqttClient, hooks: AckInterception): RawClient {
  const c = internals(client);
  const send = c._sendPacket.bind(client);
  c._sendPacket = (packet, cb, ...rest) => {
    if (packet['cmd'] === 'puback' || packet['cmd'] === 'pubrec') {
      hooks.onAck(() => cb?.());
      return;
    }
    // mqtt.js keeps no state for a PUBCOMP. Disconnected, it would queue it for the next
    // connection, where the id means nothing; the broker re-sends PUBREL on a resumed session.
    if (packet['cmd'] === 'pubcomp') {
      if (client.connected) hooks.onPubcomp(packet['messageId'] as number);
      cb?.();
      return;
    }
    if (packet['cmd'] === 'disconnect') hooks.beforeDisconnect();
    send(packet, cb, ...rest);
  };
  c.handleMessage = (packet, cb) => {
    // QoS 2 reaches handleMessage at PUBREL, when it was already admitted at PUBLISH.
    if (packet.qos === 0) hooks.onQoS0(() => cb());
    else cb();
  };
  // The window holds every unreleased QoS 2 message; mqtt.js need not track their ids.
  c._trackIncomingQoS2Publish = () => true;
  return {
    send: (packet) => {
      if (packet['cmd'] === 'disconnect') hooks.beforeDisconnect();
      send(packet);
    },
    keepAlive: () => c.reschedulePing(true),
    write: (bytes) => {
      if (!c.stream) return false;
      c.stream.write(bytes);
      return true;
    },
  };
}

/**
 * The `incomingStore` for a client whose acks the gate owns: it keeps nothing. mqtt.js's own
 * store holds every inbound QoS 2 PUBLISH, payload included, from PUBLISH to PUBREL, and at
 * PUBREL emits 'message', calls `handleMessage` and deletes it again; the forwarder's window
 * already holds the message, and takes it at PUBLISH. With nothing kept, a PUBREL goes straight
 * to PUBCOMP, as it always did for a PUBREL of an earlier connection.
 */
export function statelessIncomingStore(): IStore {
  const notKept = new Error('the forwarder keeps no inbound QoS 2 state in mqtt.js');
  return new (class extends Store {
    override put(_packet: unknown, cb: () => void): this {
      cb();
      return this;
    }
    override get(_packet: unknown, cb: (err?: Error) => void): this {
      cb(notKept);
      return this;
    }
    override del(_packet: unknown, cb: (err?: Error) => void): this {
      cb();
      return this;
    }
  })();
}

/** The client's socket, for a shutdown that must half-close it itself. */
export function clientStream(
  client: MqttClient,
): (NodeJS.ReadWriteStream & { destroyed?: boolean }) | undefined {
  return (client as unknown as ClientInternals).stream;
}

/**
 * Turns Nagle's algorithm off on the connection's socket: mqtt.js opens it without `noDelay`,
 * and a small ack write then waits for the TCP ACK of the previous one, which a broker that has
 * nothing to send delays (delayed ACK). Behind a broker that caps unacknowledged messages that
 * stall is paid on every round: measured 23 ms per 20 messages through HiveMQ CE. Call on every
 * connect: each connection attempt has a new socket.
 */
export function disableNagle(client: MqttClient): void {
  const stream = clientStream(client) as
    (NodeJS.ReadWriteStream & { setNoDelay?: (v: boolean) => unknown }) | undefined;
  stream?.setNoDelay?.(true);
}

/** The delay before mqtt.js's next reconnect attempt; changing it at run time is honoured. */
export function setReconnectPeriod(client: MqttClient, ms: number): void {
  client.options.reconnectPeriod = ms;
}

export function reconnectPeriod(client: MqttClient): number | undefined {
  return client.options.reconnectPeriod;
}
