/**
 * Writes PUBACK/PUBREC in receive order once Kafka has the messages, and stops mqtt.js from
 * reading while the window is full. It reaches mqtt.js internals only through
 * src/seams/mqtt-client.ts (mqtt pinned to PINNED_MQTT_VERSION there):
 *
 * - mqtt.js handles one packet at a time and only reads the next once the current PUBLISH's ack
 *   was written. Deferring through the public `customHandleAcks` hook therefore allows one
 *   message in flight (measured: 183 msg/s at 5 ms per ack), and it only works for MQTT 5.
 * - So the client's own PUBACK/PUBREC writes are swallowed in `_sendPacket`, mqtt.js is told
 *   the ack went out (it reads on), and the forwarder writes the acks itself once Kafka has the
 *   messages, in receive order, encoded together into one socket write.
 * - QoS 2 is gated at PUBREC: after PUBREC the broker only re-sends PUBREL, so a PUBREC sent
 *   before Kafka confirmed would lose the message on a crash. mqtt.js emits 'message' for QoS 2
 *   only at PUBREL, hence messages are taken from 'packetreceive' (PUBLISH, every QoS).
 * - Reading stops by withholding mqtt.js's continuation callback (QoS 0 in `handleMessage`,
 *   the public backpressure hook; QoS 1/2 where the ack would have been written).
 * - While reading is stopped mqtt.js cannot read PINGRESP either, and would drop a healthy
 *   connection after 1.5 × keepalive — during every Kafka outage longer than that. So while
 *   stalled the gate sends PINGREQ itself (the broker sees a live client) and keeps mqtt.js's
 *   keepalive timer from expiring; the PINGRESPs wait in the socket and are read on resume.
 * - mqtt.js enforces its advertised receive-maximum on unreleased QoS 2 ids and drops the
 *   connection beyond it; mosquitto 2.0.11 overshoots it under backlog (DESIGN.md). The
 *   forwarder's window is the real bound, so that check is relaxed.
 *
 * test/integration/seam-mqtt-client.test.ts fails loudly if a mqtt.js upgrade changes any of it.
 */
import { performance } from 'node:perf_hooks';
import type { IPublishPacket, MqttClient } from 'mqtt';
import { interceptAcks } from '../../seams/mqtt-client';
import type { RawClient } from '../../seams/mqtt-client';

export { PINNED_MQTT_VERSION } from '../../seams/mqtt-client';

export interface AckGateHooks {
  /** Every PUBLISH, in receive order, before mqtt.js handles it; `conn` is the connection generation. */
  onPublish(packet: IPublishPacket, conn: number): void;
  /** Call `next` when the client may go on reading (now, or once the window has room). */
  admit(next: () => void): void;
}

export interface AckToSend {
  readonly qos: 0 | 1 | 2;
  readonly messageId: number;
  readonly conn: number;
}

/** Fixed header byte of PUBACK (type 4), PUBREC (type 5), PUBCOMP (type 7); flags are 0. */
const PUBACK = 0x40;
const PUBREC = 0x50;
const PUBCOMP = 0x70;
/** Fixed header (2 bytes, remaining length 2) + packet id. */
const ACK_BYTES = 4;
/**
 * Least time between two PUBCOMP-only writes. Measured at QoS 2 (100,000 messages at 16k msg/s):
 * one write per I/O turn made 25,171 PUBCOMP writes against 1,501 PUBREC writes, and the socket
 * write path was 14 % of the main thread. Within the gap PUBCOMPs ride on the next PUBACK/PUBREC
 * write or wait for its end: at most 1 ms more before the broker frees a receive-maximum slot,
 * and a PUBCOMP after a quiet millisecond still goes out at once.
 */
const PUBCOMP_GAP_MS = 1;

export class AckGate {
  private conn = 0;
  private readonly raw: RawClient;
  private stallTimer: NodeJS.Timeout | undefined;
  private holding = false;
  /** PUBCOMPs not yet written, in PUBREL order (see schedulePubcomps). */
  private pubcomps: number[] = [];
  private pubcompFlush: NodeJS.Immediate | undefined;
  private pubcompTimer: NodeJS.Timeout | undefined;
  /** `now()` of the last write that carried PUBCOMPs. */
  private lastPubcompWrite = -Infinity;

  /** `now`: the clock of the PUBCOMP gap, in ms (a test's own clock makes the gap exact). */
  constructor(
    private readonly client: MqttClient,
    hooks: AckGateHooks,
    private readonly now: () => number = () => performance.now(),
  ) {
    const admit = (next: () => void): void => {
      let resumed = false;
      hooks.admit(() => {
        resumed = true;
        this.endStall();
        next();
      });
      if (!resumed) this.beginStall();
    };
    this.raw = interceptAcks(client, {
      onAck: admit,
      onQoS0: admit,
      onPubcomp: (messageId) => {
        this.pubcomps.push(messageId);
        this.schedulePubcomps();
      },
      beforeDisconnect: () => this.flushPubcomps(),
    });

    // 'connect' is emitted while the CONNACK is handled, before any PUBLISH of that connection.
    client.on('connect', () => {
      this.conn++;
    });
    client.on('close', () => {
      this.endStall();
      // Their PUBRELs are re-sent by the broker on a resumed session.
      this.takePubcomps();
    });
    client.on('packetreceive', (packet) => {
      if (packet.cmd === 'publish') hooks.onPublish(packet, this.conn);
    });
  }

  /** True while mqtt.js is held from reading (the window is full or closed). */
  get stalled(): boolean {
    return this.holding;
  }

  /**
   * Writes DISCONNECT now. For a stalled client: mqtt.js's graceful end() would wait for the
   * socket to close, which it never sees while it is not reading.
   */
  sendDisconnect(): void {
    if (this.client.connected) this.raw.send({ cmd: 'disconnect' });
  }

  /** Next I/O turn, or the end of PUBCOMP_GAP_MS after the last PUBCOMP write. */
  private schedulePubcomps(): void {
    if (this.pubcompFlush !== undefined || this.pubcompTimer !== undefined) return;
    const wait = this.lastPubcompWrite + PUBCOMP_GAP_MS - this.now();
    if (wait <= 0) {
      this.pubcompFlush = setImmediate(() => this.flushPubcomps());
    } else {
      this.pubcompTimer = setTimeout(() => this.flushPubcomps(), wait);
      this.pubcompTimer.unref();
    }
  }

  /**
   * Writes the pending PUBCOMPs as one socket write, in the order of their PUBRELs. mqtt.js
   * would write each alone (a syscall per QoS 2 message, on top of the PUBREC); like PUBACK, a
   * PUBCOMP with a success reason is four fixed bytes in MQTT 3.1.1 and 5.
   */
  private flushPubcomps(): void {
    if (this.pubcomps.length === 0 || !this.client.connected) {
      this.takePubcomps();
      return;
    }
    const out = Buffer.allocUnsafe(this.pubcomps.length * ACK_BYTES);
    this.takePubcomps(out);
    this.raw.write(out);
  }

  /**
   * Encodes the pending PUBCOMPs at the start of `out` (when given), forgets them and cancels
   * their scheduled write. Returns the bytes written.
   */
  private takePubcomps(out?: Buffer): number {
    let off = 0;
    clearImmediate(this.pubcompFlush);
    clearTimeout(this.pubcompTimer);
    this.pubcompFlush = undefined;
    this.pubcompTimer = undefined;
    const ids = this.pubcomps;
    if (ids.length === 0) return 0;
    this.pubcomps = [];
    if (out === undefined) return 0;
    for (const id of ids) {
      out[off] = PUBCOMP;
      out[off + 1] = 2;
      out.writeUInt16BE(id, off + 2);
      off += ACK_BYTES;
    }
    this.lastPubcompWrite = this.now();
    return off;
  }

  private beginStall(): void {
    this.holding = true;
    const keepaliveS = this.client.options.keepalive ?? 0;
    if (this.stallTimer !== undefined || keepaliveS <= 0) return;
    this.stallTimer = setInterval(
      () => {
        if (!this.client.connected) return;
        this.raw.send({ cmd: 'pingreq' });
        this.raw.keepAlive();
      },
      (keepaliveS * 1000) / 2,
    );
    this.stallTimer.unref();
  }

  private endStall(): void {
    this.holding = false;
    clearInterval(this.stallTimer);
    this.stallTimer = undefined;
  }

  /** Generation of the current connection (incremented on every CONNACK). */
  get connection(): number {
    return this.conn;
  }

  /**
   * Writes the acks of `released` that belong to the live connection, in the given order, as
   * one socket write. Acks of an earlier connection are dropped: their packet ids mean nothing
   * now, and the broker re-sends those messages on the resumed session.
   *
   * The packets are encoded here rather than by mqtt.js: PUBACK and PUBREC with a success reason
   * are four fixed bytes in both MQTT 3.1.1 and 5 (MQTT 5 §3.4.2.1 lets the reason code and
   * properties be omitted when the reason is 0x00), and mqtt.js's per-packet encoder, logging
   * and stream write took about 10 % of the main thread (docs/BENCHMARKS.md, flame graphs).
   * mqtt.js keeps no state for the acks it sends. Pending PUBCOMPs go first in the same write
   * (PUBCOMP order is only relative to other PUBCOMPs).
   */
  release(released: readonly AckToSend[]): void {
    if (!this.client.connected) return;
    let n = 0;
    for (const e of released) if (e.qos !== 0 && e.conn === this.conn) n++;
    if (n === 0) return;
    const out = Buffer.allocUnsafe((n + this.pubcomps.length) * ACK_BYTES);
    let off = this.takePubcomps(out);
    for (const e of released) {
      if (e.qos === 0 || e.conn !== this.conn) continue;
      out[off] = e.qos === 1 ? PUBACK : PUBREC;
      out[off + 1] = 2;
      out.writeUInt16BE(e.messageId, off + 2);
      off += ACK_BYTES;
    }
    this.raw.write(out);
  }
}
