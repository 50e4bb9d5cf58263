/**
 * The CLI as a user meets it: exit codes, one line per config problem, no stack traces,
 * `check-config` without any broker, `--version`, the HTTP endpoints of a running forwarder.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { REPO_ROOT, uniqueName } from '../helpers/env';
import { testConfig, writeConfig } from '../helpers/forwarder';
import { forwarderPool, ready } from '../helpers/kit';

const BIN = path.join(REPO_ROOT, 'bin', 'forwarder.js');

function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('--version prints the package version', () => {
  const pkg = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as {
    version: string;
  };
  const r = cli(['--version']);
  assert.equal(r.code, 0);
  assert.equal(r.stdout.trim(), pkg.version);
});

test("check-config accepts the repository's config.yaml without connecting", () => {
  // Ports nobody listens on: check-config must not try.
  const r = cli(['check-config'], { MQTT_PORT: '1', KAFKA_PORT: '1' });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /config\.yaml: ok \(2 mappings\)/);
});

test('check-config reports every problem on its own line, exit 2, no stack trace', () => {
  const file = writeConfig({
    mqtt: {
      host: 'h',
      port: 70000,
      clientid: 'x',
      tls: { ca_cert: 'ca.pem', client_cert: 'c.pem' },
    },
    kafka: { bootstrap_server: 'k' },
    forwarding: [
      { name: 'a', mqtt: { topic: 'a/#/b' }, kafka: { topic: 'ok' } },
      { name: 'a', mqtt: { topic: 'a/b+' }, kafka: { topic: 'bad topic' } },
    ],
  });
  const r = cli(['check-config', '--config', file]);
  assert.equal(r.code, 2);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  for (const line of [
    'mqtt.port: ',
    'mqtt.clientid: unknown key (did you mean "client_id"?)',
    'mqtt.tls.client_cert: client_cert requires client_key',
    "forwarding[0].mqtt.topic: '#' must be the last level",
    'forwarding[1].name: duplicate mapping name "a" (first used at forwarding[0])',
    'forwarding[1].mqtt.topic: ',
    'forwarding[1].kafka.topic: ',
  ]) {
    assert.ok(r.stderr.includes(line), `stderr lacks ${JSON.stringify(line)}:\n${r.stderr}`);
  }
});

test('check-config --skip-files validates a config whose certificates exist only where it runs', () => {
  const file = writeConfig({
    mqtt: { host: 'h', tls: { ca_cert: '/etc/forwarder/tls/mqtt/ca.crt' } },
    kafka: { bootstrap_server: 'k' },
    forwarding: [{ name: 'a', mqtt: { topic: 'a/#' }, kafka: { topic: 'a' } }],
  });
  const checked = cli(['check-config', '--config', file]);
  assert.equal(checked.code, 2);
  assert.match(
    checked.stderr,
    /mqtt\.tls\.ca_cert: cannot read \/etc\/forwarder\/tls\/mqtt\/ca\.crt/,
  );
  const skipped = cli(['check-config', '--skip-files', '--config', file]);
  assert.equal(skipped.code, 0, skipped.stderr);
  assert.match(skipped.stdout, /: ok \(1 mapping\)/);
});

test('CONFIG_FILE is used, and --config wins over it', () => {
  const good = writeConfig(
    testConfig([{ name: 'x', mqtt: { topic: 'x' }, kafka: { topic: 'x' } }]),
  );
  const missing = path.join(path.dirname(good), 'missing.yaml');
  const viaEnv = cli(['check-config'], { CONFIG_FILE: good });
  assert.equal(viaEnv.code, 0, viaEnv.stderr);
  assert.ok(viaEnv.stdout.startsWith(good));
  const flagWins = cli(['check-config', '--config', missing], { CONFIG_FILE: good });
  assert.equal(flagWins.code, 2);
  assert.match(flagWins.stderr, /missing\.yaml/);
});

test('an unset ${VAR} is named with the path where it is used', () => {
  const file = writeConfig(
    testConfig([{ name: 'x', mqtt: { topic: 'x' }, kafka: { topic: 'x' } }]),
  );
  writeFileSync(
    file,
    `${readFileSync(file, 'utf8')}\n`.replace('client_id: ""', 'client_id: ${MKF_UNSET_VAR}'),
  );
  const r = cli(['check-config', '--config', file], { MKF_UNSET_VAR: undefined });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /mqtt\.client_id: .*MKF_UNSET_VAR/);
});

describe('bad input found by loading: check-config and run both exit 2 before connecting', () => {
  // Nothing listens on port 1: a forwarder that got as far as connecting would show it in its
  // log (stdout) and would not exit by itself.
  const base = (over: { mqtt?: object; kafka?: object; topic?: string }) => ({
    mqtt: { host: '127.0.0.1', port: 1, ...over.mqtt },
    kafka: { bootstrap_server: '127.0.0.1', port: 1, ...over.kafka },
    forwarding: [{ name: 'm', mqtt: { topic: 'a/#' }, kafka: { topic: over.topic ?? 'a' } }],
    http: { host: '127.0.0.1', port: 0 },
  });
  const cases: [string, Record<string, unknown>, string][] = [
    [
      'an unknown librdkafka property',
      base({ kafka: { config: { 'no.such.property': 1 } } }),
      'kafka.config."no.such.property": librdkafka: No such configuration property: "no.such.property"',
    ],
    [
      'an ill-typed librdkafka property',
      base({ kafka: { config: { acks: 'banana' } } }),
      'kafka.config.acks: librdkafka: Invalid value for configuration property "request.required.acks" (got "banana")',
    ],
    [
      'a missing mqtt.tls.ca_cert file',
      base({ mqtt: { tls: { ca_cert: '/nonexistent-mkf-ca.pem' } } }),
      'mqtt.tls.ca_cert: cannot read /nonexistent-mkf-ca.pem: no such file',
    ],
    [
      'a missing ssl.ca.location file',
      base({
        kafka: {
          config: { 'security.protocol': 'SSL', 'ssl.ca.location': '/nonexistent-mkf-ca.pem' },
        },
      }),
      'kafka.config."ssl.ca.location": cannot read /nonexistent-mkf-ca.pem: no such file',
    ],
    [
      'a 260-character Kafka topic',
      base({ topic: 't'.repeat(260) }),
      'forwarding[0].kafka.topic: Kafka topic name is 260 characters long; Kafka allows at most 249',
    ],
  ];
  for (const [what, config, line] of cases) {
    for (const command of ['check-config', 'run']) {
      test(`${command}: ${what}`, () => {
        const file = writeConfig(config);
        const started = Date.now();
        const r = cli([command, '--config', file]);
        const elapsed = Date.now() - started;
        assert.equal(r.code, 2, `exit ${String(r.code)}\n${r.stderr}${r.stdout}`);
        assert.ok(!r.stderr.includes('    at '), `stack trace:\n${r.stderr}`);
        assert.equal(r.stderr, `forwarder: ${file}: invalid configuration:\n  ${line}\n`);
        assert.equal(r.stdout, '', 'nothing logged: no connection was attempted');
        assert.ok(elapsed < 10_000, `took ${elapsed} ms`);
      });
    }
  }
});

const pool = forwarderPool();

test('a running forwarder serves /healthz, /readyz and /metrics, and exits 0 on SIGTERM', async () => {
  const name = uniqueName('cli');
  const fwd = pool.start(
    writeConfig(
      testConfig([{ name: 'probe', mqtt: { topic: `${name}/#` }, kafka: { topic: name } }]),
    ),
  );
  try {
    await ready(fwd);
    const listening = await fwd.waitForLog((l) => l.msg === 'http server listening');
    const base = `http://127.0.0.1:${String(listening['port'])}`;
    const health = await fetch(`${base}/healthz`);
    assert.equal(health.status, 200);
    const readyz = await fetch(`${base}/readyz`);
    assert.equal(readyz.status, 200, await readyz.text());
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.match(metrics, /^mkf_mqtt_connected 1$/m);
    assert.match(metrics, /^mkf_kafka_producers_connected 1$/m);
    assert.match(metrics, /^mkf_inflight_window_limit 1000$/m);
    assert.doesNotMatch(metrics, new RegExp(`topic=`), 'no label by MQTT topic');
  } finally {
    const { code } = await fwd.stop();
    assert.equal(code, 0, fwd.tail());
  }
});
