/**
 * The forwarder's MQTT acknowledgements, seen from the broker's side of the wire: the real
 * forwarder process against a raw test broker (test/helpers/raw-broker.ts), which logs every
 * packet the forwarder writes, with the TCP chunk it arrived in. Kafka is the real one.
 *
 * - PUBACK/PUBREC go out strictly in the order the PUBLISHes were received, each exactly once,
 *   although deliveries complete out of order across producer lanes; and they are written in
 *   batches (far fewer TCP chunks than acks).
 * - No ack before Kafka confirmed: with Kafka unreachable nothing is acknowledged, and a SIGTERM
 *   still ends the process cleanly; with Kafka up, an acknowledged message survives a SIGKILL
 *   sent the moment its PUBACK arrives.
 * - A full window stops the forwarder from reading the socket.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { after, describe, test } from 'node:test';
import type { TestContext } from 'node:test';
import { topicHash } from '../../src/pipeline/2-route/router';
import { uniqueName } from '../helpers/env';
import { testConfig, writeConfig } from '../helpers/forwarder';
import type { ForwarderProcess, LogLine } from '../helpers/forwarder';
import { readAll, readUntil } from '../helpers/kafka';
import { forwarderPool, ready, sleep, until } from '../helpers/kit';
import { RawBroker } from '../helpers/raw-broker';
import type { PublishSpec, ReceivedPacket } from '../helpers/raw-broker';

const PROTOCOLS = [5, 4] as const;
const WORKERS = 2;

const pool = forwarderPool();
const brokers: RawBroker[] = [];

after(async () => {
  await Promise.all(brokers.map((b) => b.close()));
});

async function startBroker(): Promise<RawBroker> {
  const broker = await RawBroker.start();
  brokers.push(broker);
  return broker;
}

interface ForwarderSpec {
  readonly broker: RawBroker;
  readonly protocol: 4 | 5;
  readonly filter: string;
  readonly qos: 1 | 2;
  readonly kafkaTopic: string;
  /** Port of an unreachable Kafka; absent: the real one. */
  readonly deadKafkaPort?: number;
  readonly mqtt?: object;
  readonly dispatch?: object;
  readonly shutdownTimeoutMs?: number;
}

/**
 * Starts the real forwarder against the raw broker and waits until it subscribed (Kafka may be
 * unreachable on purpose, so not until it is ready).
 */
async function startForwarder(spec: ForwarderSpec): Promise<ForwarderProcess> {
  const config = testConfig(
    [
      {
        name: 'acks',
        mqtt: { topic: spec.filter, qos: spec.qos },
        kafka: { topic: spec.kafkaTopic },
      },
    ],
    {
      mqtt: {
        port: spec.broker.port,
        protocol_version: spec.protocol === 5 ? 5 : '3.1.1',
        ...spec.mqtt,
      },
      ...(spec.deadKafkaPort === undefined
        ? {}
        : { kafka: { bootstrap_server: '127.0.0.1', port: spec.deadKafkaPort } }),
      dispatch: { workers: WORKERS, ...spec.dispatch },
      ...(spec.shutdownTimeoutMs === undefined
        ? {}
        : { shutdown_timeout_ms: spec.shutdownTimeoutMs }),
    },
  );
  const fwd = pool.start(writeConfig(config));
  await until(
    'mqtt subscribed (/readyz)',
    async () => (await fwd.readyz())['mqttSubscribed'] === true,
  );
  await spec.broker.waitFor(() => spec.broker.packets('subscribe').length > 0, 5_000, 'SUBSCRIBE');
  return fwd;
}

/** Kafka ready too: every producer connected. */
async function startForwarderWithKafka(spec: ForwarderSpec): Promise<ForwarderProcess> {
  const fwd = await startForwarder(spec);
  await ready(fwd);
  return fwd;
}

/** A TCP port on 127.0.0.1 where nothing listens: connecting to it was refused just now. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await new Promise<void>((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    s.setTimeout(2_000, () => {
      s.destroy();
      reject(new Error(`connect to closed port ${port} neither refused nor accepted`));
    });
    s.once('connect', () => {
      s.destroy();
      reject(new Error(`port ${port} is in use`));
    });
    s.once('error', (err: NodeJS.ErrnoException) => {
      s.destroy();
      if (err.code === 'ECONNREFUSED') resolve();
      else reject(err);
    });
  });
  return port;
}

/** 50 topics, checked to spread over both producer lanes (the router's lane = hash % lanes). */
function topicsOverLanes(base: string, count: number): string[] {
  const topics = Array.from({ length: count }, (_, i) => `${base}/dev-${i}`);
  const lanes = new Set(topics.map((t) => topicHash(t) % WORKERS));
  assert.equal(lanes.size, WORKERS, 'test topics must hash to every producer lane');
  return topics;
}

function publishes(topics: readonly string[], count: number, qos: 1 | 2): PublishSpec[] {
  return Array.from({ length: count }, (_, i) => ({
    topic: topics[i % topics.length]!,
    payload: `msg-${i + 1}`,
    qos,
    messageId: i + 1,
  }));
}

const ids = (packets: readonly ReceivedPacket[]): number[] =>
  packets.map((r) => r.packet.messageId!);

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i + 1);

/** Distinct TCP chunks (per connection) the given packets arrived in. */
const chunkCount = (packets: readonly ReceivedPacket[]): number =>
  new Set(packets.map((r) => `${r.connection}:${r.chunk}`)).size;

function assertCleanExit(
  stop: { code: number | null; signal: NodeJS.Signals | null },
  fwd: ForwarderProcess,
): void {
  assert.deepEqual(
    { code: stop.code, signal: stop.signal },
    { code: 0, signal: null },
    `forwarder exit; last lines:\n${fwd.tail(30)}`,
  );
}

const statsLines = (fwd: ForwarderProcess): LogLine[] => fwd.lines.filter((l) => l.msg === 'stats');

for (const protocol of PROTOCOLS) {
  const label = protocol === 5 ? 'MQTT 5' : 'MQTT 3.1.1';

  describe(`ack order: ${label}`, () => {
    const COUNT = 3000;

    test('QoS 1: PUBACKs in receive order, each once, written in batches', async (t) => {
      const base = uniqueName(`ackq1-${protocol}`);
      const kafkaTopic = `${base}-out`;
      const broker = await startBroker();
      const fwd = await startForwarderWithKafka({
        broker,
        protocol,
        filter: `${base}/#`,
        qos: 1,
        kafkaTopic,
        // Small batches without linger over two lanes: deliveries complete out of order.
        dispatch: { batch_size: 20, linger_ms: 0 },
      });
      const specs = publishes(topicsOverLanes(base, 50), COUNT, 1);
      broker.publish(specs);
      await broker.waitFor(() => broker.packets('puback').length >= COUNT, 60_000, 'all PUBACKs');
      // Anything duplicated would follow shortly after the last one.
      await sleep(500);
      const stop = await fwd.stop('SIGTERM', 30_000);
      assertCleanExit(stop, fwd);

      const pubacks = broker.packets('puback');
      assert.deepEqual(ids(pubacks), range(COUNT), 'PUBACK packet ids, in order, once each');
      assert.equal(broker.connections, 1, 'one MQTT connection (no reconnect)');
      const chunks = chunkCount(pubacks);
      t.diagnostic(
        `${COUNT} PUBACKs in ${chunks} TCP chunks (${(COUNT / chunks).toFixed(1)} acks per chunk)`,
      );
      assert.ok(chunks < COUNT / 2, `${chunks} chunks carried ${COUNT} PUBACKs: not batched`);
      await assertAllInKafka(kafkaTopic, specs);
    });

    test('QoS 2: PUBRECs in receive order, each once, then PUBCOMP for each PUBREL', async (t) => {
      const base = uniqueName(`ackq2-${protocol}`);
      const kafkaTopic = `${base}-out`;
      const broker = await startBroker();
      const fwd = await startForwarderWithKafka({
        broker,
        protocol,
        filter: `${base}/#`,
        qos: 2,
        kafkaTopic,
        dispatch: { batch_size: 20, linger_ms: 0 },
      });
      const specs = publishes(topicsOverLanes(base, 50), COUNT, 2);
      broker.publish(specs);
      await broker.waitFor(() => broker.packets('pubcomp').length >= COUNT, 60_000, 'PUBCOMPs');
      await sleep(500);
      const stop = await fwd.stop('SIGTERM', 30_000);
      assertCleanExit(stop, fwd);

      const pubrecs = broker.packets('pubrec');
      assert.deepEqual(ids(pubrecs), range(COUNT), 'PUBREC packet ids, in order, once each');
      // The broker answers each PUBREC with PUBREL at once; mqtt.js completes them in order.
      assert.deepEqual(ids(broker.packets('pubcomp')), range(COUNT), 'PUBCOMP packet ids');
      assert.equal(broker.packets('puback').length, 0, 'no PUBACK for QoS 2');
      assert.equal(broker.connections, 1, 'one MQTT connection (no reconnect)');
      const chunks = chunkCount(pubrecs);
      t.diagnostic(
        `${COUNT} PUBRECs in ${chunks} TCP chunks (${(COUNT / chunks).toFixed(1)} acks per chunk)`,
      );
      assert.ok(chunks < COUNT / 2, `${chunks} chunks carried ${COUNT} PUBRECs: not batched`);
      await assertAllInKafka(kafkaTopic, specs);
    });
  });
}

/** Every published payload is in the Kafka topic (at least once). */
async function assertAllInKafka(topic: string, specs: readonly PublishSpec[]): Promise<void> {
  const want = new Set(specs.map((s) => s.payload.toString()));
  const records = await readUntil(
    topic,
    (r) => {
      const have = new Set(r.map((x) => x.value.toString()));
      return [...want].every((p) => have.has(p));
    },
    30_000,
  );
  const have = new Set(records.map((x) => x.value.toString()));
  const missing = [...want].filter((p) => !have.has(p));
  assert.deepEqual(
    missing.slice(0, 10),
    [],
    `${missing.length} acknowledged messages not in Kafka`,
  );
}

describe('acks only after Kafka confirmed', () => {
  test('Kafka unreachable: nothing is acknowledged, and SIGTERM still exits 0 in time', async (t) => {
    const COUNT = 100;
    const SHUTDOWN_MS = 1_000;
    const base = uniqueName('acknokafka');
    const broker = await startBroker();
    const fwd = await startForwarder({
      broker,
      protocol: 5,
      filter: `${base}/#`,
      qos: 1,
      kafkaTopic: `${base}-out`,
      deadKafkaPort: await closedPort(),
      dispatch: { workers: 1, kafka_connect_timeout_ms: 1_000 },
      shutdownTimeoutMs: SHUTDOWN_MS,
    });
    broker.publish(publishes(topicsOverLanes(base, 10), COUNT, 1));
    const sentAt = Date.now();
    // The forwarder writes a debug 'stats' line every 5 s: it must have taken all 100 in.
    const stats = await fwd.waitForLog(
      (l) => l.msg === 'stats' && Number(l['received']) >= COUNT,
      15_000,
      `stats line with received >= ${COUNT}`,
    );
    await sleep(Math.max(0, 3_000 - (Date.now() - sentAt)));
    assert.equal(stats['received'], COUNT, 'received');
    assert.equal(stats['released'], 0, 'released');
    assert.equal(stats['window'], COUNT, 'window holds every message');
    assert.equal(broker.packets('puback').length, 0, 'no PUBACK while Kafka is unreachable');
    assert.ok(
      fwd.lines.some((l) => /kafka producer connect.*fail/i.test(String(l.msg))),
      `the producer reports its failed connects; last lines:\n${fwd.tail()}`,
    );

    const stop = await fwd.stop('SIGTERM', SHUTDOWN_MS + 20_000);
    t.diagnostic(`SIGTERM to exit with Kafka unreachable: ${stop.ms} ms`);
    assertCleanExit(stop, fwd);
    assert.ok(stop.ms < SHUTDOWN_MS + 10_000, `exit took ${stop.ms} ms`);
    assert.equal(broker.packets('puback').length, 0, 'no PUBACK during shutdown either');
  });

  for (const protocol of PROTOCOLS) {
    test(`Kafka up (${protocol === 5 ? 'MQTT 5' : 'MQTT 3.1.1'}): an acknowledged message is in Kafka even if the forwarder is killed at its PUBACK`, async () => {
      // Reading Kafka after the PUBACK alone would not tell "in Kafka before the ack" from
      // "arrived in Kafka a moment later". So the forwarder is SIGKILLed synchronously, in the
      // broker's packet callback, as the last PUBACK is parsed: whatever it had not yet handed
      // to Kafka by then is gone, and a premature ack shows up as a missing record.
      const COUNT = 500;
      const base = uniqueName(`ackkill-${protocol}`);
      const kafkaTopic = `${base}-out`;
      const broker = await startBroker();
      const fwd = await startForwarderWithKafka({
        broker,
        protocol,
        filter: `${base}/#`,
        qos: 1,
        kafkaTopic,
        dispatch: { batch_size: 20, linger_ms: 0 },
      });
      let ackedWhenKilled = -1;
      broker.onPacket((r) => {
        if (r.packet.cmd === 'puback' && r.packet.messageId === COUNT && ackedWhenKilled < 0) {
          fwd.child.kill('SIGKILL');
          ackedWhenKilled = broker.packets('puback').length;
        }
      });
      const specs = publishes(topicsOverLanes(base, 50), COUNT, 1);
      broker.publish(specs);
      await broker.waitFor(() => ackedWhenKilled >= 0, 60_000, `PUBACK ${COUNT}`);
      const exit = await fwd.stop('SIGKILL', 10_000);
      assert.equal(exit.signal, 'SIGKILL', 'the forwarder was killed');
      assert.deepEqual(ids(broker.packets('puback')), range(COUNT), 'PUBACKs in order, once each');
      assert.equal(ackedWhenKilled, COUNT, 'every message was acknowledged when it was killed');
      const have = new Set((await readAll(kafkaTopic)).map((r) => r.value.toString()));
      const missing = specs.map((s) => s.payload.toString()).filter((p) => !have.has(p));
      assert.deepEqual(missing.slice(0, 10), [], `${missing.length} acked messages not in Kafka`);
    });
  }
});

/** tcp_rmem/tcp_wmem maximum: the most a socket's kernel buffers can hold, per direction. */
function kernelBufferMax(name: 'tcp_rmem' | 'tcp_wmem', fallback: number): number {
  try {
    const max = Number(readFileSync(`/proc/sys/net/ipv4/${name}`, 'utf8').trim().split(/\s+/)[2]);
    return Number.isFinite(max) && max > 0 ? max : fallback;
  } catch {
    return fallback;
  }
}

describe('backpressure', () => {
  test('a full window stops reading: received and window stay at inflight_window', async (t: TestContext) => {
    const WINDOW = 100;
    const COUNT = 1000;
    // Two observations, both real:
    // 1. The forwarder's own counters (debug 'stats' line, every 5 s): `received` counts
    //    PUBLISHes mqtt.js handed over, `window` the unacknowledged ones. mqtt.js emits a
    //    packet when it *handles* it, not when it parses it: the rest of a parsed chunk waits
    //    inside mqtt.js, unseen. So the exact bound is received == window == 100, not
    //    "100 + one chunk".
    // 2. The socket: the forwarder must stop reading, not read and buffer. The broker writes
    //    more than both kernel buffers can hold (receive side at most tcp_rmem[2], send side
    //    at most tcp_wmem[2], read from /proc) plus 16 MB: if the forwarder stops reading,
    //    the rest must still sit in the broker's user-space write queue (writableLength > 0);
    //    had it kept reading, the queue would have drained. Sizing by the kernel limits keeps
    //    this from depending on how far TCP autotuning grew the buffers.
    const kernelMax = kernelBufferMax('tcp_rmem', 32 << 20) + kernelBufferMax('tcp_wmem', 4 << 20);
    const totalBytes = kernelMax + (16 << 20);
    const payloadBytes = Math.ceil(totalBytes / (COUNT - WINDOW));
    const base = uniqueName('ackbackpressure');
    const broker = await startBroker();
    const fwd = await startForwarder({
      broker,
      protocol: 5,
      filter: `${base}/#`,
      qos: 1,
      kafkaTopic: `${base}-out`,
      deadKafkaPort: await closedPort(),
      mqtt: { inflight_window: WINDOW },
      dispatch: { workers: 1, kafka_connect_timeout_ms: 1_000 },
      shutdownTimeoutMs: 1_000,
    });
    const payload = Buffer.alloc(payloadBytes, 'x');
    const topics = topicsOverLanes(base, 10);
    const specs: PublishSpec[] = Array.from({ length: COUNT }, (_, i) => ({
      topic: topics[i % topics.length]!,
      payload,
      qos: 1,
      messageId: i + 1,
    }));
    const flowing = broker.publish(specs);
    assert.equal(flowing, false, 'the broker wrote more than its socket buffer takes at once');

    const first = await fwd.waitForLog(
      (l) => l.msg === 'stats' && Number(l['received']) >= WINDOW,
      15_000,
      `stats line with received >= ${WINDOW}`,
    );
    const seen = statsLines(fwd).length;
    // One more stats period: nothing moved in 5 s.
    await fwd.waitForLog(
      (l) => l.msg === 'stats' && statsLines(fwd).indexOf(l) >= seen,
      10_000,
      'a later stats line',
    );
    const queued = broker.clientSocket?.writableLength ?? 0;
    const lines = statsLines(fwd);
    const last = lines[lines.length - 1]!;
    t.diagnostic(
      `payload ${payloadBytes} B x ${COUNT}; kernel buffers at most ${kernelMax} B; ` +
        `still queued at the broker: ${queued} B; stats: ${JSON.stringify(
          lines.map((l) => [l['received'], l['window']]),
        )}`,
    );
    for (const l of lines) {
      assert.ok(Number(l['window']) <= WINDOW, `window ${String(l['window'])} > ${WINDOW}`);
      assert.ok(Number(l['received']) <= WINDOW, `received ${String(l['received'])} > ${WINDOW}`);
    }
    assert.equal(first['received'], WINDOW, 'received when the window filled');
    assert.equal(last['received'], WINDOW, 'received 5 s later');
    assert.equal(last['window'], WINDOW, 'window 5 s later');
    assert.equal(broker.packets('puback').length, 0, 'nothing acknowledged');
    assert.ok(queued > 0, 'the broker could write everything: the forwarder kept reading');

    const stop = await fwd.stop('SIGTERM', 30_000);
    t.diagnostic(`SIGTERM to exit: ${stop.ms} ms`);
    assertCleanExit(stop, fwd);
    assert.ok(stop.ms < 11_000, `exit took ${stop.ms} ms`);
  });
});
