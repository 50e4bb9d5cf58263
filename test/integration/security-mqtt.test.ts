/**
 * MQTT security against a real mosquitto (scripts/secure-stack): TLS with server verification
 * against mqtt.tls.ca_cert, mutual TLS with RSA and EC client keys, user name and password from
 * a mosquitto password file, TLS and credentials together, hostname verification and its opt-out.
 * Every failure path checks the three things an operator relies on: a clear error line within
 * seconds, /readyz not ready while the process stays up, and no retry storm, counted as TCP
 * connections through a relay in front of the broker.
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
import {
  CountingProxy,
  httpGet,
  publishAndRead,
  runCli,
  useSecureStack,
} from '../helpers/secure-stack';
import type { SecureStack } from '../helpers/secure-stack';

const stack = useSecureStack();

/** Longest time from the first connection attempt to the error line. */
const ERROR_WITHIN_MS = 5_000;
const START_TIMEOUT_MS = 30_000;
/** Window in which connection attempts are counted after the first failure. */
const WINDOW_MS = 11_000;
/**
 * Reconnect settings of the failure tests: a transient failure would be retried after 100, 200,
 * 400, ... ms (9 attempts in the window); a permanent one only every reconnect_max_ms (5 s):
 * at most 3 in the window, 4 with timer slack.
 */
const FAST_RECONNECT = { reconnect_min_ms: 100, reconnect_max_ms: 5_000 };
const MAX_ATTEMPTS_IN_WINDOW = 4;

const pool = forwarderPool();

function start(config: Record<string, unknown>, env: NodeJS.ProcessEnv = {}): ForwarderProcess {
  return pool.start(writeConfig(config), env);
}

const stop = pool.stop;

/** A forwarding config for one topic to the secure Kafka's PLAINTEXT listener. */
function config(s: SecureStack, base: string, mqtt: object): Record<string, unknown> {
  return testConfig(
    [{ name: 'sec', mqtt: { topic: `${base}/#`, qos: 1 }, kafka: { topic: base } }],
    {
      mqtt: { host: s.mqtt.host, ...mqtt },
      kafka: { bootstrap_server: s.kafka.host, port: s.kafka.ports.plaintext },
    },
  );
}

/** Publishes `n` QoS 1 messages anonymously on the plain listener and checks they arrive. */
async function assertForwards(s: SecureStack, base: string, n = 5): Promise<void> {
  const values = await publishAndRead(s, base, n);
  assert.deepEqual(
    [...values].sort(),
    Array.from({ length: n }, (_, i) => `msg-${i}`),
  );
}

async function forwardsWith(mqtt: (s: SecureStack) => object): Promise<ForwarderProcess> {
  const s = stack();
  const base = uniqueName('sec-mqtt');
  const fwd = start(config(s, base, mqtt(s)));
  await ready(fwd);
  await assertForwards(s, base);
  return fwd;
}

function errorLine(pred: (l: LogLine) => boolean): (l: LogLine) => boolean {
  return (l) => l.level === 50 && pred(l);
}

/**
 * Starts a forwarder whose MQTT connection goes through a counting relay to `brokerPort` and
 * must fail permanently; returns the first error line after checking timing, readiness and
 * the number of attempts in WINDOW_MS.
 */
async function assertPermanentFailure(
  t: TestContext,
  brokerPort: number,
  mqtt: (s: SecureStack) => object,
  matches: (l: LogLine) => boolean,
  what: string,
): Promise<{ line: LogLine; fwd: ForwarderProcess }> {
  const s = stack();
  const proxy = await CountingProxy.start(brokerPort);
  try {
    const base = uniqueName('sec-mqtt-fail');
    const fwd = start(
      config(s, base, {
        port: proxy.port,
        ...FAST_RECONNECT,
        connect_timeout_ms: 3_000,
        ...mqtt(s),
      }),
    );
    // Bounded generously: starting node and the worker thread takes seconds on a loaded machine.
    const line = await fwd.waitForLog(errorLine(matches), START_TIMEOUT_MS, what);
    // Measured from the first attempt on the wire to the line's own timestamp, so the test's
    // scheduling and the process start do not count.
    const first = proxy.connections[0];
    assert.ok(first !== undefined, 'the forwarder connected through the relay');
    const errorAfter = Date.parse(String(line['time'])) - first;
    assert.ok(errorAfter < ERROR_WITHIN_MS, `${what} ${errorAfter} ms after the first attempt`);
    await new Promise((r) => setTimeout(r, WINDOW_MS));
    const attempts = proxy.countBetween(first, first + WINDOW_MS);
    assert.ok(
      attempts <= MAX_ATTEMPTS_IN_WINDOW,
      `${attempts} connection attempts in ${WINDOW_MS} ms (at most ${MAX_ATTEMPTS_IN_WINDOW}): a retry storm`,
    );
    assert.ok(attempts >= 2, `still retrying (slowly): ${attempts} attempts in ${WINDOW_MS} ms`);
    assert.equal(fwd.child.exitCode, null, 'the forwarder stays alive');
    const ready = await httpGet(fwd, '/readyz');
    assert.equal(ready.status, 503, ready.body);
    assert.equal((JSON.parse(ready.body) as { mqttConnected: boolean }).mqttConnected, false);
    const errors = fwd.lines.filter(errorLine(matches)).length;
    assert.ok(errors <= attempts, `one error line per attempt at most (${errors} > ${attempts})`);
    t.diagnostic(
      `${what}: error line ${errorAfter} ms after the first attempt, ${attempts} connection attempts in ${WINDOW_MS} ms`,
    );
    return { line, fwd };
  } finally {
    await proxy.close();
  }
}

describe('MQTT connections that must work', () => {
  test('TLS: server certificate verified against ca_cert; messages forwarded', async () => {
    const fwd = await forwardsWith((s) => ({
      port: s.mqtt.ports.tls,
      tls: { ca_cert: s.pki.ca.cert },
    }));
    assert.ok(
      !fwd.lines.some((l) => /verify_hostname/.test(String(l.msg))),
      'no hostname warning by default',
    );
    await stop(fwd);
  });

  test('mutual TLS with an RSA client key', async () => {
    await stop(
      await forwardsWith((s) => ({
        port: s.mqtt.ports.mtls,
        tls: {
          ca_cert: s.pki.ca.cert,
          client_cert: s.pki['client-rsa'].cert,
          client_key: s.pki['client-rsa'].key,
        },
      })),
    );
  });

  test('mutual TLS with an EC (P-256) client key, MQTT 3.1.1', async () => {
    await stop(
      await forwardsWith((s) => ({
        port: s.mqtt.ports.mtls,
        protocol_version: '3.1.1',
        tls: {
          ca_cert: s.pki.ca.cert,
          client_cert: s.pki['client-ec'].cert,
          client_key: s.pki['client-ec'].key,
        },
      })),
    );
  });

  test('user name and password checked against the mosquitto password file', async () => {
    await stop(
      await forwardsWith((s) => ({
        port: s.mqtt.ports.plain,
        credentials: { username: s.mqtt.user, password: s.mqtt.password },
      })),
    );
  });

  test('mTLS and user name/password together (password from a file)', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mkf-sec-'));
    const file = path.join(dir, 'password');
    const fwd = await forwardsWith((s) => {
      writeFileSync(file, `${s.mqtt.password}\n`, { mode: 0o600 });
      return {
        port: s.mqtt.ports.mtls,
        tls: {
          ca_cert: s.pki.ca.cert,
          client_cert: s.pki['client-rsa'].cert,
          client_key: s.pki['client-rsa'].key,
        },
        credentials: { username: s.mqtt.user, password_file: file },
      };
    });
    await stop(fwd);
  });

  test('verify_hostname: false accepts a certificate for another host and logs a warning', async () => {
    const fwd = await forwardsWith((s) => ({
      port: s.mqtt.ports.wrongHost,
      tls: { ca_cert: s.pki.ca.cert, verify_hostname: false },
    }));
    const warning = fwd.lines.find((l) => /verify_hostname is false/.test(String(l.msg)));
    assert.ok(warning, 'warning logged');
    assert.equal(warning.level, 40);
    await stop(fwd);
  });
});

// Independent forwarders, relays and time windows: run together to keep the file short.
describe('MQTT refusals: clear error, not ready, no retry storm', { concurrency: 3 }, () => {
  test('wrong CA: certificate verification failed', async (t) => {
    const s = stack();
    const { line, fwd } = await assertPermanentFailure(
      t,
      s.mqtt.ports.tls,
      () => ({ tls: { ca_cert: s.pki['rogue-ca'].cert } }),
      (l) => l['failure'] === 'tls_verification',
      'certificate verification error',
    );
    assert.match(String(line.msg), /TLS certificate verification failed/);
    assert.match(String(line.msg), /mqtt\.tls\.ca_cert/);
    assert.equal(line['code'], 'ERR_MQTT_CONNECT');
    await stop(fwd);
  });

  test('hostname verification is on by default: a certificate for another host fails', async (t) => {
    const s = stack();
    const { line, fwd } = await assertPermanentFailure(
      t,
      s.mqtt.ports.wrongHost,
      () => ({ tls: { ca_cert: s.pki.ca.cert } }),
      (l) => l['failure'] === 'tls_verification',
      'hostname verification error',
    );
    assert.match(String(line.msg), /TLS certificate verification failed/);
    assert.equal(line['reasonCode'], 'ERR_TLS_CERT_ALTNAME_INVALID');
    await stop(fwd);
  });

  test('mTLS listener, no client certificate: TLS handshake failed', async (t) => {
    const s = stack();
    const { line, fwd } = await assertPermanentFailure(
      t,
      s.mqtt.ports.mtls,
      () => ({ tls: { ca_cert: s.pki.ca.cert } }),
      (l) => l['failure'] === 'tls_handshake',
      'TLS handshake error',
    );
    assert.match(String(line.msg), /TLS handshake failed: .*certificate required/);
    await stop(fwd);
  });

  test('mTLS with a client certificate from an untrusted CA: TLS handshake failed', async (t) => {
    const s = stack();
    const { line, fwd } = await assertPermanentFailure(
      t,
      s.mqtt.ports.mtls,
      () => ({
        tls: {
          ca_cert: s.pki.ca.cert,
          client_cert: s.pki['rogue-client'].cert,
          client_key: s.pki['rogue-client'].key,
        },
      }),
      (l) => l['failure'] === 'tls_handshake',
      'TLS handshake error',
    );
    assert.match(String(line.msg), /TLS handshake failed: .*unknown ca/i);
    await stop(fwd);
  });

  for (const [version, code] of [
    [5, 135],
    ['3.1.1', 5],
  ] as const) {
    test(`wrong password, MQTT ${version}: "not authorised" (CONNACK ${code})`, async (t) => {
      const s = stack();
      const { line, fwd } = await assertPermanentFailure(
        t,
        s.mqtt.ports.plain,
        () => ({
          protocol_version: version,
          credentials: { username: s.mqtt.user, password: 'not-the-password' },
        }),
        (l) => l['failure'] === 'not_authorised',
        'not authorised error',
      );
      assert.match(String(line.msg), /not authorised/);
      assert.equal(line['reasonCode'], code);
      assert.ok(!String(line.msg).includes('not-the-password'), 'the password is not in the error');
      await stop(fwd);
    });
  }
});

describe('config validation of mqtt.tls and mqtt.credentials (real CLI)', () => {
  function checkConfig(mqtt: object): Promise<{ code: number | null; stderr: string }> {
    const file = writeConfig(
      testConfig([{ name: 'a', mqtt: { topic: 'a/#' }, kafka: { topic: 'a' } }], { mqtt }),
    );
    return runCli(['check-config', '--config', file]);
  }

  test('client_cert without client_key is rejected (the reference ignored the cert)', async () => {
    const r = await checkConfig({ tls: { ca_cert: 'ca.pem', client_cert: 'client.pem' } });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /mqtt\.tls\.client_cert: client_cert requires client_key/);
  });

  test('client_key without client_cert is rejected', async () => {
    const r = await checkConfig({ tls: { ca_cert: 'ca.pem', client_key: 'client.key' } });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /mqtt\.tls\.client_key: client_key requires client_cert/);
  });
});
