/**
 * Kafka security against a real broker (scripts/secure-stack): SASL_PLAINTEXT with PLAIN and with
 * SCRAM-SHA-512 (user created with Kafka's ConfigCommand), SSL with a PEM CA, SSL with client
 * certificates (RSA and EC keys), and SASL_SSL. Wrong credentials or certificates must give an
 * error line within seconds, /readyz not ready, a live process and no retry storm (TCP
 * connections counted through a relay in front of the broker).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import type { TestContext } from 'node:test';
import { uniqueName } from '../helpers/env';
import { testConfig, writeConfig } from '../helpers/forwarder';
import type { LogLine, ForwarderProcess } from '../helpers/forwarder';
import { forwarderPool, ready } from '../helpers/kit';
import { CountingProxy, httpGet, publishAndRead, useSecureStack } from '../helpers/secure-stack';
import type { SecureStack } from '../helpers/secure-stack';

const stack = useSecureStack();

/** From the first connection attempt to the error line; the first attempt fails in < 1 s. */
const ERROR_WITHIN_MS = 5_000;
const START_TIMEOUT_MS = 30_000;
const WINDOW_MS = 10_000;
/**
 * librdkafka opens a new connection every reconnect.backoff.ms / 2 while connect() waits for
 * metadata. With its default of 100 ms a broker refusing our TLS handshake saw ~190 connections
 * in 10 s; the forwarder's 1 s default makes that ~20. A storm fails this bound.
 */
const MAX_ATTEMPTS_IN_WINDOW = 30;

const pool = forwarderPool();

function start(config: Record<string, unknown>, env: NodeJS.ProcessEnv = {}): ForwarderProcess {
  return pool.start(writeConfig(config), env);
}

const stop = pool.stop;

function config(
  s: SecureStack,
  base: string,
  port: number,
  kafka: object,
): Record<string, unknown> {
  return testConfig(
    [{ name: 'sec', mqtt: { topic: `${base}/#`, qos: 1 }, kafka: { topic: base } }],
    {
      mqtt: { host: s.mqtt.host, port: s.mqtt.ports.plain },
      kafka: { bootstrap_server: s.kafka.host, port, ...kafka },
    },
  );
}

async function assertForwards(s: SecureStack, base: string, n = 5): Promise<void> {
  const values = await publishAndRead(s, base, n);
  assert.deepEqual(
    [...values].sort(),
    Array.from({ length: n }, (_, i) => `msg-${i}`),
  );
}

/** Starts a forwarder with this Kafka listener and settings, and checks messages arrive. */
async function forwards(
  port: (s: SecureStack) => number,
  kafka: (s: SecureStack) => object,
  env: NodeJS.ProcessEnv = {},
): Promise<void> {
  const s = stack();
  const base = uniqueName('sec-kafka');
  const fwd = start(config(s, base, port(s), { config: kafka(s) }), env);
  await ready(fwd);
  await assertForwards(s, base);
  await stop(fwd);
}

/**
 * A forwarder whose Kafka connection goes through a counting relay to `brokerPort` and must be
 * refused: the first line matching `matches` must come within ERROR_WITHIN_MS of the first
 * connection attempt, /readyz must say not ready, and the connections in WINDOW_MS must stay
 * bounded.
 */
async function assertRefused(
  t: TestContext,
  brokerPort: number,
  kafka: (s: SecureStack) => object,
  matches: (l: LogLine) => boolean,
  what: string,
): Promise<LogLine> {
  const s = stack();
  const proxy = await CountingProxy.start(brokerPort);
  try {
    const base = uniqueName('sec-kafka-fail');
    const fwd = start(config(s, base, proxy.port, { config: kafka(s) }));
    // Bounded generously: starting node and the worker thread takes seconds on a loaded machine.
    const line = await fwd.waitForLog(matches, START_TIMEOUT_MS, what);
    // Measured from the first attempt on the wire to the line's own timestamp, so the test's
    // scheduling and the process start do not count.
    const first = proxy.connections[0];
    assert.ok(first !== undefined, 'the forwarder connected through the relay');
    const after = Date.parse(String(line['time'])) - first;
    assert.ok(after < ERROR_WITHIN_MS, `${what} ${after} ms after the first attempt`);
    await new Promise((r) => setTimeout(r, WINDOW_MS));
    const attempts = proxy.countBetween(first, first + WINDOW_MS);
    assert.ok(
      attempts <= MAX_ATTEMPTS_IN_WINDOW,
      `${attempts} connections in ${WINDOW_MS} ms (at most ${MAX_ATTEMPTS_IN_WINDOW}): a retry storm`,
    );
    assert.equal(fwd.child.exitCode, null, 'the forwarder stays alive');
    const ready = await httpGet(fwd, '/readyz');
    assert.equal(ready.status, 503, ready.body);
    const detail = JSON.parse(ready.body) as { producersReady: number; mqttSubscribed: boolean };
    assert.equal(detail.producersReady, 0, ready.body);
    assert.ok(
      !fwd.lines.some((l) => l.msg === 'kafka producer connected'),
      'the producer never reported connected',
    );
    // A rate-limited line, not one per connection.
    const lines = fwd.lines.filter(matches).length;
    assert.ok(lines <= 4, `${lines} error lines in ${WINDOW_MS} ms`);
    t.diagnostic(
      `${what}: line ${after} ms after the first attempt, ${attempts} connections in ${WINDOW_MS} ms`,
    );
    await stop(fwd);
    return line;
  } finally {
    await proxy.close();
  }
}

const isAuthError = (l: LogLine): boolean =>
  l.level === 50 && /^kafka authentication failed/.test(String(l.msg));

describe('Kafka SASL_PLAINTEXT', () => {
  test('PLAIN (password through ${VAR}): messages forwarded', async () => {
    await forwards(
      (s) => s.kafka.ports.saslPlaintext,
      (s) => ({
        'security.protocol': 'SASL_PLAINTEXT',
        'sasl.mechanism': 'PLAIN',
        'sasl.username': s.kafka.plainUser,
        'sasl.password': '${MKF_TEST_SASL_PASSWORD}',
      }),
      { MKF_TEST_SASL_PASSWORD: stack().kafka.plainPassword },
    );
  });

  test('SCRAM-SHA-512 (password from kafka.config_files): messages forwarded', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mkf-sec-'));
    const file = path.join(dir, 'sasl-password');
    writeFileSync(file, `${stack().kafka.scramPassword}\n`, { mode: 0o600 });
    const s = stack();
    const base = uniqueName('sec-kafka');
    const cfg = config(s, base, s.kafka.ports.saslPlaintext, {
      config: {
        'security.protocol': 'SASL_PLAINTEXT',
        'sasl.mechanism': 'SCRAM-SHA-512',
        'sasl.username': s.kafka.scramUser,
      },
      config_files: { 'sasl.password': file },
    });
    const fwd = start(cfg);
    await ready(fwd);
    await assertForwards(s, base);
    await stop(fwd);
  });
});

describe('Kafka SSL', () => {
  test('broker certificate verified against a PEM CA: messages forwarded', async () => {
    await forwards(
      (s) => s.kafka.ports.ssl,
      (s) => ({ 'security.protocol': 'SSL', 'ssl.ca.location': s.pki.ca.cert }),
    );
  });

  for (const key of ['client-rsa', 'client-ec'] as const) {
    test(`client certificate (${key === 'client-rsa' ? 'RSA' : 'EC P-256'} key) on a listener that requires one`, async () => {
      await forwards(
        (s) => s.kafka.ports.mtls,
        (s) => ({
          'security.protocol': 'SSL',
          'ssl.ca.location': s.pki.ca.cert,
          'ssl.certificate.location': s.pki[key].cert,
          'ssl.key.location': s.pki[key].key,
        }),
      );
    });
  }

  test('SASL_SSL with SCRAM-SHA-512: TLS and SASL together', async () => {
    await forwards(
      (s) => s.kafka.ports.saslSsl,
      (s) => ({
        'security.protocol': 'SASL_SSL',
        'ssl.ca.location': s.pki.ca.cert,
        'sasl.mechanism': 'SCRAM-SHA-512',
        'sasl.username': s.kafka.scramUser,
        'sasl.password': s.kafka.scramPassword,
      }),
    );
  });
});

// Independent forwarders, relays and time windows: run together to keep the file short.
describe('Kafka refusals: clear error, not ready, no retry storm', { concurrency: 3 }, () => {
  test('wrong PLAIN password: authentication error, not ready, no retry storm', async (t) => {
    const line = await assertRefused(
      t,
      stack().kafka.ports.saslPlaintext,
      (s) => ({
        'security.protocol': 'SASL_PLAINTEXT',
        'sasl.mechanism': 'PLAIN',
        'sasl.username': s.kafka.plainUser,
        'sasl.password': 'not-the-password',
      }),
      isAuthError,
      'authentication error',
    );
    assert.equal(line['code'], 'ERR_KAFKA_AUTH');
    assert.equal(line['kafkaError'], 'ERR__AUTHENTICATION');
    assert.match(String(line.msg), /sasl\.password/);
    assert.ok(!JSON.stringify(line).includes('not-the-password'));
  });

  test('wrong SCRAM-SHA-512 password: authentication error, not ready, no retry storm', async (t) => {
    const line = await assertRefused(
      t,
      stack().kafka.ports.saslPlaintext,
      (s) => ({
        'security.protocol': 'SASL_PLAINTEXT',
        'sasl.mechanism': 'SCRAM-SHA-512',
        'sasl.username': s.kafka.scramUser,
        'sasl.password': 'not-the-password',
      }),
      isAuthError,
      'authentication error',
    );
    assert.equal(line['code'], 'ERR_KAFKA_AUTH');
    assert.equal(line['kafkaError'], 'ERR__AUTHENTICATION');
  });

  test('wrong CA: TLS error, not ready, no retry storm', async (t) => {
    const line = await assertRefused(
      t,
      stack().kafka.ports.ssl,
      (s) => ({ 'security.protocol': 'SSL', 'ssl.ca.location': s.pki['rogue-ca'].cert }),
      isAuthError,
      'TLS error',
    );
    assert.equal(line['code'], 'ERR_KAFKA_AUTH');
    assert.equal(line['kafkaError'], 'ERR__SSL');
    assert.match(String(line.msg), /ssl\.ca\.location/);
  });

  test('listener requiring a client certificate, none given: not ready, no retry storm', async (t) => {
    // librdkafka reports the broker's TLS alert only as a transport failure (its detailed reason
    // goes to its log, which the forwarder does not read), so the line is a warning.
    const line = await assertRefused(
      t,
      stack().kafka.ports.mtls,
      (s) => ({ 'security.protocol': 'SSL', 'ssl.ca.location': s.pki.ca.cert }),
      (l) =>
        Number(l.level) >= 40 && /^kafka (client error|authentication failed)/.test(String(l.msg)),
      'kafka error',
    );
    assert.ok(
      ['ERR_KAFKA_CLIENT', 'ERR_KAFKA_AUTH'].includes(String(line['code'])),
      String(line['code']),
    );
    assert.ok(
      ['ERR__TRANSPORT', 'ERR__SSL'].includes(String(line['kafkaError'])),
      String(line['kafkaError']),
    );
  });
});
