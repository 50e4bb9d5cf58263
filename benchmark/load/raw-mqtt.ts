/**
 * A minimal MQTT 3.1.1 / 5 publishing client over `node:net` for the benchmark's load generator
 * (`RawMqttPublisher`), and the codec of the MQTT-only ceiling's raw subscriber
 * (ceilings/raw-subscriber.ts).
 *
 * Only the packets sent or received once per message are encoded and decoded by hand: they are
 * what the load generator spends its CPU on, and every core it uses is taken from the system it
 * measures on the same machine (benchmark/README.md, "Why the publisher has a client of its own"):
 *
 * - PUBLISH: topic names are encoded once (`encodeTopic`), packets are written into a slab and
 *   handed to the socket in one write per pump turn; incoming ones are decoded as offsets into
 *   the socket's chunk (`decodePublish`), without a copy;
 * - PUBACK, PUBREC, PUBREL, PUBCOMP: four bytes each, written into the same slab, and parsed
 *   straight from the socket's chunks;
 * - `PacketReader` splits those chunks into packets and allocates nothing per packet.
 *
 * Everything else (CONNECT, CONNACK, SUBSCRIBE, SUBACK, PINGREQ, DISCONNECT, their MQTT 5
 * properties, and the reason string of a failed ack) happens once per connection or once per
 * failure and goes through mqtt-packet, the codec of mqtt.js.
 *
 * Anything unexpected (a refused CONNACK, a failure reason code, an ack for a packet id not in
 * flight, a DISCONNECT from the broker, a closed socket) ends the connection with an error
 * naming it. There is no reconnecting and no resending: a benchmark run is not retried behind
 * the caller's back.
 */
import net from 'node:net';
import mqttPacket from 'mqtt-packet';
import type { IConnackPacket, Packet } from 'mqtt-packet';
import type { ProtocolVersion, QoS } from '../types';

/** Packet types (MQTT 3.1.1 §2.2.1, 5.0 §2.1.2), as `PacketReader` hands them over. */
export const CONNACK = 2;
export const PUBLISH = 3;
export const PUBACK = 4;
export const PUBREC = 5;
export const PUBREL = 6;
export const PUBCOMP = 7;
export const SUBACK = 9;
export const PINGRESP = 13;
export const DISCONNECT = 14;

/** Largest packet the reader accepts: acks are a few bytes, a CONNACK with properties a few hundred. */
const MAX_INCOMING_BYTES = 1 << 20;
/** Bytes per output slab; one socket write carries at most this much. */
export const SLAB_BYTES = 256 * 1024;
const MAX_PACKET_ID = 65535;
/**
 * Longest wait for more acknowledgements before answering them (PUBREL, refill). mosquitto
 * acknowledges each read of ours at once, so answering every read at once settles into a
 * ping-pong of a few packets per read and per write, and the syscalls and callbacks of that
 * cost more than the packets (about 9 µs per QoS 1 message, 20 µs per QoS 2 message, measured
 * here). Waiting up to 1 ms gathers hundreds; a window half empty does not wait.
 */
const ACK_TURN_MS = 1;
/** Windows below this answer every read at once, as mqtt.js does. */
const PACED_WINDOW = 64;

/** MQTT 5 reason codes (§2.4), for error messages. */
const REASONS: Readonly<Record<number, string>> = {
  0x00: 'success',
  0x04: 'disconnect with will message',
  0x10: 'no matching subscribers',
  0x80: 'unspecified error',
  0x81: 'malformed packet',
  0x82: 'protocol error',
  0x83: 'implementation specific error',
  0x84: 'unsupported protocol version',
  0x85: 'client identifier not valid',
  0x86: 'bad user name or password',
  0x87: 'not authorized',
  0x88: 'server unavailable',
  0x89: 'server busy',
  0x8a: 'banned',
  0x8b: 'server shutting down',
  0x8c: 'bad authentication method',
  0x8d: 'keep alive timeout',
  0x8e: 'session taken over',
  0x90: 'topic name invalid',
  0x91: 'packet identifier in use',
  0x92: 'packet identifier not found',
  0x93: 'receive maximum exceeded',
  0x94: 'topic alias invalid',
  0x95: 'packet too large',
  0x96: 'message rate too high',
  0x97: 'quota exceeded',
  0x98: 'administrative action',
  0x99: 'payload format invalid',
  0x9a: 'retain not supported',
  0x9b: 'QoS not supported',
  0x9c: 'use another server',
  0x9d: 'server moved',
  0x9f: 'connection rate exceeded',
  0xa0: 'maximum connect time',
};

/** MQTT 3.1.1 CONNACK return codes (§3.2.2.3). */
const CONNACK_V4: Readonly<Record<number, string>> = {
  0: 'accepted',
  1: 'unacceptable protocol version',
  2: 'identifier rejected',
  3: 'server unavailable',
  4: 'bad user name or password',
  5: 'not authorized',
};

function hex(code: number): string {
  return `0x${code.toString(16).padStart(2, '0')}`;
}

export function reasonName(code: number, version: ProtocolVersion): string {
  // A 3.1.1-only broker answers an MQTT 5 CONNECT with a 3.1.1 return code.
  const name = version === 5 ? (REASONS[code] ?? CONNACK_V4[code]) : CONNACK_V4[code];
  return `${hex(code)} ${name ?? 'unknown'}`;
}

// ---------------------------------------------------------------------------------------------
// Encoding of the per-message packets

export function varintSize(n: number): number {
  return n < 128 ? 1 : n < 16_384 ? 2 : n < 2_097_152 ? 3 : 4;
}

/** Variable byte integer (§1.5.5 / §2.2.3); returns the offset after it. */
export function writeVarint(b: Buffer, offset: number, n: number): number {
  if (n < 0 || n > 268_435_455) throw new RangeError(`remaining length ${n} out of range`);
  let o = offset;
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    b[o++] = byte;
  } while (n > 0);
  return o;
}

/**
 * A topic name as it appears in PUBLISH (length-prefixed UTF-8), encoded once per topic.
 * Wildcards are refused here rather than by the broker closing the connection mid-run.
 */
export function encodeTopic(name: string): Buffer {
  if (name.length === 0 || name.includes('+') || name.includes('#') || name.includes('\0')) {
    throw new RangeError(`invalid topic name for PUBLISH: ${JSON.stringify(name)}`);
  }
  const bytes = Buffer.from(name, 'utf8');
  if (bytes.length > 65535) throw new RangeError('MQTT string longer than 65535 bytes');
  const b = Buffer.allocUnsafe(2 + bytes.length);
  b.writeUInt16BE(bytes.length, 0);
  bytes.copy(b, 2);
  return b;
}

/** Bytes of a PUBLISH packet with this topic (from `encodeTopic`) and payload length. */
export function publishSize(
  topic: Buffer,
  qos: QoS,
  version: ProtocolVersion,
  payloadLength: number,
): number {
  const remaining = topic.length + (qos > 0 ? 2 : 0) + (version === 5 ? 1 : 0) + payloadLength;
  return 1 + varintSize(remaining) + remaining;
}

/** Writes a PUBLISH (no DUP, no RETAIN, no properties) at `offset`; returns the offset after it. */
export function writePublish(
  b: Buffer,
  offset: number,
  topic: Buffer,
  qos: QoS,
  version: ProtocolVersion,
  packetId: number,
  payload: Buffer,
): number {
  const remaining = topic.length + (qos > 0 ? 2 : 0) + (version === 5 ? 1 : 0) + payload.length;
  let o = offset;
  b[o++] = (PUBLISH << 4) | (qos << 1);
  o = writeVarint(b, o, remaining);
  o += topic.copy(b, o);
  if (qos > 0) {
    b[o++] = packetId >> 8;
    b[o++] = packetId & 0xff;
  }
  if (version === 5) b[o++] = 0x00;
  o += payload.copy(b, o);
  return o;
}

/**
 * PUBREL: the same four bytes for both versions, since MQTT 5 lets the reason code be left out
 * when it is 0x00 and there are no properties (§3.6.2.1).
 */
export function writePubrel(b: Buffer, offset: number, packetId: number): number {
  b[offset] = (PUBREL << 4) | 0x02;
  b[offset + 1] = 0x02;
  b[offset + 2] = packetId >> 8;
  b[offset + 3] = packetId & 0xff;
  return offset + 4;
}

/** The four bytes of PUBACK (4), PUBREC (5) or PUBCOMP (7): reason code left out, as for PUBREL. */
function writeAck(b: Buffer, offset: number, type: number, packetId: number): number {
  b[offset] = type << 4;
  b[offset + 1] = 0x02;
  b[offset + 2] = packetId >> 8;
  b[offset + 3] = packetId & 0xff;
  return offset + 4;
}

/** Bytes of each acknowledgement a subscriber writes. */
export const ACK_BYTES = 4;

export function writePuback(b: Buffer, offset: number, packetId: number): number {
  return writeAck(b, offset, PUBACK, packetId);
}

export function writePubrec(b: Buffer, offset: number, packetId: number): number {
  return writeAck(b, offset, PUBREC, packetId);
}

export function writePubcomp(b: Buffer, offset: number, packetId: number): number {
  return writeAck(b, offset, PUBCOMP, packetId);
}

// ---------------------------------------------------------------------------------------------
// Decoding of the per-message packets

/**
 * Called per complete packet with its first byte and its body as `buf[start, end)`; the whole
 * packet, fixed header included, is `buf[packetStart, end)`.
 */
export type PacketHandler = (
  header: number,
  buf: Buffer,
  start: number,
  end: number,
  packetStart: number,
) => void;

/**
 * Splits a byte stream into MQTT packets. A packet split across chunks (header, remaining
 * length or body) is kept until the rest arrives; only that tail is copied. Throws on a
 * malformed remaining length or a packet larger than `maxBytes`.
 */
export class PacketReader {
  private pending: Buffer | undefined;

  constructor(
    private readonly onPacket: PacketHandler,
    private readonly maxBytes = MAX_INCOMING_BYTES,
  ) {}

  /** Bytes held back waiting for the rest of a packet. */
  get buffered(): number {
    return this.pending?.length ?? 0;
  }

  push(chunk: Buffer): void {
    const buf = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = undefined;
    const len = buf.length;
    let pos = 0;
    // Every complete packet advances pos by at least 2, so this ends within len / 2 turns.
    while (len - pos >= 2) {
      let remaining = 0;
      let multiplier = 1;
      let i = pos + 1;
      let complete = false;
      for (let k = 0; k < 4 && i < len; k++) {
        const byte = buf[i++]!;
        remaining += (byte & 0x7f) * multiplier;
        if ((byte & 0x80) === 0) {
          complete = true;
          break;
        }
        if (k === 3) throw new Error('malformed remaining length (more than 4 bytes)');
        multiplier *= 128;
      }
      if (!complete) break;
      if (remaining > this.maxBytes) {
        throw new Error(`packet of ${remaining} bytes exceeds the limit of ${this.maxBytes}`);
      }
      const end = i + remaining;
      if (end > len) break;
      this.onPacket(buf[pos]!, buf, i, end, pos);
      pos = end;
    }
    // A copy, so that a 64 KB read chunk is not kept alive for a few bytes of it.
    if (pos < len) this.pending = Buffer.from(buf.subarray(pos));
  }
}

function readVarint(b: Buffer, pos: number, end: number): { value: number; next: number } {
  let value = 0;
  let multiplier = 1;
  for (let k = 0; k < 4; k++) {
    if (pos >= end) break;
    const byte = b[pos++]!;
    value += (byte & 0x7f) * multiplier;
    if ((byte & 0x80) === 0) return { value, next: pos };
    multiplier *= 128;
  }
  throw new Error('malformed variable byte integer');
}

/**
 * One incoming PUBLISH, as offsets into the buffer it was read from: `decodePublish` fills a
 * view the caller reuses, so a subscriber allocates nothing per message unless it asks for the
 * topic string or keeps the payload.
 */
export interface PublishView {
  buf: Buffer;
  qos: QoS;
  dup: boolean;
  retain: boolean;
  /** 0 at QoS 0. */
  packetId: number;
  topicStart: number;
  topicEnd: number;
  payloadStart: number;
  payloadEnd: number;
}

export function publishView(): PublishView {
  return {
    buf: Buffer.alloc(0),
    qos: 0,
    dup: false,
    retain: false,
    packetId: 0,
    topicStart: 0,
    topicEnd: 0,
    payloadStart: 0,
    payloadEnd: 0,
  };
}

/**
 * Decodes the PUBLISH whose first byte is `header` and body `b[start, end)` (as PacketReader
 * hands it over) into `view`. MQTT 5 properties are skipped: this client advertises no topic
 * alias maximum, so a broker may not send an alias in place of the topic.
 */
export function decodePublish(
  header: number,
  b: Buffer,
  start: number,
  end: number,
  version: ProtocolVersion,
  view: PublishView,
): PublishView {
  const qos = (header >> 1) & 0x03;
  if (qos === 3) throw new Error('PUBLISH with QoS 3');
  if (end - start < 2) throw new Error('PUBLISH shorter than its topic length');
  const topicLength = (b[start]! << 8) | b[start + 1]!;
  let p = start + 2 + topicLength;
  view.topicStart = start + 2;
  view.topicEnd = p;
  view.packetId = 0;
  if (qos > 0) {
    if (p + 2 > end) throw new Error('PUBLISH ends before its packet id');
    view.packetId = (b[p]! << 8) | b[p + 1]!;
    if (view.packetId === 0) throw new Error('PUBLISH with packet id 0');
    p += 2;
  }
  if (version === 5) {
    // The common case, no properties, without a varint call.
    if (p < end && b[p] === 0) p++;
    else {
      const { value, next } = readVarint(b, p, end);
      p = next + value;
    }
  }
  if (p > end) throw new Error('PUBLISH header runs beyond the packet');
  view.buf = b;
  view.qos = qos as QoS;
  view.dup = (header & 0x08) !== 0;
  view.retain = (header & 0x01) !== 0;
  view.payloadStart = p;
  view.payloadEnd = end;
  return view;
}

// ---------------------------------------------------------------------------------------------
// The packets of a connection's start and end, through mqtt-packet

export interface ConnectOptions {
  readonly protocolVersion: ProtocolVersion;
  readonly clientId: string;
  /** Seconds; 0 disables keepalive. */
  readonly keepaliveS: number;
  readonly cleanStart: boolean;
  /**
   * MQTT 5 only: QoS 1/2 publishes the broker may have in flight to us; absent means the
   * protocol's default of 65535.
   */
  readonly receiveMaximum?: number;
}

export function encodeConnect(o: ConnectOptions): Buffer {
  const rm = o.receiveMaximum;
  if (rm !== undefined && (!Number.isInteger(rm) || rm < 1 || rm > MAX_PACKET_ID)) {
    throw new RangeError(`receive maximum ${rm} out of range 1..${MAX_PACKET_ID}`);
  }
  return mqttPacket.generate(
    {
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: o.protocolVersion,
      clientId: o.clientId,
      clean: o.cleanStart,
      keepalive: o.keepaliveS,
      ...(o.protocolVersion === 5 && rm !== undefined
        ? { properties: { receiveMaximum: rm } }
        : {}),
    },
    { protocolVersion: o.protocolVersion },
  );
}

/** SUBSCRIBE to one filter; the MQTT 5 subscription options other than QoS stay 0. */
export function encodeSubscribe(
  packetId: number,
  filter: string,
  qos: QoS,
  version: ProtocolVersion,
): Buffer {
  if (packetId < 1 || packetId > MAX_PACKET_ID) throw new RangeError(`packet id ${packetId}`);
  if (filter.length === 0) throw new RangeError('empty topic filter');
  return mqttPacket.generate(
    { cmd: 'subscribe', messageId: packetId, subscriptions: [{ topic: filter, qos }] },
    { protocolVersion: version },
  );
}

export const PINGREQ_PACKET: Readonly<Buffer> = mqttPacket.generate({ cmd: 'pingreq' });
/**
 * Normal disconnection, for both versions in its 3.1.1 form (two bytes): MQTT 5 lets a zero
 * reason code without properties be left out (§3.14.2.1), which mqtt-packet's MQTT 5 encoding
 * does not do.
 */
export const DISCONNECT_PACKET: Readonly<Buffer> = mqttPacket.generate(
  { cmd: 'disconnect' },
  { protocolVersion: 4 },
);

/** Every packet in `bytes`, decoded by mqtt-packet; throws its error if any part is malformed. */
export function decodeAll(bytes: Buffer, protocolVersion: ProtocolVersion): Packet[] {
  const parser = mqttPacket.parser({ protocolVersion });
  const out: Packet[] = [];
  let failure: Error | undefined;
  parser.on('packet', (p) => out.push(p));
  parser.on('error', (e: Error) => (failure ??= e));
  parser.parse(bytes);
  if (failure) throw failure;
  return out;
}

/** ` (reason string)` when the broker sent one, for error messages. */
function because(reasonString: string | undefined): string {
  return reasonString ? ` (${reasonString})` : '';
}

/** One whole packet (fixed header included), as `PacketReader` delimits it. */
function decodeOne(packet: Buffer, version: ProtocolVersion): Packet {
  const [p] = decodeAll(packet, version);
  if (p === undefined) throw new Error('truncated packet');
  return p;
}

export interface ConnAck {
  readonly sessionPresent: boolean;
  /** 3.1.1 return code or 5 reason code; 0 = accepted. */
  readonly code: number;
  readonly properties: NonNullable<IConnackPacket['properties']>;
}

export function decodeConnack(packet: Buffer, version: ProtocolVersion): ConnAck {
  const p = decodeOne(packet, version);
  if (p.cmd !== 'connack') throw new Error(`expected CONNACK, got ${p.cmd}`);
  return {
    sessionPresent: p.sessionPresent,
    code: p.reasonCode ?? p.returnCode ?? 0,
    properties: p.properties ?? {},
  };
}

/** Why this CONNACK ends the connection of a client that wants `qos`; undefined if it does not. */
export function connackRefusal(
  ack: ConnAck,
  version: ProtocolVersion,
  qos: QoS,
): string | undefined {
  const p = ack.properties;
  if (ack.code !== 0) {
    return `CONNACK refused: ${reasonName(ack.code, version)}${because(p.reasonString)}`;
  }
  if (p.maximumQoS !== undefined && qos > p.maximumQoS) {
    return `the broker allows at most QoS ${p.maximumQoS}, asked for ${qos}`;
  }
  return undefined;
}

export interface SubAck {
  readonly packetId: number;
  /** One per filter: the granted QoS (0..2) or a failure code (0x80 and up). */
  readonly codes: readonly number[];
  readonly reasonString?: string;
}

export function decodeSuback(packet: Buffer, version: ProtocolVersion): SubAck {
  const p = decodeOne(packet, version);
  if (p.cmd !== 'suback') throw new Error(`expected SUBACK, got ${p.cmd}`);
  const reasonString = p.properties?.reasonString;
  return {
    packetId: p.messageId ?? 0,
    codes: p.granted as number[],
    ...(reasonString === undefined ? {} : { reasonString }),
  };
}

/** What a DISCONNECT from the broker says: its reason code and, in MQTT 5, reason string. */
export function describeDisconnect(packet: Buffer, version: ProtocolVersion): string {
  const p = decodeOne(packet, version);
  if (p.cmd !== 'disconnect') throw new Error(`expected DISCONNECT, got ${p.cmd}`);
  const reason = reasonName(p.reasonCode ?? 0, 5);
  return `the broker sent DISCONNECT: reason ${reason}${because(p.properties?.reasonString)}`;
}

/** What an MQTT 5 PUBACK, PUBREC or PUBCOMP with a failure reason code says. */
export function describeAckFailure(packet: Buffer): string {
  const p = decodeOne(packet, 5);
  if (p.cmd !== 'puback' && p.cmd !== 'pubrec' && p.cmd !== 'pubcomp') {
    throw new Error(`expected an acknowledgement, got ${p.cmd}`);
  }
  const reason = reasonName(p.reasonCode ?? 0, 5);
  return `${p.cmd.toUpperCase()} for packet id ${p.messageId}: reason ${reason}${because(p.properties?.reasonString)}`;
}

// ---------------------------------------------------------------------------------------------
// The client

export interface RawPublisherOptions extends Omit<ConnectOptions, 'cleanStart'> {
  readonly host: string;
  readonly port: number;
  readonly qos: QoS;
  /** Publishes not yet completed (QoS 1/2: acknowledged; QoS 0: written), at most. */
  readonly window: number;
  readonly connectTimeoutMs: number;
}

const enum State {
  Connecting,
  Open,
  Closed,
}

/**
 * One publishing connection. `publish()` queues a packet, `flush()` writes what is queued;
 * completions come in batches through `onComplete`, room after socket backpressure through
 * `onDrain`, and the first failure through `onError` (once; the socket is gone by then).
 *
 * QoS 1/2 completions are reported from a turn of their own (a timer or setImmediate, never
 * from inside a socket read), so the caller may refill the window right there: what it queues
 * is written together with the pending PUBRELs. QoS 0 completions come from the socket's write
 * callback; refill from there later (setImmediate), or writes would chain without ever
 * yielding to timers.
 */
export class RawMqttPublisher {
  onComplete: (count: number) => void = () => {};
  onDrain: () => void = () => {};
  onError: (message: string) => void = () => {};
  /** Publishes started and not completed. */
  inflight = 0;
  /** The window in effect: the asked one, capped by packet ids and the broker's receive maximum. */
  window: number;
  readonly connack: Promise<ConnAck>;

  private state = State.Connecting;
  private readonly reader: PacketReader;
  /** Per packet id: 0 free, 1 awaiting PUBACK / PUBREC, 2 awaiting PUBCOMP. */
  private readonly idState = new Uint8Array(MAX_PACKET_ID + 1);
  private nextId = 1;
  private out = Buffer.allocUnsafe(SLAB_BYTES);
  /** out[outStart, outEnd) is queued and not yet handed to the socket. */
  private outStart = 0;
  private outEnd = 0;
  /** QoS 0 publishes in the queued bytes: completed once the socket has written them. */
  private queuedQos0 = 0;
  private backedUp = false;
  /** PUBRELs queued and not yet written. */
  private pubrelsQueued = 0;
  /** Acknowledged publishes not yet reported through onComplete (reported per turn). */
  private completedPending = 0;
  private turnTimer: NodeJS.Timeout | undefined;
  private turnImmediate: NodeJS.Immediate | undefined;
  private lastWriteAt = performance.now();
  private pingSentAt: number | undefined;
  private keepaliveTimer: NodeJS.Timeout | undefined;
  private maximumPacketSize = Infinity;
  private settleConnack: ((err: Error | undefined, ack?: ConnAck) => void) | undefined;

  private constructor(
    private readonly socket: net.Socket,
    private readonly o: RawPublisherOptions,
  ) {
    this.window = Math.max(1, o.qos > 0 ? Math.min(o.window, MAX_PACKET_ID) : o.window);
    this.reader = new PacketReader((h, b, s, e, at) => this.onPacket(h, b, s, e, at));
    this.connack = new Promise<ConnAck>((resolve, reject) => {
      this.settleConnack = (err, ack) => (err ? reject(err) : resolve(ack!));
    });
  }

  /** Connects and waits for a successful CONNACK; rejects with the reason otherwise. */
  static async connect(o: RawPublisherOptions): Promise<RawMqttPublisher> {
    const socket = net.createConnection({ host: o.host, port: o.port });
    // Packets are already batched per write; Nagle would only delay the tail of a batch.
    socket.setNoDelay(true);
    const client = new RawMqttPublisher(socket, o);
    const timer = setTimeout(
      () => client.fail(`no CONNACK within ${o.connectTimeoutMs} ms`),
      o.connectTimeoutMs,
    );
    socket.once('connect', () => {
      socket.write(encodeConnect({ ...o, cleanStart: true }));
      client.lastWriteAt = performance.now();
    });
    socket.on('data', (chunk: Buffer) => client.onData(chunk));
    socket.on('drain', () => {
      client.backedUp = false;
      if (client.state === State.Open) client.onDrain();
    });
    socket.on('error', (err) => client.fail(err.message));
    socket.on('close', () => client.fail('connection closed by the broker'));
    try {
      await client.connack;
    } finally {
      clearTimeout(timer);
    }
    return client;
  }

  /** Publishes that may be started now: room in the window, none while the socket is backed up. */
  room(): number {
    return this.state === State.Open && !this.backedUp ? this.window - this.inflight : 0;
  }

  /** Queues one PUBLISH; the caller keeps within `room()`. */
  publish(topic: Buffer, payload: Buffer): void {
    const qos = this.o.qos;
    const version = this.o.protocolVersion;
    const size = publishSize(topic, qos, version, payload.length);
    if (size > this.maximumPacketSize) {
      this.fail(`PUBLISH of ${size} bytes exceeds the broker's maximum packet size`);
      return;
    }
    let id = 0;
    if (qos > 0) {
      id = this.allocId();
      this.idState[id] = 1;
    }
    this.inflight++;
    const at = this.reserve(size);
    writePublish(this.out, at, topic, qos, version, id, payload);
    // Counted after reserve(), whose flush of a full slab does not carry this packet.
    if (qos === 0) this.queuedQos0++;
  }

  /** Hands everything queued to the socket in one write. */
  flush(): void {
    if (this.outEnd === this.outStart || this.state === State.Closed) return;
    const chunk = this.out.subarray(this.outStart, this.outEnd);
    this.outStart = this.outEnd;
    this.pubrelsQueued = 0;
    this.lastWriteAt = performance.now();
    const written = this.queuedQos0;
    this.queuedQos0 = 0;
    const ok =
      written > 0
        ? this.socket.write(chunk, (err) => {
            if (err || this.state !== State.Open) return;
            this.inflight -= written;
            this.onComplete(written);
          })
        : this.socket.write(chunk);
    if (!ok) this.backedUp = true;
  }

  /** DISCONNECT and close; completions and errors after this are not reported. */
  disconnect(): void {
    if (this.state === State.Closed) return;
    const wasOpen = this.state === State.Open;
    if (wasOpen) {
      this.queue(DISCONNECT_PACKET);
      this.flush();
    }
    this.close();
    if (wasOpen) this.socket.end();
    else this.socket.destroy();
  }

  private close(): void {
    this.state = State.Closed;
    if (this.keepaliveTimer) clearInterval(this.keepaliveTimer);
    this.keepaliveTimer = undefined;
    this.cancelTurn();
  }

  private fail(message: string): void {
    if (this.state === State.Closed) return;
    const wasOpen = this.state === State.Open;
    this.close();
    this.socket.destroy();
    if (wasOpen) this.onError(message);
    else this.settleConnack?.(new Error(message));
  }

  /**
   * Room in the slab for n bytes, starting a new slab (after writing the old) when full. It may
   * replace `this.out`, so read `this.out` only after calling it.
   */
  private reserve(n: number): number {
    if (this.outEnd + n > this.out.length) {
      this.flush();
      // The socket may still hold the written part of the old slab: never write into it again.
      this.out = Buffer.allocUnsafe(Math.max(SLAB_BYTES, n));
      this.outStart = 0;
      this.outEnd = 0;
    }
    const at = this.outEnd;
    this.outEnd += n;
    return at;
  }

  private queue(packet: Readonly<Buffer>): void {
    const at = this.reserve(packet.length);
    packet.copy(this.out, at);
  }

  /** A packet id not in flight; one exists because inflight < window <= 65535. */
  private allocId(): number {
    for (let k = 0; k < MAX_PACKET_ID; k++) {
      const id = this.nextId;
      this.nextId = id === MAX_PACKET_ID ? 1 : id + 1;
      if (this.idState[id] === 0) return id;
    }
    throw new Error('no free packet id');
  }

  private onData(chunk: Buffer): void {
    try {
      this.reader.push(chunk);
    } catch (err) {
      this.fail(`bad packet from the broker: ${(err as Error).message}`);
      return;
    }
    if (this.state !== State.Open) return;
    if (this.completedPending === 0 && this.outEnd === this.outStart) return;
    // Half the window or less waiting on the broker (the rest acknowledged or waiting on our
    // PUBREL): the pipe is draining, answer at the end of this loop turn. Otherwise wait up to
    // ACK_TURN_MS for more acks. A small window is never kept waiting: it was asked for to
    // bound what is in flight, and it has little to gather.
    const waitingOnBroker = this.inflight - this.pubrelsQueued;
    if (this.window < PACED_WINDOW || waitingOnBroker <= this.window / 2) {
      this.turnImmediate ??= setImmediate(this.turn);
    } else if (this.turnTimer === undefined && this.turnImmediate === undefined) {
      this.turnTimer = setTimeout(this.turn, ACK_TURN_MS);
    }
  }

  /**
   * Reports the acks gathered since the last turn; the caller refills the window from
   * onComplete, so the PUBRELs queued meanwhile and its new PUBLISHes leave in one write.
   */
  private readonly turn = (): void => {
    this.cancelTurn();
    if (this.state !== State.Open) return;
    const n = this.completedPending;
    this.completedPending = 0;
    if (n > 0) this.onComplete(n);
    this.flush();
  };

  private cancelTurn(): void {
    if (this.turnTimer !== undefined) clearTimeout(this.turnTimer);
    if (this.turnImmediate !== undefined) clearImmediate(this.turnImmediate);
    this.turnTimer = undefined;
    this.turnImmediate = undefined;
  }

  private onPacket(header: number, b: Buffer, start: number, end: number, at: number): void {
    if (this.state === State.Closed) return;
    const type = header >> 4;
    const version = this.o.protocolVersion;
    if (this.state === State.Connecting) {
      if (type !== CONNACK) return this.fail(`expected CONNACK, got packet type ${type}`);
      return this.onConnack(decodeConnack(b.subarray(at, end), version));
    }
    switch (type) {
      case PUBACK:
      case PUBREC:
      case PUBCOMP: {
        if (end - start < 2) return this.fail(`${ackName(type)} shorter than 2 bytes`);
        const id = (b[start]! << 8) | b[start + 1]!;
        const expected = type === PUBCOMP ? 2 : 1;
        const wanted = this.o.qos === 1 ? PUBACK : type === PUBCOMP ? PUBCOMP : PUBREC;
        if (type !== wanted || this.idState[id] !== expected) {
          return this.fail(`unexpected ${ackName(type)} for packet id ${id} (not in flight)`);
        }
        if (version === 5 && end - start > 2 && b[start + 2]! >= 0x80) {
          return this.fail(describeAckFailure(b.subarray(at, end)));
        }
        if (type === PUBREC) {
          this.idState[id] = 2;
          const at = this.reserve(4);
          writePubrel(this.out, at, id);
          this.pubrelsQueued++;
          return;
        }
        this.idState[id] = 0;
        this.inflight--;
        this.completedPending++;
        return;
      }
      case PINGRESP:
        this.pingSentAt = undefined;
        return;
      case DISCONNECT:
        return this.fail(describeDisconnect(b.subarray(at, end), version));
      default:
        return this.fail(`unexpected packet type ${type} from the broker`);
    }
  }

  private onConnack(ack: ConnAck): void {
    const refusal = connackRefusal(ack, this.o.protocolVersion, this.o.qos);
    if (refusal !== undefined) return this.fail(refusal);
    const p = ack.properties;
    // Receive maximum bounds QoS 1/2 publishes in flight (MQTT 5 §3.3.4).
    if (this.o.qos > 0 && p.receiveMaximum !== undefined) {
      this.window = Math.min(this.window, p.receiveMaximum);
    }
    if (p.maximumPacketSize !== undefined) this.maximumPacketSize = p.maximumPacketSize;
    this.state = State.Open;
    const keepaliveS = p.serverKeepAlive ?? this.o.keepaliveS;
    if (keepaliveS > 0) {
      this.keepaliveTimer = setInterval(() => this.keepalive(keepaliveS * 1000), keepaliveS * 500);
      this.keepaliveTimer.unref();
    }
    this.settleConnack?.(undefined, ack);
  }

  /**
   * Half the keepalive without a write sends PINGREQ, leaving the other half for it to arrive;
   * a PINGRESP missing for a whole keepalive means the broker is gone.
   */
  private keepalive(keepaliveMs: number): void {
    if (this.state !== State.Open) return;
    const now = performance.now();
    if (this.pingSentAt !== undefined) {
      if (now - this.pingSentAt > keepaliveMs) {
        this.fail(`no PINGRESP within ${keepaliveMs / 1000} s`);
      }
      return;
    }
    if (now - this.lastWriteAt >= keepaliveMs / 2) {
      this.queue(PINGREQ_PACKET);
      this.flush();
      this.pingSentAt = now;
    }
  }
}

function ackName(type: number): string {
  return type === PUBACK ? 'PUBACK' : type === PUBREC ? 'PUBREC' : 'PUBCOMP';
}
