/**
 * A minimal, real MQTT broker for tests that need to see the bytes a client writes: which
 * packets, in which order, and which of them arrived together in one TCP read.
 *
 * It speaks MQTT 3.1.1 and 5 (mqtt-packet, the codec mqtt.js itself uses) on 127.0.0.1, one
 * client at a time. It answers CONNECT (CONNACK, no session), SUBSCRIBE (SUBACK granting the
 * QoS asked), PINGREQ (PINGRESP) and PUBREC (PUBREL), and records every packet the client sends.
 * It never routes anything by itself: the test decides what is published, with which packet ids,
 * through `publish()`. With MQTT 5 each PUBLISH carries the subscription identifiers of the
 * client's matching subscriptions, as a real broker sends them.
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import mqttPacket from 'mqtt-packet';
import type { IPublishPacket, Packet } from 'mqtt-packet';

export interface ReceivedPacket {
  readonly packet: Packet;
  /** `performance.now()` when the TCP chunk that completed the packet was read. */
  readonly at: number;
  /** Index of that chunk (`data` event) on the broker's side of the connection, from 0. */
  readonly chunk: number;
  /** Connection number, from 1 (a reconnecting client shows up as 2, 3, ...). */
  readonly connection: number;
}

export interface PublishSpec {
  readonly topic: string;
  readonly payload: Buffer | string;
  readonly qos: 0 | 1 | 2;
  /** Packet id; required for QoS 1/2. */
  readonly messageId?: number;
  readonly dup?: boolean;
  readonly retain?: boolean;
}

interface ClientSubscription {
  readonly filter: string;
  readonly id: number | undefined;
}

/** Bytes per socket write when publishing: large enough to be cheap, small enough to pace. */
const WRITE_SLICE = 64 * 1024;

function matches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length || (f[i] !== '+' && f[i] !== t[i])) return false;
  }
  return f.length === t.length;
}

export class RawBroker {
  /** Every packet received from the client, in receive order. */
  readonly received: ReceivedPacket[] = [];
  /** `data` events read so far on the current connection. */
  chunks = 0;
  /** Connections accepted so far. */
  connections = 0;
  /** Connections refused because one was already open. */
  refused = 0;
  /** Protocol level of the current client's CONNECT (4 or 5). */
  protocolVersion: 4 | 5 = 4;
  private socket: net.Socket | undefined;
  private subscriptions: ClientSubscription[] = [];
  private waiters: { check: () => boolean; resolve: () => void }[] = [];
  private readonly listeners: ((r: ReceivedPacket) => void)[] = [];
  private readonly sockets = new Set<net.Socket>();

  private constructor(private readonly server: net.Server) {}

  /** Starts a broker on 127.0.0.1 on a free port. */
  static async start(): Promise<RawBroker> {
    const server = net.createServer();
    const broker = new RawBroker(server);
    server.on('connection', (s) => broker.accept(s));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    return broker;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** The open client connection, if any (for `writableLength`, `bytesWritten`, ...). */
  get clientSocket(): net.Socket | undefined {
    return this.socket;
  }

  /** Calls `listener` synchronously for every packet received from now on, as it is parsed. */
  onPacket(listener: (r: ReceivedPacket) => void): void {
    this.listeners.push(listener);
  }

  /** Received packets of one command, in receive order. */
  packets(cmd: Packet['cmd']): ReceivedPacket[] {
    return this.received.filter((r) => r.packet.cmd === cmd);
  }

  /**
   * Writes PUBLISH packets to the client, in order, in slices of about 64 KB. Returns false if
   * the socket's write buffer is above its high-water mark afterwards (the client is not
   * reading fast enough); everything is buffered and sent eventually either way.
   */
  publish(specs: readonly PublishSpec[]): boolean {
    const socket = this.socket;
    if (!socket || socket.destroyed) throw new Error('raw broker: no client connected');
    const opts = { protocolVersion: this.protocolVersion };
    let slice: Buffer[] = [];
    let sliceBytes = 0;
    let ok = true;
    const flush = (): void => {
      if (slice.length === 0) return;
      ok = socket.write(Buffer.concat(slice, sliceBytes));
      slice = [];
      sliceBytes = 0;
    };
    for (const s of specs) {
      if (s.qos > 0 && s.messageId === undefined) {
        throw new Error(`raw broker: QoS ${s.qos} PUBLISH to ${s.topic} needs a messageId`);
      }
      const packet: IPublishPacket = {
        cmd: 'publish',
        topic: s.topic,
        payload: s.payload,
        qos: s.qos,
        dup: s.dup ?? false,
        retain: s.retain ?? false,
        ...(s.qos > 0 ? { messageId: s.messageId } : {}),
      };
      if (this.protocolVersion === 5) {
        const ids = this.subscriptions
          .filter((sub) => sub.id !== undefined && matches(sub.filter, s.topic))
          .map((sub) => sub.id!);
        if (ids.length > 0) {
          packet.properties = { subscriptionIdentifier: ids.length === 1 ? ids[0]! : ids };
        }
      }
      const bytes = mqttPacket.generate(packet, opts);
      slice.push(bytes);
      sliceBytes += bytes.length;
      if (sliceBytes >= WRITE_SLICE) flush();
    }
    flush();
    return ok;
  }

  /**
   * Resolves once `predicate()` holds; it is checked now and after every received packet.
   * Rejects after `timeoutMs`.
   */
  waitFor(predicate: () => boolean, timeoutMs: number, what = 'condition'): Promise<void> {
    if (predicate()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter = {
        check: predicate,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(
          new Error(
            `raw broker: no ${what} within ${timeoutMs} ms (received ${this.received.length} packets: ${this.summary()})`,
          ),
        );
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  /** Packet counts by command, for failure messages. */
  summary(): string {
    const counts = new Map<string, number>();
    for (const r of this.received) counts.set(r.packet.cmd, (counts.get(r.packet.cmd) ?? 0) + 1);
    return [...counts].map(([cmd, n]) => `${cmd}=${n}`).join(' ') || 'none';
  }

  /** Closes the client connection and the listener. */
  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    if (this.socket && !this.socket.destroyed) {
      // One client at a time: a second one would make the packet log ambiguous.
      this.refused++;
      socket.destroy();
      return;
    }
    this.socket = socket;
    this.connections++;
    this.chunks = 0;
    this.subscriptions = [];
    const connection = this.connections;
    // The parser learns the protocol level from CONNECT and decodes later packets with it.
    const parser = mqttPacket.parser();
    let chunk = -1;
    let at = 0;
    socket.setNoDelay(true);
    socket.on('error', () => socket.destroy());
    parser.on('error', () => socket.destroy());
    parser.on('packet', (packet: Packet) => {
      const r: ReceivedPacket = { packet, at, chunk, connection };
      this.received.push(r);
      this.answer(socket, packet);
      for (const l of this.listeners) l(r);
    });
    socket.on('data', (data: Buffer) => {
      chunk = this.chunks++;
      at = performance.now();
      parser.parse(data);
      this.notify();
    });
  }

  private answer(socket: net.Socket, packet: Packet): void {
    const opts = { protocolVersion: this.protocolVersion };
    const send = (p: Packet): void => {
      if (!socket.destroyed) socket.write(mqttPacket.generate(p, opts));
    };
    switch (packet.cmd) {
      case 'connect':
        this.protocolVersion = packet.protocolVersion === 5 ? 5 : 4;
        opts.protocolVersion = this.protocolVersion;
        send(
          this.protocolVersion === 5
            ? { cmd: 'connack', sessionPresent: false, reasonCode: 0 }
            : { cmd: 'connack', sessionPresent: false, returnCode: 0 },
        );
        break;
      case 'subscribe': {
        const id = packet.properties?.subscriptionIdentifier;
        for (const s of packet.subscriptions) {
          this.subscriptions.push({ filter: s.topic, id: typeof id === 'number' ? id : undefined });
        }
        send({
          cmd: 'suback',
          messageId: packet.messageId!,
          granted: packet.subscriptions.map((s) => s.qos),
        });
        break;
      }
      case 'pingreq':
        send({ cmd: 'pingresp' });
        break;
      case 'pubrec':
        send({ cmd: 'pubrel', messageId: packet.messageId! });
        break;
      case 'disconnect':
        socket.end();
        break;
      default:
        break;
    }
  }

  private notify(): void {
    this.waiters = this.waiters.filter((w) => {
      if (!w.check()) return true;
      w.resolve();
      return false;
    });
  }
}
