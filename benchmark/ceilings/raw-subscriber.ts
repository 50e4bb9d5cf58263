/**
 * A lean MQTT subscriber for the MQTT-only ceiling. With the raw publisher, the bare mqtt.js
 * subscriber became the limit of that measurement: mqtt.js writes one PUBACK per message, a
 * syscall each, so the forwarder (which batches its acks) could match or beat the "ceiling".
 * This one parses PUBLISH packets straight from the socket's chunks (the codec of
 * load/raw-mqtt.ts) and answers all the packets of one read with one write, so what it measures
 * is closer to what mosquitto and the machine can deliver.
 *
 * Acks are still written at once — at the end of the read that carried the packets — so the
 * broker's window is never held up by waiting.
 */
import net from 'node:net';
import { nowMs } from '../load/payload';
import {
  ACK_BYTES,
  CONNACK,
  DISCONNECT,
  DISCONNECT_PACKET,
  PINGREQ_PACKET,
  PINGRESP,
  PUBLISH,
  PUBREL,
  PacketReader,
  SUBACK,
  connackRefusal,
  decodeConnack,
  decodePublish,
  decodeSuback,
  describeDisconnect,
  encodeConnect,
  encodeSubscribe,
  publishView,
  reasonName,
  writePuback,
  writePubcomp,
  writePubrec,
} from '../load/raw-mqtt';
import type { ProtocolVersion, QoS, Sink, SinkInfo } from '../types';

export const RAW_SUBSCRIBER_NAME = 'raw subscriber';

/** QoS 1/2 messages mosquitto may have in flight to us (MQTT 5): the protocol's maximum. */
const RECEIVE_MAXIMUM = 65535;
const KEEPALIVE_S = 60;
const CONNECT_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 2_000;
/** Payloads are the benchmark's (100 B by default); this only bounds a corrupt length. */
const MAX_PACKET_BYTES = 64 << 20;
const SLAB_BYTES = 64 * 1024;
const SUBSCRIBE_ID = 1;

const enum State {
  Connecting,
  Subscribing,
  Open,
  Closed,
}

export class RawSubscriberSink implements Sink {
  readonly name = RAW_SUBSCRIBER_NAME;

  private socket: net.Socket | undefined;
  private state = State.Connecting;
  private readonly reader = new PacketReader(
    (h, b, s, e, at) => this.onPacket(h, b, s, e, at),
    MAX_PACKET_BYTES,
  );
  private readonly view = publishView();
  private onPayload: (value: Buffer, arrivedAt: number) => void = () => {};
  private settleStart: ((err?: Error) => void) | undefined;
  /** Per packet id: 1 while a QoS 2 message awaits its PUBREL (delivered already). */
  private readonly awaitingRel = new Uint8Array(65536);
  /** out[outStart, outEnd) holds the acks of the current read, not yet written. */
  private out = Buffer.allocUnsafe(SLAB_BYTES);
  private outStart = 0;
  private outEnd = 0;
  private lastWriteAt = performance.now();
  private pingSentAt: number | undefined;
  private keepaliveTimer: NodeJS.Timeout | undefined;
  private error: string | undefined;
  private readonly stats = { reads: 0, ackWrites: 0, messages: 0, duplicatesDropped: 0 };

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly protocolVersion: ProtocolVersion,
    private readonly filter: string,
    private readonly qos: QoS,
  ) {}

  start(onPayload: (value: Buffer, arrivedAt: number) => void): Promise<void> {
    this.onPayload = onPayload;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => this.fail(`no CONNACK/SUBACK within ${CONNECT_TIMEOUT_MS} ms`),
        CONNECT_TIMEOUT_MS,
      );
      this.settleStart = (err) => {
        clearTimeout(timer);
        this.settleStart = undefined;
        if (err) reject(err);
        else resolve();
      };
      const socket = net.createConnection({ host: this.host, port: this.port });
      this.socket = socket;
      // Acks are already one write per read; Nagle would only hold them back.
      socket.setNoDelay(true);
      socket.once('connect', () =>
        this.write(
          encodeConnect({
            protocolVersion: this.protocolVersion,
            clientId: `mkf-ceiling-rawsub-${process.pid}-${Date.now().toString(36)}`,
            keepaliveS: KEEPALIVE_S,
            cleanStart: true,
            ...(this.protocolVersion === 5 ? { receiveMaximum: RECEIVE_MAXIMUM } : {}),
          }),
        ),
      );
      socket.on('data', (chunk: Buffer) => this.onData(chunk));
      socket.on('error', (err) => this.fail(err.message));
      socket.on('close', () => this.fail('connection closed by the broker'));
    });
  }

  async flush(): Promise<void> {}

  async stop(): Promise<SinkInfo> {
    const socket = this.socket;
    if (socket && this.state !== State.Closed) {
      const closed = new Promise<void>((resolve) => {
        const t = setTimeout(resolve, STOP_TIMEOUT_MS);
        socket.once('close', () => {
          clearTimeout(t);
          resolve();
        });
      });
      const wasOpen = this.state === State.Open;
      this.close();
      if (wasOpen) socket.end(DISCONNECT_PACKET);
      else socket.destroy();
      await closed;
      socket.destroy();
    }
    return {
      arrival: 'receipt by the subscriber (raw client: the socket read carrying the packet)',
      ...this.stats,
      ...(this.error === undefined ? {} : { error: this.error }),
    };
  }

  private write(b: Buffer): void {
    this.lastWriteAt = performance.now();
    this.socket?.write(b);
  }

  private close(): void {
    this.state = State.Closed;
    if (this.keepaliveTimer) clearInterval(this.keepaliveTimer);
    this.keepaliveTimer = undefined;
  }

  private fail(message: string): void {
    if (this.state === State.Closed) return;
    this.close();
    this.socket?.destroy();
    this.error = message;
    if (this.settleStart) this.settleStart(new Error(`raw subscriber: ${message}`));
    // The Sink interface has no error channel: the run then ends by its idle timeout with the
    // rest counted lost, and this line (and SinkInfo.error) says why.
    else process.stderr.write(`raw subscriber: ${message}\n`);
  }

  private onData(chunk: Buffer): void {
    this.stats.reads++;
    try {
      this.reader.push(chunk);
    } catch (err) {
      this.fail(`bad packet from the broker: ${(err as Error).message}`);
      return;
    }
    // Every ack of this read in one write: "at once" without a syscall per packet.
    if (this.outEnd > this.outStart && this.state !== State.Closed) {
      const acks = this.out.subarray(this.outStart, this.outEnd);
      // The socket may keep the written bytes queued: never overwrite them.
      this.outStart = this.outEnd;
      this.stats.ackWrites++;
      this.write(acks);
    }
  }

  /** Queues one ack for the end of this read. */
  private ack(write: (b: Buffer, at: number, packetId: number) => number, packetId: number): void {
    // reserveAck may replace this.out: read it only after.
    const at = this.reserveAck();
    write(this.out, at, packetId);
  }

  /** Room for one ack; a full slab moves its unwritten acks to a new one rather than writing. */
  private reserveAck(): number {
    if (this.outEnd + ACK_BYTES > this.out.length) {
      const pending = this.outEnd - this.outStart;
      const next = Buffer.allocUnsafe(Math.max(SLAB_BYTES, 2 * (pending + ACK_BYTES)));
      this.out.copy(next, 0, this.outStart, this.outEnd);
      this.out = next;
      this.outStart = 0;
      this.outEnd = pending;
    }
    const at = this.outEnd;
    this.outEnd += ACK_BYTES;
    return at;
  }

  private onPacket(header: number, b: Buffer, start: number, end: number, at: number): void {
    if (this.state === State.Closed) return;
    const type = header >> 4;
    const v = this.protocolVersion;
    if (type === PUBLISH && this.state !== State.Connecting) {
      const p = decodePublish(header, b, start, end, v, this.view);
      if (p.qos === 2) {
        const dup = this.awaitingRel[p.packetId] === 1;
        this.awaitingRel[p.packetId] = 1;
        this.ack(writePubrec, p.packetId);
        // A resend of a message we have (before its PUBREL) is acknowledged, not delivered.
        if (dup) {
          this.stats.duplicatesDropped++;
          return;
        }
      } else if (p.qos === 1) {
        this.ack(writePuback, p.packetId);
      }
      this.stats.messages++;
      this.onPayload(b.subarray(p.payloadStart, p.payloadEnd), nowMs());
      return;
    }
    switch (type) {
      case CONNACK: {
        if (this.state !== State.Connecting) return this.fail('a second CONNACK');
        const ack = decodeConnack(b.subarray(at, end), v);
        const refusal = connackRefusal(ack, v, this.qos);
        if (refusal !== undefined) return this.fail(refusal);
        this.state = State.Subscribing;
        const keepaliveS = ack.properties.serverKeepAlive ?? KEEPALIVE_S;
        if (keepaliveS > 0) {
          this.keepaliveTimer = setInterval(
            () => this.keepalive(keepaliveS * 1000),
            keepaliveS * 250,
          );
          this.keepaliveTimer.unref();
        }
        this.write(encodeSubscribe(SUBSCRIBE_ID, this.filter, this.qos, v));
        return;
      }
      case SUBACK: {
        const ack = decodeSuback(b.subarray(at, end), v);
        if (this.state !== State.Subscribing || ack.packetId !== SUBSCRIBE_ID) {
          return this.fail(`unexpected SUBACK for packet id ${ack.packetId}`);
        }
        const code = ack.codes[0];
        if (code === undefined || ack.codes.length !== 1) {
          return this.fail(`SUBACK with ${ack.codes.length} codes for one filter`);
        }
        if (code >= 0x80) {
          return this.fail(
            `SUBSCRIBE ${JSON.stringify(this.filter)} refused: ${reasonName(code, v)}` +
              (ack.reasonString ? ` (${ack.reasonString})` : ''),
          );
        }
        if (code !== this.qos) {
          return this.fail(`SUBSCRIBE granted QoS ${code}, asked for ${this.qos}`);
        }
        this.state = State.Open;
        this.settleStart?.();
        return;
      }
      case PUBREL: {
        if (end - start < 2) return this.fail('PUBREL shorter than 2 bytes');
        const id = (b[start]! << 8) | b[start + 1]!;
        // Unknown ids get a PUBCOMP too: the broker is then done with them either way.
        this.awaitingRel[id] = 0;
        this.ack(writePubcomp, id);
        return;
      }
      case PINGRESP:
        this.pingSentAt = undefined;
        return;
      case DISCONNECT:
        return this.fail(describeDisconnect(b.subarray(at, end), v));
      default:
        return this.fail(`unexpected packet type ${type} from the broker`);
    }
  }

  /** At QoS 0 we never write: PINGREQ keeps the broker from timing us out mid-run. */
  private keepalive(keepaliveMs: number): void {
    if (this.state === State.Closed) return;
    const now = performance.now();
    if (this.pingSentAt !== undefined) {
      if (now - this.pingSentAt > keepaliveMs)
        this.fail(`no PINGRESP within ${keepaliveMs / 1000} s`);
      return;
    }
    if (now - this.lastWriteAt >= keepaliveMs / 2) {
      this.pingSentAt = now;
      this.write(PINGREQ_PACKET);
    }
  }
}
