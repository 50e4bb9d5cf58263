/**
 * Ack order against the real broker on MQTT_PORT (mosquitto, hivemq or mochi, MQTT_BROKER), not a
 * scripted one: ack-order.test.ts drives the forwarder with test/helpers/raw-broker.ts, which
 * chooses every packet id itself; here the broker routes, numbers and paces the messages.
 *
 * The forwarder connects through a TCP tap that passes every byte unchanged and parses both
 * directions with mqtt-packet: the PUBLISHes in the order the broker sent them, the
 * PUBACK/PUBREC/PUBCOMP the forwarder wrote, with the TCP chunk each arrived in. Packet ids are
 * the broker's and get reused, so the check is on sequences: the n-th ack carries the packet id
 * of the n-th PUBLISH received, for every n.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import mqttPacket from 'mqtt-packet';
import type { Packet } from 'mqtt-packet';
import { topicHash } from '../../src/pipeline/2-route/router';
import { MQTT_BROKER, MQTT_HOST, MQTT_PORT, uniqueName } from '../helpers/env';
import { testConfig, writeConfig } from '../helpers/forwarder';
import type { ForwarderProcess } from '../helpers/forwarder';
import { readAll, readUntil } from '../helpers/kafka';
import { forwarderPool, ready, sleep, until } from '../helpers/kit';
import { publishMany } from '../helpers/mqtt';

const WORKERS = 2;
const PROTOCOLS = [5, 4] as const;

interface Tapped {
  readonly packet: Packet;
  /** Index of the TCP chunk (per direction and connection) that completed the packet. */
  readonly chunk: number;
  readonly connection: number;
}

/** A transparent TCP proxy to the broker that parses what goes through. */
class WireTap {
  /** Forwarder → broker. */
  readonly fromClient: Tapped[] = [];
  /** Broker → forwarder. */
  readonly fromBroker: Tapped[] = [];
  connections = 0;
  private readonly sockets = new Set<net.Socket>();
  private readonly listeners: ((t: Tapped) => void)[] = [];

  private constructor(private readonly server: net.Server) {}

  static async start(): Promise<WireTap> {
    const server = net.createServer();
    const tap = new WireTap(server);
    server.on('connection', (s) => tap.accept(s));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    return tap;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** Called synchronously for every packet the client writes, as it is parsed. */
  onClientPacket(fn: (t: Tapped) => void): void {
    this.listeners.push(fn);
  }

  packets(dir: 'client' | 'broker', cmd: Packet['cmd']): Tapped[] {
    return (dir === 'client' ? this.fromClient : this.fromBroker).filter(
      (t) => t.packet.cmd === cmd,
    );
  }

  private accept(client: net.Socket): void {
    const connection = ++this.connections;
    const upstream = net.connect(MQTT_PORT, MQTT_HOST);
    this.sockets.add(client);
    this.sockets.add(upstream);
    const clientParser = mqttPacket.parser();
    let brokerParser: ReturnType<typeof mqttPacket.parser> | undefined;
    const pendingFromBroker: Buffer[] = [];
    let clientChunk = 0;
    let brokerChunk = 0;
    clientParser.on('packet', (packet: Packet) => {
      const t = { packet, chunk: clientChunk, connection };
      this.fromClient.push(t);
      if (packet.cmd === 'connect' && !brokerParser) {
        brokerParser = mqttPacket.parser({ protocolVersion: packet.protocolVersion ?? 4 });
        brokerParser.on('packet', (p: Packet) =>
          this.fromBroker.push({ packet: p, chunk: brokerChunk, connection }),
        );
        for (const b of pendingFromBroker.splice(0)) brokerParser.parse(b);
      }
      for (const fn of this.listeners) fn(t);
    });
    client.on('data', (b: Buffer) => {
      upstream.write(b);
      clientParser.parse(b);
      clientChunk++;
    });
    upstream.on('data', (b: Buffer) => {
      client.write(b);
      if (brokerParser) brokerParser.parse(b);
      else pendingFromBroker.push(b);
      brokerChunk++;
    });
    const close = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', close);
    upstream.on('close', close);
    client.on('error', close);
    upstream.on('error', close);
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

const pool = forwarderPool();
const taps: WireTap[] = [];
after(async () => {
  await Promise.all(taps.map((t) => t.close()));
});

/** What the tap parsed is checked often: every 20 ms, at most a minute. */
const TAPPED = { timeoutMs: 60_000, intervalMs: 20 };

function topicsOverLanes(base: string, count: number): string[] {
  const topics = Array.from({ length: count }, (_, i) => `${base}/dev-${i}`);
  const lanes = new Set(topics.map((t) => topicHash(t) % WORKERS));
  assert.equal(lanes.size, WORKERS, 'test topics must hash to every producer lane');
  return topics;
}

async function start(
  protocol: 4 | 5,
  qos: 1 | 2,
  base: string,
): Promise<{ tap: WireTap; fwd: ForwarderProcess }> {
  const tap = await WireTap.start();
  taps.push(tap);
  const fwd = pool.start(
    writeConfig(
      testConfig([{ name: 'acks', mqtt: { topic: `${base}/#`, qos }, kafka: { topic: base } }], {
        mqtt: {
          port: tap.port,
          protocol_version: protocol === 5 ? 5 : '3.1.1',
          // mochi 2.7.9 loses track of MQTT 5 messages it held back for receive-maximum (sent,
          // then dropped from the session, their acks never refill the quota): delivery stalls
          // once 3000 meet the default window of 1000. DEPLOY.md ("MQTT brokers: what differs")
          // recommends the largest window with mochi, which keeps the broker from holding back.
          ...(MQTT_BROKER === 'mochi' && protocol === 5 ? { inflight_window: 65535 } : {}),
        },
        // Small batches without linger over two lanes: deliveries complete out of order.
        dispatch: { workers: WORKERS, batch_size: 20, linger_ms: 0 },
      }),
    ),
  );
  await ready(fwd);
  return { tap, fwd };
}

const ids = (ts: readonly Tapped[]): number[] => ts.map((t) => t.packet.messageId!);
const chunkCount = (ts: readonly Tapped[]): number =>
  new Set(ts.map((t) => `${t.connection}:${t.chunk}`)).size;

async function assertAllInKafka(topic: string, payloads: readonly string[]): Promise<void> {
  const records = await readUntil(
    topic,
    (r) => {
      const have = new Set(r.map((x) => x.value.toString()));
      return payloads.every((p) => have.has(p));
    },
    30_000,
  );
  const have = new Set(records.map((x) => x.value.toString()));
  const missing = payloads.filter((p) => !have.has(p));
  assert.deepEqual(
    missing.slice(0, 10),
    [],
    `${missing.length} acknowledged messages not in Kafka`,
  );
}

for (const protocol of PROTOCOLS) {
  const label = protocol === 5 ? 'MQTT 5' : 'MQTT 3.1.1';
  describe(`ack order on a real broker (${MQTT_BROKER}): ${label}`, () => {
    const COUNT = 3000;

    for (const qos of [1, 2] as const) {
      const ack = qos === 1 ? 'puback' : 'pubrec';
      test(`QoS ${qos}: ${ack.toUpperCase()}s in the order the broker delivered, each once`, async (t) => {
        const base = uniqueName(`ackreal-q${qos}-${protocol}`);
        const { tap, fwd } = await start(protocol, qos, base);
        const topics = topicsOverLanes(base, 50);
        const payloads = Array.from({ length: COUNT }, (_, i) => `msg-${i + 1}`);
        await publishMany({
          count: COUNT,
          qos,
          protocolVersion: protocol,
          topic: (i) => topics[i % topics.length]!,
          payload: (i) => payloads[i]!,
        });
        await until(
          `${COUNT} ${qos === 1 ? 'PUBACKs' : 'PUBCOMPs'} at the tap`,
          () => tap.packets('client', qos === 1 ? 'puback' : 'pubcomp').length >= COUNT,
          TAPPED,
        );
        await sleep(500);
        const stop = await fwd.stop('SIGTERM', 30_000);
        assert.equal(stop.code, 0, `forwarder exit ${JSON.stringify(stop)}:\n${fwd.tail(30)}`);

        const publishes = tap.packets('broker', 'publish');
        const acks = tap.packets('client', ack);
        assert.equal(tap.connections, 1, 'one MQTT connection (no reconnect)');
        assert.equal(publishes.length, COUNT, 'PUBLISHes the broker delivered');
        assert.ok(
          publishes.every((p) => p.packet.cmd === 'publish' && p.packet.qos === qos),
          `every PUBLISH at QoS ${qos}`,
        );
        assert.deepEqual(
          ids(acks),
          ids(publishes),
          `${ack} ids follow the PUBLISH order, once each`,
        );
        if (qos === 2) {
          assert.deepEqual(
            ids(tap.packets('client', 'pubcomp')),
            ids(tap.packets('broker', 'pubrel')),
            'a PUBCOMP for each PUBREL, in order',
          );
          assert.equal(tap.packets('client', 'puback').length, 0, 'no PUBACK for QoS 2');
        }
        const chunks = chunkCount(acks);
        t.diagnostic(
          `${MQTT_BROKER}: ${COUNT} ${ack}s in ${chunks} TCP chunks (${(COUNT / chunks).toFixed(1)} per chunk)`,
        );
        assert.ok(chunks < COUNT / 2, `${chunks} chunks carried ${COUNT} acks: not batched`);
        await assertAllInKafka(base, payloads);
      });
    }

    test('an acknowledged message is in Kafka even if the forwarder is killed at its PUBACK', async () => {
      // As in ack-order.test.ts: SIGKILL synchronously while the tap parses the last PUBACK;
      // anything the forwarder acknowledged before Kafka confirmed it would then be missing.
      const N = 500;
      const base = uniqueName(`ackrealkill-${protocol}`);
      const { tap, fwd } = await start(protocol, 1, base);
      let killedAt = -1;
      tap.onClientPacket((tp) => {
        if (tp.packet.cmd === 'puback' && killedAt < 0) {
          if (tap.packets('client', 'puback').length >= N) {
            fwd.child.kill('SIGKILL');
            killedAt = N;
          }
        }
      });
      const topics = topicsOverLanes(base, 50);
      const payloads = Array.from({ length: N }, (_, i) => `msg-${i + 1}`);
      await publishMany({
        count: N,
        qos: 1,
        protocolVersion: protocol,
        topic: (i) => topics[i % topics.length]!,
        payload: (i) => payloads[i]!,
      });
      await until(`PUBACK number ${N} at the tap`, () => killedAt >= 0, TAPPED);
      const exit = await fwd.stop('SIGKILL', 10_000);
      assert.equal(exit.signal, 'SIGKILL', 'the forwarder was killed');
      const acked = tap.packets('client', 'puback').slice(0, N);
      assert.deepEqual(
        ids(acked),
        ids(tap.packets('broker', 'publish').slice(0, N)),
        'PUBACKs in PUBLISH order',
      );
      const have = new Set((await readAll(base)).map((r) => r.value.toString()));
      const missing = payloads.filter((p) => !have.has(p));
      assert.deepEqual(missing.slice(0, 10), [], `${missing.length} acked messages not in Kafka`);
    });
  });
}
