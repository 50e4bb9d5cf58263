/**
 * Secrets, end to end with the real forwarder binary and the secure brokers
 * (scripts/secure-stack):
 * - `${VAR}` substitution works on parsed values: a value with newlines, quotes, '#', ': ' and a
 *   literal '${...}' changes no structure and reaches the broker byte for byte.
 * - File-based secrets (mqtt.credentials.password_file, kafka.config_files) are read at load
 *   time with one trailing newline removed; a bad file is a config error naming the path only.
 * - No secret (MQTT password, SASL password, a password file's content, a wrong password tried)
 *   appears on stdout/stderr at LOG_LEVEL=trace, in /metrics, /readyz, /healthz, in
 *   `check-config --print` or in config error messages.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { uniqueName } from '../helpers/env';
import type { ForwarderProcess } from '../helpers/forwarder';
import { forwarderPool, ready } from '../helpers/kit';
import { httpGet, publishAndRead, runCli, useSecureStack } from '../helpers/secure-stack';
import type { SecureStack } from '../helpers/secure-stack';

const stack = useSecureStack();

const pool = forwarderPool();

function tempDir(): string {
  return mkdtempSync(path.join(os.tmpdir(), 'mkf-secrets-'));
}

/** Writes config text as given (not through a YAML serializer: the tests control the text). */
function writeText(text: string): string {
  const file = path.join(tempDir(), 'config.yaml');
  writeFileSync(file, text);
  return file;
}

function writeSecret(content: string): string {
  const file = path.join(tempDir(), 'secret');
  writeFileSync(file, content, { mode: 0o600 });
  return file;
}

const start = pool.start;

const stop = pool.stop;

/** YAML for one mapping `base/#` → topic `base`; `mqtt` and `kafka` are indented blocks. */
function configText(base: string, mqtt: string, kafka: string): string {
  return [
    'mqtt:',
    mqtt,
    "  client_id: ''",
    'kafka:',
    kafka,
    'forwarding:',
    `  - name: sec`,
    `    mqtt: { topic: '${base}/#', qos: 1 }`,
    `    kafka: { topic: ${base} }`,
    'http: { host: 127.0.0.1, port: 0 }',
    'log_level: trace',
    '',
  ].join('\n');
}

async function assertForwarded(s: SecureStack, base: string, n = 3): Promise<void> {
  const values = await publishAndRead(s, base, n);
  assert.equal(values.length, n, `forwarded: ${JSON.stringify(values)}`);
}

/** Fails naming where `secret` (or its first line, for multi-line ones) was found. */
function assertAbsent(haystacks: Record<string, string>, secrets: Record<string, string>): void {
  for (const [secretName, secret] of Object.entries(secrets)) {
    const needles = new Set([secret, secret.split('\n')[0]!, JSON.stringify(secret).slice(1, -1)]);
    for (const [where, text] of Object.entries(haystacks)) {
      for (const needle of needles) {
        if (needle.length < 8) continue;
        assert.ok(!text.includes(needle), `${secretName} appears in ${where}`);
      }
    }
  }
}

async function outputsOf(fwd: ForwarderProcess): Promise<Record<string, string>> {
  const metrics = await httpGet(fwd, '/metrics');
  const ready = await httpGet(fwd, '/readyz');
  const health = await httpGet(fwd, '/healthz');
  return { metrics: metrics.body, readyz: ready.body, healthz: health.body };
}

function logsOf(fwd: ForwarderProcess): Record<string, string> {
  return {
    stdout: fwd.lines.map((l) => JSON.stringify(l)).join('\n'),
    stderr: fwd.stderr.join(''),
  };
}

describe('${VAR} substitution is injection-safe', () => {
  const EVIL =
    'x\nkafka:\n  port: 1\n# not: a comment \'sq\' "dq"\nforwarding: []\n  - {name: injected}';

  test('a value with newlines, quotes, #, ": " changes no structure (check-config --print)', async () => {
    const file = writeText(
      [
        'mqtt:',
        '  client_id: ${EVIL}',
        '  credentials: { username: u, password: "${EVIL}" }',
        'kafka:',
        '  config:',
        "    client.id: '${EVIL}'",
        'forwarding:',
        '  - name: a',
        "    mqtt: { topic: 'a/#' }",
        '    kafka: { topic: a }',
        '',
      ].join('\n'),
    );
    const r = await runCli(['check-config', '--print', '--config', file], { EVIL });
    assert.equal(r.code, 0, r.stderr);
    const cfg = JSON.parse(r.stdout) as {
      mqtt: { client_id: string; credentials: { password: string } };
      kafka: { port: number; config: Record<string, unknown> };
      forwarding: { name: string }[];
    };
    assert.equal(cfg.mqtt.client_id, EVIL, 'the whole value, byte for byte');
    assert.equal(cfg.kafka.config['client.id'], EVIL);
    assert.equal(cfg.kafka.port, 9092, 'no key added by the value');
    assert.deepEqual(
      cfg.forwarding.map((m) => m.name),
      ['a'],
    );
    assert.equal(cfg.mqtt.credentials.password, '<redacted>');
  });

  test('a password with a newline, quotes, #, ": " and a literal ${...} authenticates unchanged', async () => {
    const s = stack();
    assert.match(s.mqtt.trickyPassword, /\n/);
    const base = uniqueName('sec-inject');
    const file = writeText(
      configText(
        base,
        [
          `  host: ${s.mqtt.host}`,
          `  port: ${s.mqtt.ports.plain}`,
          '  credentials:',
          `    username: ${s.mqtt.trickyUser}`,
          '    password: ${MKF_TEST_TRICKY}',
        ].join('\n'),
        [`  bootstrap_server: ${s.kafka.host}`, `  port: ${s.kafka.ports.plaintext}`].join('\n'),
      ),
    );
    const fwd = start(file, { MKF_TEST_TRICKY: s.mqtt.trickyPassword });
    await ready(fwd);
    await assertForwarded(s, base);
    await stop(fwd);
    assertAbsent(logsOf(fwd), { 'the tricky password': s.mqtt.trickyPassword });
  });
});

describe('file-based secrets', () => {
  test('MQTT password_file and Kafka config_files: read at load, trailing newline removed', async () => {
    const s = stack();
    const base = uniqueName('sec-files');
    const mqttFile = writeSecret(`${s.mqtt.password}\n`);
    // Windows line end, as an editor may leave it.
    const saslFile = writeSecret(`${s.kafka.scramPassword}\r\n`);
    const file = writeText(
      configText(
        base,
        [
          `  host: ${s.mqtt.host}`,
          `  port: ${s.mqtt.ports.plain}`,
          `  credentials: { username: ${s.mqtt.user}, password_file: '${mqttFile}' }`,
        ].join('\n'),
        [
          `  bootstrap_server: ${s.kafka.host}`,
          `  port: ${s.kafka.ports.saslPlaintext}`,
          '  config:',
          '    security.protocol: SASL_PLAINTEXT',
          '    sasl.mechanism: SCRAM-SHA-512',
          `    sasl.username: ${s.kafka.scramUser}`,
          '  config_files:',
          `    sasl.password: '${saslFile}'`,
        ].join('\n'),
      ),
    );
    const printed = await runCli(['check-config', '--print', '--config', file]);
    assert.equal(printed.code, 0, printed.stderr);
    const cfg = JSON.parse(printed.stdout) as {
      mqtt: { credentials: Record<string, string> };
      kafka: { config: Record<string, string>; config_files: Record<string, string> };
    };
    assert.equal(cfg.mqtt.credentials['password'], '<redacted>');
    assert.equal(cfg.mqtt.credentials['password_file'], mqttFile, 'the path is shown');
    assert.equal(cfg.kafka.config['sasl.password'], '<redacted>');
    assert.equal(cfg.kafka.config_files['sasl.password'], saslFile);
    assertAbsent(
      { 'check-config --print': printed.stdout + printed.stderr },
      { 'MQTT password': s.mqtt.password, 'SCRAM password': s.kafka.scramPassword },
    );

    const fwd = start(file);
    await ready(fwd);
    await assertForwarded(s, base);
    await stop(fwd);
  });

  interface Case {
    readonly name: string;
    readonly mqtt: (dir: string) => string;
    readonly kafka?: (dir: string) => string;
    readonly error: RegExp;
  }
  const SECRET_CONTENT = `file-content-${randomBytes(8).toString('hex')}`;
  const cases: Case[] = [
    {
      name: 'missing password_file',
      mqtt: (d) => `  credentials: { username: u, password_file: '${d}/missing' }`,
      error: /mqtt\.credentials\.password_file: cannot read .*\/missing: no such file/,
    },
    {
      name: 'password_file is a directory',
      mqtt: (d) => `  credentials: { username: u, password_file: '${d}' }`,
      error: /mqtt\.credentials\.password_file: cannot read .*: not a regular file/,
    },
    {
      name: 'empty password_file',
      mqtt: (d) => {
        writeFileSync(`${d}/empty`, '\n');
        return `  credentials: { username: u, password_file: '${d}/empty' }`;
      },
      error: /mqtt\.credentials\.password_file: .*\/empty is empty/,
    },
    {
      name: 'password_file far too large (a wrong path)',
      mqtt: (d) => {
        writeFileSync(`${d}/big`, `${SECRET_CONTENT}\n`.repeat(5_000));
        return `  credentials: { username: u, password_file: '${d}/big' }`;
      },
      error: /mqtt\.credentials\.password_file: .*\/big is larger than 65536 bytes/,
    },
    {
      name: 'password and password_file both set',
      mqtt: (d) => {
        writeFileSync(`${d}/pw`, SECRET_CONTENT);
        return `  credentials: { username: u, password: '\${MKF_TEST_PW}', password_file: '${d}/pw' }`;
      },
      error: /mqtt\.credentials: set either password or password_file, not both/,
    },
    {
      name: 'neither password nor password_file',
      mqtt: () => '  credentials: { username: u }',
      error: /mqtt\.credentials: password or password_file is required with username/,
    },
    {
      name: 'missing Kafka secret file',
      mqtt: () => '  host: localhost',
      kafka: (d) => `  config_files: { sasl.password: '${d}/nope' }`,
      error: /kafka\.config_files\."sasl\.password": cannot read .*\/nope: no such file/,
    },
    {
      name: 'config_files for a property that is not secret',
      mqtt: () => '  host: localhost',
      kafka: (d) => {
        writeFileSync(`${d}/acks`, 'all');
        return `  config_files: { acks: '${d}/acks' }`;
      },
      error: /kafka\.config_files\.acks: is not a secret property/,
    },
    {
      name: 'a property both in config and in config_files',
      mqtt: () => '  host: localhost',
      kafka: (d) => {
        writeFileSync(`${d}/pw`, SECRET_CONTENT);
        return `  config: { sasl.password: '\${MKF_TEST_PW}' }\n  config_files: { sasl.password: '${d}/pw' }`;
      },
      error: /kafka\.config_files\."sasl\.password": is also set in kafka\.config/,
    },
    {
      name: 'a broken ${ in a secret value',
      mqtt: () => '  credentials: { username: u, password: "${MKF_TEST_PW}-${" }',
      error: /mqtt\.credentials\.password: unterminated "\$\{"/,
    },
  ];

  for (const c of cases) {
    test(`config error, exit 2, path named, no secret shown: ${c.name}`, async () => {
      const dir = tempDir();
      mkdirSync(dir, { recursive: true });
      const kafka = c.kafka?.(dir) ?? '  port: 9092';
      const file = writeText(configText('a', c.mqtt(dir), kafka));
      const pw = `env-secret-${randomBytes(8).toString('hex')}`;
      for (const args of [['check-config'], []]) {
        const r = await runCli([...args, '--config', file], { MKF_TEST_PW: pw });
        assert.equal(r.code, 2, `exit code of ${args.join(' ') || 'run'}: ${r.stderr}`);
        assert.match(r.stderr, c.error);
        assertAbsent(
          { stdout: r.stdout, stderr: r.stderr },
          { 'the file content': SECRET_CONTENT, 'the env secret': pw },
        );
      }
    });
  }
});

describe('secrets never appear in logs (trace), metrics, probes or errors', () => {
  test('a working forwarder with MQTT and SASL passwords, at LOG_LEVEL=trace', async () => {
    const s = stack();
    const base = uniqueName('sec-leak');
    const mqttFile = writeSecret(`${s.mqtt.password}\n`);
    const file = writeText(
      configText(
        base,
        [
          `  host: ${s.mqtt.host}`,
          `  port: ${s.mqtt.ports.plain}`,
          `  credentials: { username: ${s.mqtt.user}, password_file: '${mqttFile}' }`,
        ].join('\n'),
        [
          `  bootstrap_server: ${s.kafka.host}`,
          `  port: ${s.kafka.ports.saslPlaintext}`,
          '  config:',
          '    security.protocol: SASL_PLAINTEXT',
          '    sasl.mechanism: PLAIN',
          `    sasl.username: ${s.kafka.plainUser}`,
          '    sasl.password: ${MKF_TEST_SASL}',
        ].join('\n'),
      ),
    );
    const fwd = start(file, { LOG_LEVEL: 'trace', MKF_TEST_SASL: s.kafka.plainPassword });
    await ready(fwd);
    await assertForwarded(s, base);
    // The periodic debug line (every 5 s): proves the low levels are on, so the search below
    // covers what an operator debugging the forwarder would see.
    await fwd.waitForLog((l) => l.msg === 'stats' && l.level === 20, 10_000, 'debug stats line');
    const http = await outputsOf(fwd);
    await stop(fwd);
    assertAbsent(
      { ...logsOf(fwd), ...http },
      {
        'MQTT password (password_file content)': s.mqtt.password,
        'SASL password': s.kafka.plainPassword,
      },
    );
  });

  test('wrong MQTT and SASL passwords: the errors name neither the tried nor the real ones', async () => {
    const s = stack();
    const base = uniqueName('sec-leak-fail');
    const wrongMqtt = `wrong-mqtt-${randomBytes(8).toString('hex')}`;
    const wrongSasl = `wrong-sasl-${randomBytes(8).toString('hex')}`;
    const file = writeText(
      configText(
        base,
        [
          `  host: ${s.mqtt.host}`,
          `  port: ${s.mqtt.ports.plain}`,
          `  credentials: { username: ${s.mqtt.user}, password: '${wrongMqtt}' }`,
          '  reconnect_max_ms: 2000',
        ].join('\n'),
        [
          `  bootstrap_server: ${s.kafka.host}`,
          `  port: ${s.kafka.ports.saslPlaintext}`,
          '  config:',
          '    security.protocol: SASL_PLAINTEXT',
          '    sasl.mechanism: PLAIN',
          `    sasl.username: ${s.kafka.plainUser}`,
          `    sasl.password: '${wrongSasl}'`,
        ].join('\n'),
      ),
    );
    const fwd = start(file, { LOG_LEVEL: 'trace' });
    await fwd.waitForLog((l) => l['failure'] === 'not_authorised', 15_000, 'mqtt refusal');
    await fwd.waitForLog(
      (l) => /^kafka authentication failed/.test(String(l.msg)),
      15_000,
      'kafka refusal',
    );
    const http = await outputsOf(fwd);
    assert.match(http.readyz, /not ready/);
    await stop(fwd);
    assertAbsent(
      { ...logsOf(fwd), ...http },
      {
        'tried MQTT password': wrongMqtt,
        'tried SASL password': wrongSasl,
        'real MQTT password': s.mqtt.password,
        'real SASL password': s.kafka.plainPassword,
      },
    );
  });
});
