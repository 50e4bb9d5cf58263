/**
 * src/supervisor/sessions.ts probeSessions against the real mosquitto, MQTT 5 and 3.1.1: the
 * probe tells whether the broker holds a session for a client id and leaves the broker as it
 * found it.
 *
 * - no session: present false, and the empty session the probe's own connect created is gone
 *   afterwards (a later connect with clean false gets sessionPresent false);
 * - a session with a subscription and queued QoS 1/2 messages: present true, and a client that
 *   resumes the session afterwards receives every queued message: the probe acknowledged none,
 *   deleted nothing, and (MQTT 5) did not shorten the session's expiry to 0, even when the
 *   config's own session_expiry_s is 0;
 * - a refused port and a server that never answers: `error` set, no throw, within the bound.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import mqtt from 'mqtt';
import type { IClientOptions, MqttClient } from 'mqtt';
import { configSchema } from '../../src/config/schema';
import type { Config } from '../../src/config/schema';
import { probeSessions } from '../../src/supervisor/sessions';
import { MQTT_BROKER, MQTT_HOST, MQTT_PORT, uniqueName } from '../helpers/env';
import { capturedLogger } from '../helpers/fake-pipeline';
import { testConfig } from '../helpers/forwarder';
import { until } from '../helpers/kit';
import { dropSession, publishMany } from '../helpers/mqtt';

const PROTOCOLS = [
  { version: 5, label: 'MQTT 5' },
  { version: 4, label: 'MQTT 3.1.1' },
] as const;
const QUEUED = 5;
/** Long enough to outlive the test, short enough that a test killed half-way leaves nothing. */
const EXPIRY_S = 600;

const sessions: string[] = [];
const clients: MqttClient[] = [];
after(async () => {
  // Only reached with a live client if a test failed half-way.
  await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)));
  for (const s of sessions) await dropSession(s);
});

function mqttConfig(overrides: object): Config['mqtt'] {
  const cfg = testConfig([{ name: 'm', mqtt: { topic: 'unused/#' }, kafka: { topic: 'unused' } }], {
    mqtt: { session_expiry_s: EXPIRY_S, ...overrides },
  });
  return configSchema.parse(cfg).mqtt;
}

function newSession(prefix: string): string {
  const id = uniqueName(prefix);
  sessions.push(id);
  return id;
}

/** The options of a test client that resumes (or creates) the session `clientId`. */
function sessionOptions(clientId: string, protocol: 4 | 5): IClientOptions {
  return {
    host: MQTT_HOST,
    port: MQTT_PORT,
    protocolVersion: protocol,
    clientId,
    clean: false,
    reconnectPeriod: 0,
    connectTimeout: 5_000,
    ...(protocol === 5 && { properties: { sessionExpiryInterval: EXPIRY_S } }),
  };
}

/** A test client of the session `clientId`, clean false; resolves with the CONNACK's flag. */
async function connect(
  clientId: string,
  protocol: 4 | 5,
): Promise<{ client: MqttClient; sessionPresent: boolean }> {
  const client = mqtt.connect(sessionOptions(clientId, protocol));
  clients.push(client);
  const sessionPresent = await new Promise<boolean>((resolve, reject) => {
    client.once('connect', (connack) => resolve(connack.sessionPresent));
    client.once('error', reject);
  });
  return { client, sessionPresent };
}

/** True when the broker holds a session for `clientId` (the check itself keeps one). */
async function sessionPresent(clientId: string, protocol: 4 | 5): Promise<boolean> {
  const { client, sessionPresent } = await connect(clientId, protocol);
  await client.endAsync();
  return sessionPresent;
}

/** A session subscribed to `<id>/q` with QoS `qos`, holding `QUEUED` messages published since. */
async function sessionWithQueue(clientId: string, protocol: 4 | 5, qos: 1 | 2): Promise<void> {
  const { client } = await connect(clientId, protocol);
  await client.subscribeAsync(`${clientId}/q`, { qos });
  await client.endAsync();
  await publishMany({
    count: QUEUED,
    qos,
    protocolVersion: protocol,
    topic: () => `${clientId}/q`,
    payload: (i) => String(i),
  });
}

/** Resumes the session and returns the payloads it receives, once `QUEUED` distinct arrived. */
async function resumeAndReceive(clientId: string, protocol: 4 | 5): Promise<string[]> {
  const received = new Set<string>();
  const client = mqtt.connect(sessionOptions(clientId, protocol));
  clients.push(client);
  // Listening before the CONNACK: the broker sends the queue right after it.
  client.on('message', (_topic, payload) => received.add(payload.toString()));
  const present = await new Promise<boolean>((resolve, reject) => {
    client.once('connect', (connack) => resolve(connack.sessionPresent));
    client.once('error', reject);
  });
  assert.equal(present, true, 'the session is still there after the probe');
  try {
    await until(`${QUEUED} queued messages on ${clientId}`, () => received.size >= QUEUED, {
      timeoutMs: 10_000,
      intervalMs: 20,
    });
  } catch (err) {
    throw new Error(`${String(err)}; received: [${[...received].sort().join(',')}]`);
  } finally {
    await client.endAsync();
  }
  return [...received].sort();
}

const ALL_QUEUED = Array.from({ length: QUEUED }, (_, i) => String(i));

describe(`session probe on ${MQTT_BROKER}`, () => {
  for (const p of PROTOCOLS) {
    test(`${p.label}, no session: present false, and the probe leaves none behind`, async () => {
      const id = newSession(`probe-none-v${p.version}`);
      const { log } = capturedLogger();
      const results = await probeSessions(
        mqttConfig({ client_id: id, protocol_version: p.version }),
        [id],
        log,
      );
      assert.deepEqual(results, [{ clientId: id, present: false }]);
      assert.equal(await sessionPresent(id, p.version), false, 'no session left by the probe');
    });

    for (const qos of [1, 2] as const) {
      test(`${p.label}, a session with ${QUEUED} queued QoS ${qos} messages: present true, all still delivered after two probes`, async (t) => {
        const id = newSession(`probe-q${qos}-v${p.version}`);
        await sessionWithQueue(id, p.version, qos);
        const { log, lines } = capturedLogger();
        const cfg = mqttConfig({ client_id: id, protocol_version: p.version });
        // Twice: a probe at every start must not wear the queue down either.
        for (let run = 0; run < 2; run++) {
          assert.deepEqual(await probeSessions(cfg, [id], log), [{ clientId: id, present: true }]);
        }
        const delivered = lines.map((l) => l['delivered']);
        t.diagnostic(
          `PUBLISH packets the broker sent each probe (none acknowledged): ${delivered.join(', ')}`,
        );
        assert.deepEqual(await resumeAndReceive(id, p.version), ALL_QUEUED);
      });
    }
  }

  test('MQTT 5 with session_expiry_s 0 in the config: an existing session still survives the probe', async () => {
    const id = newSession('probe-exp0');
    await sessionWithQueue(id, 5, 1);
    const { log } = capturedLogger();
    const cfg = mqttConfig({ client_id: id, protocol_version: 5, session_expiry_s: 0 });
    assert.deepEqual(await probeSessions(cfg, [id], log), [{ clientId: id, present: true }]);
    assert.deepEqual(await resumeAndReceive(id, 5), ALL_QUEUED);
  });

  for (const p of PROTOCOLS) {
    test(`${p.label}, several ids at once: each result in the order asked, sessions kept, empty ones removed`, async () => {
      const held = [
        newSession(`probe-many-a-v${p.version}`),
        newSession(`probe-many-b-v${p.version}`),
      ];
      const none = [
        newSession(`probe-many-c-v${p.version}`),
        newSession(`probe-many-d-v${p.version}`),
        newSession(`probe-many-e-v${p.version}`),
      ];
      for (const id of held) await sessionWithQueue(id, p.version, 1);
      const ids = [none[0]!, held[0]!, none[1]!, none[2]!, held[1]!];
      const { log } = capturedLogger();
      const cfg = mqttConfig({ client_id: 'probe-many', protocol_version: p.version });
      const results = await probeSessions(cfg, ids, log, { concurrency: 2 });
      assert.deepEqual(
        results,
        ids.map((clientId) => ({ clientId, present: held.includes(clientId) })),
      );
      for (const id of none) assert.equal(await sessionPresent(id, p.version), false, id);
      for (const id of held) assert.deepEqual(await resumeAndReceive(id, p.version), ALL_QUEUED);
    });
  }
});

describe('session probe without a broker', () => {
  const TIMEOUT_MS = 300;

  test('a refused port: every id gets error, none throws, quickly', async () => {
    // A port that was just free: nothing listens on it.
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, MQTT_HOST, resolve));
    const port = (server.address() as AddressInfo).port;
    await new Promise<void>((resolve) => server.close(() => resolve()));

    const ids = Array.from({ length: 10 }, (_, i) => `probe-refused-${i}`);
    const cfg = mqttConfig({ port, connect_timeout_ms: TIMEOUT_MS, client_id: 'probe-refused' });
    const { log } = capturedLogger();
    const started = Date.now();
    const results = await probeSessions(cfg, ids, log, { concurrency: 4 });
    const elapsed = Date.now() - started;
    assert.deepEqual(
      results.map((r) => r.clientId),
      ids,
    );
    for (const r of results) {
      assert.equal(r.present, false);
      assert.match(r.error ?? '', /ECONNREFUSED/u);
    }
    assert.ok(elapsed < Math.ceil(ids.length / 4) * TIMEOUT_MS, `took ${elapsed} ms`);
  });

  test('a server that never sends CONNACK: every id gets error, within batches × connect timeout', async () => {
    const sockets = new Set<net.Socket>();
    const server = net.createServer((s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => server.listen(0, MQTT_HOST, resolve));
    const port = (server.address() as AddressInfo).port;
    try {
      const ids = Array.from({ length: 10 }, (_, i) => `probe-silent-${i}`);
      const cfg = mqttConfig({ port, connect_timeout_ms: TIMEOUT_MS, client_id: 'probe-silent' });
      const { log } = capturedLogger();
      const started = Date.now();
      const results = await probeSessions(cfg, ids, log, { concurrency: 4 });
      const elapsed = Date.now() - started;
      for (const r of results) {
        assert.equal(r.present, false);
        assert.ok(r.error, `${r.clientId} has an error`);
      }
      // 3 rounds of 4, 4 and 2 probes, each ending at its connect timeout.
      const bound = Math.ceil(ids.length / 4) * TIMEOUT_MS;
      assert.ok(
        elapsed >= bound - 50 && elapsed < bound + 500,
        `took ${elapsed} ms, bound ${bound}`,
      );
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
