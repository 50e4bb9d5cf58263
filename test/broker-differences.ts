/**
 * Measures how the broker on MQTT_PORT behaves where MQTT brokers differ and the forwarder
 * cares (docs/DEPLOY.md, "MQTT brokers: what differs"). Not part of `npm test`; run by hand:
 *
 *   npx tsc -p tsconfig.json && MQTT_PORT=18840 node build/test/broker-differences.js
 *
 * Subscribers are raw MQTT clients (mqtt-packet on a socket), so every flag and packet id the
 * broker sends is visible and acknowledgements are sent exactly when a check wants them.
 * Publishers are mqtt.js. Prints one line per check.
 */
import net from 'node:net';
import mqttPacket from 'mqtt-packet';
import type { IPublishPacket, Packet } from 'mqtt-packet';
import { MQTT_HOST, MQTT_PORT, uniqueName } from './helpers/env';
import { sleep, until } from './helpers/kit';
import { publishMany } from './helpers/mqtt';

/** A packet the broker answers with comes within milliseconds: checked every 10 ms, 5 s at most. */
const PACKET = { timeoutMs: 5_000, intervalMs: 10 };

class RawClient {
  readonly publishes: IPublishPacket[] = [];
  readonly packets: Packet[] = [];
  private readonly socket: net.Socket;
  private readonly v: 4 | 5;

  private constructor(socket: net.Socket, v: 4 | 5) {
    this.socket = socket;
    this.v = v;
    const parser = mqttPacket.parser({ protocolVersion: v });
    parser.on('packet', (p: Packet) => {
      this.packets.push(p);
      if (p.cmd === 'publish') this.publishes.push(p);
      // QoS 2: complete the exchange once PUBREC was sent (by ack()).
      if (p.cmd === 'pubrel') this.send({ cmd: 'pubcomp', messageId: p.messageId });
    });
    socket.on('data', (b: Buffer) => parser.parse(b));
    socket.on('error', () => undefined);
  }

  static async connect(
    clientId: string,
    v: 4 | 5,
    opts: { clean?: boolean; receiveMaximum?: number } = {},
  ): Promise<{ client: RawClient; sessionPresent: boolean }> {
    const socket = net.connect(MQTT_PORT, MQTT_HOST);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('error', reject);
    });
    const client = new RawClient(socket, v);
    const properties: Record<string, number> = {};
    if (v === 5) properties['sessionExpiryInterval'] = opts.clean ? 0 : 3600;
    if (v === 5 && opts.receiveMaximum !== undefined)
      properties['receiveMaximum'] = opts.receiveMaximum;
    client.send({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: v,
      clientId,
      clean: opts.clean ?? false,
      keepalive: 60,
      ...(v === 5 ? { properties } : {}),
    });
    await until('CONNACK', () => client.packets.some((p) => p.cmd === 'connack'), PACKET);
    const connack = client.packets.find((p) => p.cmd === 'connack') as {
      sessionPresent: boolean;
    };
    return { client, sessionPresent: connack.sessionPresent };
  }

  send(p: object): void {
    this.socket.write(mqttPacket.generate(p as Packet, { protocolVersion: this.v }));
  }

  async subscribe(filters: { topic: string; qos: 0 | 1 | 2; id?: number }[]): Promise<void> {
    for (const [i, f] of filters.entries()) {
      const before = this.packets.filter((p) => p.cmd === 'suback').length;
      this.send({
        cmd: 'subscribe',
        messageId: 1000 + i,
        subscriptions: [{ topic: f.topic, qos: f.qos }],
        ...(this.v === 5 && f.id !== undefined
          ? { properties: { subscriptionIdentifier: f.id } }
          : {}),
      });
      await until(
        'SUBACK',
        () => this.packets.filter((p) => p.cmd === 'suback').length > before,
        PACKET,
      );
    }
  }

  ack(p: IPublishPacket): void {
    if (p.qos === 1) this.send({ cmd: 'puback', messageId: p.messageId });
    if (p.qos === 2) this.send({ cmd: 'pubrec', messageId: p.messageId });
  }

  /** Drops the TCP connection without DISCONNECT (like a crash). */
  destroy(): void {
    this.socket.destroy();
  }

  async disconnect(): Promise<void> {
    this.send({ cmd: 'disconnect' });
    await sleep(50);
    this.socket.destroy();
  }
}

const pub = (topic: (i: number) => string, count: number, qos: 0 | 1 | 2): Promise<void> =>
  publishMany({ count, qos, topic, payload: (i) => String(i) });

async function overlapping(v: 4 | 5): Promise<string> {
  const base = uniqueName('ov');
  const { client } = await RawClient.connect(`${base}-sub`, v, { clean: true });
  await client.subscribe([
    { topic: `${base}/#`, qos: 1, id: 1 },
    { topic: `${base}/+/x`, qos: 1, id: 2 },
  ]);
  await pub(() => `${base}/a/x`, 1, 1);
  await sleep(500);
  const copies = client.publishes.map((p) =>
    JSON.stringify(p.properties?.subscriptionIdentifier ?? null),
  );
  client.publishes.forEach((p) => client.ack(p));
  await client.disconnect();
  return `overlapping subscriptions (MQTT ${v === 5 ? '5' : '3.1.1'}, ${base}/# id 1 + ${base}/+/x id 2): ${copies.length} copies, subscription ids per copy: ${copies.join(' ')}`;
}

async function redelivery(v: 4 | 5): Promise<string> {
  // One message received and left unacknowledged, then the connection drops; three more are
  // published while away. Which of the four come back with DUP set, in which order?
  const base = uniqueName('dup');
  const id = `${base}-sub`;
  let { client } = await RawClient.connect(id, v, { clean: true });
  await client.disconnect();
  ({ client } = await RawClient.connect(id, v));
  await client.subscribe([{ topic: `${base}/#`, qos: 1 }]);
  await pub(() => `${base}/t`, 1, 1);
  await until('first PUBLISH', () => client.publishes.length === 1, PACKET);
  client.destroy();
  await sleep(300);
  await publishMany({ count: 3, qos: 1, topic: () => `${base}/t`, payload: (i) => String(i + 1) });
  const r = await RawClient.connect(id, v);
  await sleep(700);
  const label = (p: IPublishPacket): string => `${p.payload.toString()}${p.dup ? '(DUP)' : ''}`;
  const beforeAck = r.client.publishes.map(label);
  // Then acknowledge as they come: a broker may hold the queued ones back until the resent
  // in-flight one is acknowledged.
  let acked = 0;
  const deadline = Date.now() + 1_500;
  while (Date.now() < deadline) {
    while (acked < r.client.publishes.length) r.client.ack(r.client.publishes[acked++]!);
    await sleep(20);
  }
  const got = r.client.publishes.map(label);
  await r.client.disconnect();
  await (await RawClient.connect(id, v, { clean: true })).client.disconnect();
  return `redelivery on a resumed session (MQTT ${v === 5 ? '5' : '3.1.1'}; message 0 was sent before the drop, 1-3 queued while away): session present ${r.sessionPresent}, received before any ack: ${beforeAck.join(' ')}; acknowledging as they come: ${got.join(' ')}`;
}

async function resumeOrder(v: 4 | 5, count: number): Promise<string> {
  const base = uniqueName('ord');
  const id = `${base}-sub`;
  let { client } = await RawClient.connect(id, v, { clean: true });
  await client.disconnect();
  ({ client } = await RawClient.connect(id, v));
  await client.subscribe([{ topic: `${base}/#`, qos: 1 }]);
  await client.disconnect();
  await pub(() => `${base}/t`, count, 1);
  const r = await RawClient.connect(id, v);
  const c = r.client;
  await sleep(1_000);
  const beforeAck = c.publishes.length;
  // Acknowledged as they come (a broker may send only a window before acks).
  let acked = 0;
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline && c.publishes.length < count) {
    while (acked < c.publishes.length) c.ack(c.publishes[acked++]!);
    await sleep(10);
  }
  let inversions = 0;
  let last = -1;
  for (const p of c.publishes) {
    const n = Number(p.payload.toString());
    if (n < last) inversions++;
    last = Math.max(last, n);
  }
  while (acked < c.publishes.length) c.ack(c.publishes[acked++]!);
  await sleep(200);
  await c.disconnect();
  await (await RawClient.connect(id, v, { clean: true })).client.disconnect();
  return `order of ${count} messages of one topic queued while away (MQTT ${v === 5 ? '5' : '3.1.1'}): ${beforeAck} sent before any ack; received ${c.publishes.length}, ${inversions} out of order`;
}

async function receiveMaximum(): Promise<string> {
  // MQTT 5 subscriber with receive-maximum 10: how many unacknowledged PUBLISHes does the broker
  // send, and does everything arrive once the subscriber acknowledges as it goes (each message
  // acked 20 ms after it arrived)?
  const RM = 10;
  const COUNT = 100;
  const base = uniqueName('rm');
  const { client } = await RawClient.connect(`${base}-sub`, 5, {
    clean: true,
    receiveMaximum: RM,
  });
  await client.subscribe([{ topic: `${base}/#`, qos: 1 }]);
  await pub(() => `${base}/t`, COUNT, 1);
  await sleep(1_000);
  const unacked = client.publishes.length;
  let acked = 0;
  const deadline = Date.now() + 5_000;
  while (Date.now() < deadline && acked < COUNT) {
    if (acked < client.publishes.length) {
      await sleep(20);
      client.ack(client.publishes[acked++]!);
    } else await sleep(20);
  }
  await sleep(500);
  const total = client.publishes.length;
  const order = client.publishes.map((p) => Number(p.payload.toString()));
  const inversions = order.filter((n, i) => i > 0 && n < order[i - 1]!).length;
  await client.disconnect();
  return `receive-maximum ${RM}, ${COUNT} QoS 1 published: ${unacked} sent before any ack; with acks: ${total} of ${COUNT} delivered within 5 s, ${inversions} out of order`;
}

async function inflightCap(v: 4 | 5): Promise<string> {
  // A subscriber that acknowledges nothing (MQTT 5: no receive-maximum sent, so 65535): how many
  // QoS 1 PUBLISHes does the broker send before it waits for acks, and does the rest arrive once
  // everything received is acknowledged?
  const COUNT = 300;
  const base = uniqueName('cap');
  const { client } = await RawClient.connect(`${base}-sub`, v, { clean: true });
  await client.subscribe([{ topic: `${base}/#`, qos: 1 }]);
  await pub(() => `${base}/t`, COUNT, 1);
  await sleep(1_000);
  const unacked = client.publishes.length;
  let acked = 0;
  const deadline = Date.now() + 5_000;
  while (Date.now() < deadline && acked < COUNT) {
    while (acked < client.publishes.length) client.ack(client.publishes[acked++]!);
    await sleep(10);
  }
  await sleep(300);
  const total = client.publishes.length;
  await client.disconnect();
  return `in-flight cap (MQTT ${v === 5 ? '5, no receive-maximum' : '3.1.1'}), ${COUNT} QoS 1 published to a subscriber that does not ack: ${unacked} sent before any ack; with acks: ${total} of ${COUNT}`;
}

async function offlineQueue(v: 4 | 5, count: number): Promise<string> {
  // A persistent session whose client is away while `count` QoS 1 messages are published: how
  // many are kept, and which (the first ones: newest discarded; the last ones: oldest discarded)?
  const base = uniqueName('q');
  const id = `${base}-sub`;
  let { client } = await RawClient.connect(id, v, { clean: true });
  await client.disconnect();
  ({ client } = await RawClient.connect(id, v));
  await client.subscribe([{ topic: `${base}/#`, qos: 1 }]);
  await client.disconnect();
  await pub(() => `${base}/t`, count, 1);
  const c = (await RawClient.connect(id, v)).client;
  let acked = 0;
  let lastCount = -1;
  let stableSince = Date.now();
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    while (acked < c.publishes.length) c.ack(c.publishes[acked++]!);
    if (c.publishes.length !== lastCount) {
      lastCount = c.publishes.length;
      stableSince = Date.now();
    } else if (Date.now() - stableSince > 1_500) break;
    await sleep(20);
  }
  const got = c.publishes.map((p) => Number(p.payload.toString()));
  await c.disconnect();
  await (await RawClient.connect(id, v, { clean: true })).client.disconnect();
  const range = got.length > 0 ? `ids ${Math.min(...got)}..${Math.max(...got)}` : 'none';
  return `offline queue (MQTT ${v === 5 ? '5' : '3.1.1'}), ${count} QoS 1 published while the session's client was away: ${got.length} delivered on resume (${range})`;
}

async function shared(): Promise<string> {
  const base = uniqueName('sh');
  const a = (await RawClient.connect(`${base}-a`, 5, { clean: true })).client;
  const b = (await RawClient.connect(`${base}-b`, 5, { clean: true })).client;
  await a.subscribe([{ topic: `$share/g/${base}/#`, qos: 1 }]);
  await b.subscribe([{ topic: `$share/g/${base}/#`, qos: 1 }]);
  const ack = setInterval(() => {
    for (const c of [a, b]) for (const p of c.publishes.splice(0)) c.ack(p);
  }, 5);
  const seqA: number[] = [];
  const seqB: number[] = [];
  const collect = setInterval(() => undefined, 1000);
  a.packets.length = 0;
  b.packets.length = 0;
  await pub(() => `${base}/t`, 20, 1);
  await sleep(700);
  clearInterval(ack);
  clearInterval(collect);
  for (const p of a.packets) if (p.cmd === 'publish') seqA.push(Number(p.payload.toString()));
  for (const p of b.packets) if (p.cmd === 'publish') seqB.push(Number(p.payload.toString()));
  await a.disconnect();
  await b.disconnect();
  return `shared subscription $share/g/..., 2 members, 20 messages of one topic: member A got [${seqA.join(',')}], member B got [${seqB.join(',')}]`;
}

async function slowSubscriber(v: 4 | 5, count: number): Promise<string> {
  // A subscriber that stops reading (as the forwarder does when Kafka is slow): publish `count`
  // QoS 1 while it reads nothing, then read and acknowledge everything. What arrives?
  const base = uniqueName('slow');
  const id = `${base}-sub`;
  const socketPaused = await RawClient.connect(id, v, { clean: true });
  const c = socketPaused.client;
  await c.subscribe([{ topic: `${base}/#`, qos: 1 }]);
  (c as unknown as { socket: net.Socket }).socket.pause();
  await publishMany({
    count,
    qos: 1,
    topic: () => `${base}/t`,
    payload: (i) => `${i}`.padEnd(1000, '.'),
    maxInflight: 1000,
  });
  (c as unknown as { socket: net.Socket }).socket.resume();
  const deadline = Date.now() + 30_000;
  let acked = 0;
  let lastCount = -1;
  let stableSince = Date.now();
  while (Date.now() < deadline) {
    while (acked < c.publishes.length) c.ack(c.publishes[acked++]!);
    if (c.publishes.length !== lastCount) {
      lastCount = c.publishes.length;
      stableSince = Date.now();
    } else if (Date.now() - stableSince > 2_000) break;
    await sleep(20);
  }
  const distinct = new Set(c.publishes.map((p) => p.payload.toString())).size;
  await c.disconnect();
  return `subscriber not reading while ${count} QoS 1 messages of 1 kB are published (MQTT ${v === 5 ? '5, no receive-maximum' : '3.1.1'}): ${distinct} of ${count} delivered after it read again`;
}

async function main(): Promise<void> {
  const checks: [string, () => Promise<string>][] = [
    ['overlap5', () => overlapping(5)],
    ['overlap4', () => overlapping(4)],
    ['dup5', () => redelivery(5)],
    ['dup4', () => redelivery(4)],
    ['order5', () => resumeOrder(5, 2000)],
    ['order4', () => resumeOrder(4, 2000)],
    ['rm', () => receiveMaximum()],
    ['cap5', () => inflightCap(5)],
    ['cap4', () => inflightCap(4)],
    ['queue4', () => offlineQueue(4, Number(process.env['QUEUE_COUNT'] ?? 1_500))],
    ['shared', () => shared()],
    ['slow4', () => slowSubscriber(4, Number(process.env['SLOW_COUNT'] ?? 20_000))],
  ];
  const only = process.argv.slice(2);
  console.log(`broker on 127.0.0.1:${MQTT_PORT}`);
  for (const [name, fn] of checks) {
    if (only.length > 0 && !only.includes(name)) continue;
    try {
      console.log(`${name}: ${await fn()}`);
    } catch (err) {
      console.log(`${name}: failed: ${String(err)}`);
    }
  }
}
void main().then(() => process.exit(0));
