/**
 * Seam test for src/seams/mqtt-client.ts (used by pipeline/6-mqtt-ack/ack-gate.ts), the one
 * module that relies on mqtt.js internals.
 * If an mqtt.js upgrade changes what the gate depends on, this file fails, loudly and first:
 *
 * - the installed mqtt.js is exactly the version the gate was written for, and package.json
 *   pins it exactly;
 * - against the real mosquitto: with the gate installed and no ack released, mqtt.js keeps
 *   reading (every PUBLISH reaches onPublish) while no PUBACK/PUBREC leaves the client — the
 *   broker redelivers everything to the next connection of the session; once the gate releases
 *   the acks, nothing is redelivered;
 * - withholding `next` in `admit` stops mqtt.js from handing over further packets, and calling
 *   it resumes them.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import mqtt from 'mqtt';
import type { IClientOptions, IPublishPacket, MqttClient } from 'mqtt';
import mqttPacket from 'mqtt-packet';
import type { Packet } from 'mqtt-packet';
import { AckGate, PINNED_MQTT_VERSION } from '../../src/pipeline/6-mqtt-ack/ack-gate';
import {
  clientStream,
  disableNagle,
  reconnectPeriod,
  setReconnectPeriod,
  statelessIncomingStore,
} from '../../src/seams/mqtt-client';
import type { AckGateHooks } from '../../src/pipeline/6-mqtt-ack/ack-gate';
import { MQTT_HOST, MQTT_PORT, REPO_ROOT, uniqueName } from '../helpers/env';
import { sleep, until } from '../helpers/kit';
import { publishMany } from '../helpers/mqtt';

const PROTOCOLS = [5, 4] as const;
const clients: MqttClient[] = [];

after(async () => {
  // Only reached with a live client if a test failed half-way.
  await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)));
});

/** What the test's own clients saw is checked often: a packet is there within milliseconds. */
const SEEN = { timeoutMs: 10_000, intervalMs: 20 };

interface SessionSpec {
  readonly clientId: string;
  readonly protocol: 4 | 5;
  readonly clean: boolean;
}

function options(s: SessionSpec): IClientOptions {
  return {
    host: MQTT_HOST,
    port: MQTT_PORT,
    protocolVersion: s.protocol,
    clientId: s.clientId,
    clean: s.clean,
    reconnectPeriod: 0,
    connectTimeout: 5_000,
    // MQTT 5: the session outlives the connection only with an expiry interval.
    ...(s.protocol === 5 ? { properties: { sessionExpiryInterval: s.clean ? 0 : 3_600 } } : {}),
  };
}

/** Connects; `install` runs right after the client is created, before any packet is read. */
async function connect(
  s: SessionSpec,
  install?: (client: MqttClient) => void,
  extra: Partial<IClientOptions> = {},
): Promise<{ client: MqttClient; sessionPresent: boolean }> {
  const client = mqtt.connect({ ...options(s), ...extra });
  clients.push(client);
  install?.(client);
  const sessionPresent = await new Promise<boolean>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`MQTT connect ${s.clientId}: timeout`)),
      10_000,
    );
    client.once('connect', (connack) => {
      clearTimeout(timer);
      resolve(connack.sessionPresent);
    });
    client.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
  return { client, sessionPresent };
}

/**
 * A client with the gate installed, and the incoming store the forwarder gives it, recording
 * what it sees and writes and counting mqtt.js's 'message' events.
 */
async function connectGated(
  s: SessionSpec,
  admit: AckGateHooks['admit'] = (next) => next(),
): Promise<{
  client: MqttClient;
  gate: AckGate;
  seen: IPublishPacket[];
  sent: string[];
  sessionPresent: boolean;
  messageEvents: () => number;
}> {
  const seen: IPublishPacket[] = [];
  const sent: string[] = [];
  let gate: AckGate | undefined;
  let messages = 0;
  const { client, sessionPresent } = await connect(
    s,
    (c) => {
      gate = new AckGate(c, { onPublish: (packet) => seen.push(packet), admit });
      c.on('message', () => messages++);
    },
    { incomingStore: statelessIncomingStore() },
  );
  recordWrites(client, s.protocol, sent);
  return { client, gate: gate!, seen, sent, sessionPresent, messageEvents: () => messages };
}

/**
 * Every packet the client writes to its socket, decoded from the bytes: the gate writes acks
 * itself, bypassing mqtt.js (and its 'packetsend' event), so only the wire tells what was sent.
 */
function recordWrites(client: MqttClient, protocolVersion: 4 | 5, sent: string[]): void {
  const stream = (client as unknown as { stream: NodeJS.WritableStream }).stream;
  const parser = mqttPacket.parser({ protocolVersion });
  parser.on('packet', (p: Packet) => sent.push(p.cmd));
  parser.on('error', (err: Error) => sent.push(`unparsable: ${err.message}`));
  const write = stream.write.bind(stream) as (chunk: unknown, ...rest: unknown[]) => boolean;
  stream.write = ((chunk: unknown, ...rest: unknown[]) => {
    if (Buffer.isBuffer(chunk)) parser.parse(chunk);
    else if (typeof chunk === 'string') parser.parse(Buffer.from(chunk));
    return write(chunk, ...rest);
  }) as typeof stream.write;
}

/** A QoS 1 round trip: once its PUBACK is back, the broker processed all we sent before it. */
async function barrier(client: MqttClient, topic: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      client.publishAsync(`${topic}-barrier`, 'barrier', { qos: 1 }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('barrier publish: no PUBACK in 10 s')), 10_000);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

const endForced = (client: MqttClient): Promise<void> => client.endAsync(true);

/**
 * Resumes the session with a plain mqtt.js client (acking everything at once) and returns what
 * the broker redelivered: the PUBLISHes that arrived before a marker this client publishes to
 * the same topic after connecting (the broker resends a session's unacknowledged messages
 * right after CONNACK, ahead of anything new), and the PUBRELs it re-sent.
 */
async function resume(
  s: SessionSpec,
  topic: string,
): Promise<{ publishes: string[]; pubrels: number; sessionPresent: boolean }> {
  const publishes: string[] = [];
  let pubrels = 0;
  let pubcomps = 0;
  let qos2 = 0;
  const marker = `marker-${uniqueName('m')}`;
  let markerSeen = false;
  const { client, sessionPresent } = await connect(s, (c) => {
    c.on('packetreceive', (p) => {
      if (p.cmd === 'pubrel') pubrels++;
      if (p.cmd !== 'publish' || p.topic !== topic) return;
      const payload = p.payload.toString();
      if (payload === marker) markerSeen = true;
      else if (!markerSeen) {
        publishes.push(payload);
        if (p.qos === 2) qos2++;
      }
    });
    c.on('packetsend', (p) => {
      if (p.cmd === 'pubcomp') pubcomps++;
    });
  });
  await client.publishAsync(topic, marker, { qos: 1 });
  await until('marker after the redelivered messages', () => markerSeen, SEEN);
  // QoS 2 redeliveries: let the exchanges finish, so the session is empty afterwards.
  await until('PUBCOMP for every redelivered QoS 2 message', () => pubcomps >= qos2, SEEN);
  await barrier(client, topic);
  await client.endAsync();
  return { publishes, pubrels, sessionPresent };
}

/** Removes the broker's session for `clientId`. */
async function dropSession(clientId: string, protocol: 4 | 5): Promise<void> {
  const { client } = await connect({ clientId, protocol, clean: true });
  await client.endAsync();
}

describe('mqtt.js version', () => {
  test(`installed mqtt is ${PINNED_MQTT_VERSION} and package.json pins it exactly`, () => {
    const load = createRequire(__filename);
    const installed = (load('mqtt/package.json') as { version: string }).version;
    assert.equal(
      installed,
      PINNED_MQTT_VERSION,
      `src/seams/mqtt-client.ts relies on mqtt ${PINNED_MQTT_VERSION} internals; installed is ${installed}. Re-verify the gate against the new version before changing PINNED_MQTT_VERSION.`,
    );
    const pkg = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    assert.equal(
      pkg.dependencies['mqtt'],
      PINNED_MQTT_VERSION,
      'package.json must pin mqtt exactly (no ^ or ~): the ack gate depends on its internals',
    );
    const lock = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { version?: string }>;
    };
    assert.equal(lock.packages['node_modules/mqtt']?.version, PINNED_MQTT_VERSION, 'lock file');
  });
});

for (const protocol of PROTOCOLS) {
  const label = protocol === 5 ? 'MQTT 5' : 'MQTT 3.1.1';

  describe(`ack gate against mosquitto: ${label}`, () => {
    for (const [qos, count] of [
      [1, 50],
      [2, 20],
    ] as const) {
      test(`QoS ${qos}: unreleased acks are never written; released acks end redelivery`, async () => {
        const clientId = uniqueName(`gate-q${qos}-v${protocol}`);
        const topic = `${clientId}/t`;
        const session: SessionSpec = { clientId, protocol, clean: false };
        const ackCmd = qos === 1 ? 'puback' : 'pubrec';
        try {
          // 1. Gate installed, acks never released: mqtt.js must read on regardless.
          const a = await connectGated(session);
          await a.client.subscribeAsync(topic, { qos });
          const first = Array.from({ length: count }, (_, i) => `a-${i}`);
          await publishMany({
            count,
            qos,
            protocolVersion: protocol,
            topic: () => topic,
            payload: (i) => first[i]!,
          });
          await until(`${count} PUBLISHes via onPublish`, () => a.seen.length >= count, SEEN);
          assert.deepEqual(
            a.seen.map((p) => p.payload.toString()),
            first,
            'onPublish saw every PUBLISH, in order, with no ack written',
          );
          assert.ok(
            a.seen.every((p) => p.qos === qos),
            'delivered at the subscribed QoS',
          );
          assert.equal(a.sent.filter((c) => c === ackCmd).length, 0, `no ${ackCmd} written`);
          await endForced(a.client);

          // 2. The broker never got an ack: it redelivers all of them to the resumed session.
          const r1 = await resume(session, topic);
          assert.equal(r1.sessionPresent, true, 'session resumed');
          assert.deepEqual(
            [...new Set(r1.publishes)].sort(),
            [...first].sort(),
            'every unacknowledged message is redelivered',
          );

          // 3. Gate installed, acks released through gate.release(): the broker has them.
          const b = await connectGated(session);
          assert.equal(b.sessionPresent, true, 'session resumed');
          const second = Array.from({ length: count }, (_, i) => `b-${i}`);
          await publishMany({
            count,
            qos,
            protocolVersion: protocol,
            topic: () => topic,
            payload: (i) => second[i]!,
          });
          await until(`${count} PUBLISHes via onPublish`, () => b.seen.length >= count, SEEN);
          assert.deepEqual(
            b.seen.map((p) => p.payload.toString()),
            second,
            'second batch',
          );
          assert.equal(b.sent.filter((c) => c === ackCmd).length, 0, `no ${ackCmd} before release`);
          b.gate.release(
            b.seen.map((p) => ({ qos, messageId: p.messageId!, conn: b.gate.connection })),
          );
          assert.equal(b.sent.filter((c) => c === ackCmd).length, count, `${ackCmd} per release`);
          if (qos === 2) {
            // PUBREC → broker's PUBREL → mqtt.js hands the PUBCOMP to the gate, which writes it.
            await until(
              'PUBCOMP for every PUBREL',
              () => b.sent.filter((c) => c === 'pubcomp').length >= count,
              SEEN,
            );
            // The stateless incoming store kept no PUBLISH, so mqtt.js had none to emit at PUBREL.
            assert.equal(b.messageEvents(), 0, "no 'message' event at PUBREL");
          }
          await barrier(b.client, topic);
          await endForced(b.client);

          // 4. Nothing is redelivered (QoS 2: the broker could only re-send PUBREL).
          const r2 = await resume(session, topic);
          assert.equal(r2.sessionPresent, true, 'session resumed');
          assert.deepEqual(r2.publishes, [], 'no PUBLISH redelivered after the acks were released');
          // QoS 2: the gate writes the PUBCOMPs; one the broker did not get would come back as a
          // PUBREL now.
          assert.equal(r2.pubrels, 0, 'no PUBREL re-sent');
        } finally {
          await dropSession(clientId, protocol);
        }
      });
    }

    test('withholding next in admit stops mqtt.js from handing over packets; next resumes', async (t) => {
      const HOLD_AT = 10;
      const COUNT = 50;
      const clientId = uniqueName(`gate-stop-v${protocol}`);
      const topic = `${clientId}/t`;
      const held: (() => void)[] = [];
      let holding = true;
      let seenCount = 0;
      const g = await connectGated({ clientId, protocol, clean: true }, (next) => {
        // Called while mqtt.js handles PUBLISH number `seenCount` (onPublish ran just before).
        if (holding && seenCount >= HOLD_AT) held.push(next);
        else next();
      });
      g.client.on('packetreceive', (p) => {
        if (p.cmd === 'publish') seenCount++;
      });
      await g.client.subscribeAsync(topic, { qos: 1 });
      const payloads = Array.from({ length: COUNT }, (_, i) => `s-${i}`);
      // Resolves once the broker has every message; it sends them on to us at once.
      await publishMany({
        count: COUNT,
        qos: 1,
        protocolVersion: protocol,
        topic: () => topic,
        payload: (i) => payloads[i]!,
      });
      await until(`${HOLD_AT} PUBLISHes`, () => g.seen.length >= HOLD_AT, SEEN);
      await sleep(500);
      // The bound is exact: mqtt.js emits 'packetreceive' (the gate's onPublish) when it
      // *handles* a packet, one at a time, not when it parses a chunk. Packets parsed from the
      // same TCP chunk wait in mqtt.js's queue unseen until the held `next` runs. So a held
      // `next` at message 10 means onPublish saw exactly 10, not "10 + the rest of a chunk".
      const bytesRead = (g.client.stream as { bytesRead?: number }).bytesRead;
      t.diagnostic(`held at ${g.seen.length} of ${COUNT}; client socket bytesRead ${bytesRead}`);
      assert.equal(g.seen.length, HOLD_AT, 'onPublish stopped at the held message');
      assert.equal(held.length, 1, 'one continuation held');
      holding = false;
      for (const next of held.splice(0)) next();
      await until('the rest after next()', () => g.seen.length >= COUNT, SEEN);
      assert.deepEqual(
        g.seen.map((p) => p.payload.toString()),
        payloads,
        'all, in order, once',
      );
      await g.client.endAsync(true);
    });
  });
}

describe('mqtt.js reconnect period', () => {
  test('a reconnectPeriod set at run time is used for the next attempt', async () => {
    // Nothing listens on port 1: every attempt fails at once and mqtt.js schedules the next.
    const client = mqtt.connect({
      host: MQTT_HOST,
      port: 1,
      reconnectPeriod: 50,
      connectTimeout: 1_000,
      log: () => undefined,
    });
    clients.push(client);
    client.on('error', () => undefined);
    const attempts: number[] = [];
    await new Promise<void>((resolve) => {
      client.on('reconnect', () => {
        attempts.push(performance.now());
        // After the second attempt the source stretches the delay, as it does on backoff.
        if (attempts.length === 2) setReconnectPeriod(client, 1_500);
        if (attempts.length === 4) resolve();
      });
    });
    await client.endAsync(true);
    const gaps = attempts.slice(1).map((t, i) => t - attempts[i]!);
    // Lower bounds only: a loaded machine can make a gap longer, never shorter.
    assert.ok(gaps[2]! >= 1_400, `gap after the change ${gaps[2]!.toFixed(0)} ms`);
    assert.equal(reconnectPeriod(client), 1_500);
  });
});

describe('mqtt.js socket', () => {
  test('the connection is a socket whose Nagle algorithm can be turned off', async () => {
    const client = mqtt.connect({ host: MQTT_HOST, port: MQTT_PORT, log: () => undefined });
    clients.push(client);
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
    });
    const stream = clientStream(client) as unknown as { setNoDelay?: unknown } | undefined;
    assert.equal(typeof stream?.setNoDelay, 'function', 'client.stream is a net.Socket');
    disableNagle(client);
    await client.endAsync();
  });
});
