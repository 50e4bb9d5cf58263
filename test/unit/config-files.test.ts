/**
 * Config checks that look outside the file: librdkafka's verdict on the producer properties,
 * the files the config names, and Kafka topic name limits on every topic a mapping writes to.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ConfigInvalidError } from '../../src/errors';
import { loadConfig, parseConfigText } from '../../src/config/load';
import type { Config } from '../../src/config/schema';

const FORWARDING = `
forwarding:
  - { name: m, mqtt: { topic: 'a/#' }, kafka: { topic: a } }
`;

function parse(text: string, checkFiles = false): Config {
  return parseConfigText(text, 'test.yaml', {}, { checkFiles });
}

function problemsOf(text: string, checkFiles = false): readonly string[] {
  try {
    parse(text, checkFiles);
  } catch (err) {
    assert.ok(err instanceof ConfigInvalidError, `expected ConfigInvalidError, got ${String(err)}`);
    return err.problems;
  }
  assert.fail('expected the config to be rejected');
}

const kafkaConfig = (props: string) => `kafka:\n  config: ${props}\n${FORWARDING}`;

describe('kafka.config checked by librdkafka', () => {
  it('rejects an unknown property, naming it', () => {
    assert.deepEqual(problemsOf(kafkaConfig('{ no.such.property: 1 }')), [
      'kafka.config."no.such.property": librdkafka: No such configuration property: "no.such.property"',
    ]);
  });

  it('rejects ill-typed and out-of-range values, global and topic level', () => {
    assert.deepEqual(problemsOf(kafkaConfig('{ acks: banana }')), [
      'kafka.config.acks: librdkafka: Invalid value for configuration property "request.required.acks" (got "banana")',
    ]);
    assert.deepEqual(problemsOf(kafkaConfig('{ linger.ms: -5 }')), [
      'kafka.config."linger.ms": librdkafka: Configuration property "queue.buffering.max.ms" value -5 is outside allowed range 0..900000',
    ]);
    assert.deepEqual(problemsOf(kafkaConfig('{ message.timeout.ms: -1 }')), [
      'kafka.config."message.timeout.ms": librdkafka: Configuration property "message.timeout.ms" value -1 is outside allowed range 0..2147483647',
    ]);
    assert.deepEqual(problemsOf(kafkaConfig('{ enable.idempotence: maybe }')), [
      'kafka.config."enable.idempotence": librdkafka: Expected bool value for "enable.idempotence": true or false (got "maybe")',
    ]);
  });

  it('rejects a SASL mechanism librdkafka does not implement (it would only fail at connect)', () => {
    assert.deepEqual(
      problemsOf(kafkaConfig('{ security.protocol: SASL_PLAINTEXT, sasl.mechanism: FOO }')),
      [
        'kafka.config."sasl.mechanism": unsupported SASL mechanism "FOO"; librdkafka supports GSSAPI, PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER',
      ],
    );
    // Not read without SASL, so not checked (a reference config may carry a stale one).
    parse(kafkaConfig('{ sasl.mechanism: FOO }'));
    parse(kafkaConfig('{ security.protocol: SASL_SSL, sasl.mechanism: SCRAM-SHA-512 }'));
  });

  it("refuses librdkafka's debug and log_level: its log callback can crash the binding", () => {
    assert.deepEqual(
      problemsOf(kafkaConfig('{ debug: broker, log_level: 7 }')).map((p) => p.split(':')[0]),
      ['kafka.config.debug', 'kafka.config.log_level'],
    );
  });

  it('reports every bad property at once, in the order written', () => {
    assert.deepEqual(
      problemsOf(
        kafkaConfig(
          '{ linger.ms: -5, security.protocol: tls, compression.type: lz4, acks: banana, no.such.property: x }',
        ),
      ),
      [
        'kafka.config."linger.ms": librdkafka: Configuration property "queue.buffering.max.ms" value -5 is outside allowed range 0..900000',
        'kafka.config."security.protocol": librdkafka: Invalid value "tls" for configuration property "security.protocol"',
        'kafka.config.acks: librdkafka: Invalid value for configuration property "request.required.acks" (got "banana")',
        'kafka.config."no.such.property": librdkafka: No such configuration property: "no.such.property"',
      ],
    );
  });

  it('is checked together with the other rules of the second pass, not instead of them', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'forwarder-files-'));
    const text = `mqtt:\n  credentials: { username: u, password_file: ${dir}/missing }\n${kafkaConfig('{ no.such.property: 1 }')}`;
    assert.deepEqual(problemsOf(text), [
      `mqtt.credentials.password_file: cannot read ${dir}/missing: no such file`,
      'kafka.config."no.such.property": librdkafka: No such configuration property: "no.such.property"',
    ]);
  });

  it('never shows the value of a secret property', () => {
    const problems = problemsOf(kafkaConfig('{ my.secret.token: hunter2 }'));
    assert.equal(problems.length, 1);
    assert.match(problems[0] ?? '', /^kafka\.config\."my\.secret\.token": librdkafka: No such/);
    assert.ok(!problems.join('\n').includes('hunter2'));
  });

  it('accepts the properties of the TLS/SASL examples and the forwarder defaults', () => {
    const cfg = parse(
      kafkaConfig(
        '{ security.protocol: SASL_SSL, sasl.mechanism: PLAIN, sasl.username: u, sasl.password: p, ssl.ca.location: missing-is-not-checked-here.pem, linger.ms: 5, compression.type: zstd, acks: 1, enable.idempotence: false, message.timeout.ms: 30000 }',
      ),
    );
    assert.equal(cfg.kafka.config['linger.ms'], 5);
  });

  it('never lets a validation client be garbage-collected (the binding would abort)', () => {
    // A child process: the abort this guards against kills the whole process. 1,000 distinct
    // configs and a small young generation reproduced it every time without the keep-alive.
    const load = path.resolve(__dirname, '..', '..', 'src', 'config', 'load.js');
    const script = `
      const { parseConfigText } = require(${JSON.stringify(load)});
      for (let i = 0; i < 1000; i++) {
        parseConfigText('kafka: { config: { linger.ms: ' + (i % 900) + ', batch.num.messages: ' + (i + 1) + ' } }\\nforwarding: [{ name: m, mqtt: { topic: a }, kafka: { topic: a } }]', 't.yaml', {});
        if (i % 100 === 0) global.gc();
      }
      global.gc();
      let junk = [];
      for (let i = 0; i < 200000; i++) junk.push({ i });
      junk = undefined;
      global.gc();
      process.stdout.write('done');
    `;
    const r = spawnSync(
      process.execPath,
      ['--expose-gc', '--max-semi-space-size=1', '-e', script],
      {
        encoding: 'utf8',
        timeout: 60_000,
      },
    );
    assert.equal(r.status, 0, `exit ${String(r.status)} signal ${String(r.signal)}: ${r.stderr}`);
    assert.equal(r.stdout, 'done');
  });
});

describe('files the config names', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'forwarder-files-'));
  const pem = path.join(dir, 'ca.pem');
  writeFileSync(pem, '-----BEGIN CERTIFICATE-----\n');
  const certDir = path.join(dir, 'certs');
  mkdirSync(certDir);

  const tls = (fields: string) => `mqtt:\n  tls: { ${fields} }\n${FORWARDING}`;

  it('rejects missing TLS files, one line each, with the resolved path of a relative one', () => {
    const relative = path.relative(process.cwd(), path.join(dir, 'client.pem'));
    assert.deepEqual(
      problemsOf(
        tls(
          `ca_cert: /nonexistent.pem, client_cert: ${relative}, client_key: ${path.join(dir, 'k')}`,
        ),
        true,
      ),
      [
        'mqtt.tls.ca_cert: cannot read /nonexistent.pem: no such file',
        `mqtt.tls.client_cert: cannot read ${relative} (${path.join(dir, 'client.pem')}): no such file`,
        `mqtt.tls.client_key: cannot read ${path.join(dir, 'k')}: no such file`,
      ],
    );
  });

  it('rejects a directory and a path through a file', () => {
    assert.deepEqual(problemsOf(tls(`ca_cert: ${certDir}`), true), [
      `mqtt.tls.ca_cert: cannot read ${certDir}: it is a directory`,
    ]);
    assert.deepEqual(problemsOf(tls(`ca_cert: ${pem}/x`), true), [
      `mqtt.tls.ca_cert: cannot read ${pem}/x: a part of the path is not a directory`,
    ]);
  });

  it('accepts readable files', () => {
    const cfg = parse(tls(`ca_cert: ${pem}, client_cert: ${pem}, client_key: ${pem}`), true);
    assert.equal(cfg.mqtt.tls?.ca_cert, pem);
  });

  it('checks librdkafka file properties when security.protocol reads them', () => {
    const props = (p: string) => kafkaConfig(`{ ${p} }`);
    assert.deepEqual(
      problemsOf(
        props(
          'security.protocol: SSL, ssl.ca.location: /nonexistent-ca.pem, ssl.certificate.location: /nonexistent.crt, ssl.key.location: /nonexistent.key',
        ),
        true,
      ),
      [
        'kafka.config."ssl.ca.location": cannot read /nonexistent-ca.pem: no such file',
        'kafka.config."ssl.certificate.location": cannot read /nonexistent.crt: no such file',
        'kafka.config."ssl.key.location": cannot read /nonexistent.key: no such file',
      ],
    );
    assert.deepEqual(
      problemsOf(
        props(
          'security.protocol: sasl_plaintext, sasl.mechanism: GSSAPI, sasl.kerberos.keytab: /nonexistent.keytab',
        ),
        true,
      ),
      ['kafka.config."sasl.kerberos.keytab": cannot read /nonexistent.keytab: no such file'],
    );
  });

  it('leaves file properties alone that librdkafka will not read', () => {
    // PLAINTEXT (the default) reads no ssl.* file; a reference config may carry stale ones.
    parse(kafkaConfig('{ ssl.ca.location: /nonexistent-ca.pem }'), true);
    parse(kafkaConfig('{ security.protocol: SSL, sasl.kerberos.keytab: /nonexistent }'), true);
    // A CA directory and "probe" (librdkafka searches the usual places) are valid CA locations.
    parse(kafkaConfig(`{ security.protocol: SSL, ssl.ca.location: ${certDir} }`), true);
    parse(kafkaConfig('{ security.protocol: SSL, ssl.ca.location: probe }'), true);
  });

  it('are checked by loadConfig, not by parseConfigText unless asked', () => {
    const text = tls('ca_cert: /nonexistent.pem');
    assert.equal(parse(text).mqtt.tls?.ca_cert, '/nonexistent.pem');
    const file = path.join(dir, 'config.yaml');
    writeFileSync(file, text);
    assert.throws(
      () => loadConfig(file, {}),
      (e: unknown) =>
        e instanceof ConfigInvalidError &&
        e.problems.join('\n') === 'mqtt.tls.ca_cert: cannot read /nonexistent.pem: no such file',
    );
  });

  it('substitutes ${VAR} in a path before checking it', () => {
    const file = path.join(dir, 'env.yaml');
    writeFileSync(file, tls('ca_cert: "${MKF_CA_DIR}/ca.pem"'));
    assert.equal(loadConfig(file, { MKF_CA_DIR: dir }).mqtt.tls?.ca_cert, pem);
    assert.throws(
      () => loadConfig(file, { MKF_CA_DIR: '/nonexistent' }),
      (e: unknown) =>
        e instanceof ConfigInvalidError &&
        e.problems.join('\n') === 'mqtt.tls.ca_cert: cannot read /nonexistent/ca.pem: no such file',
    );
  });
});

describe('Kafka topic name limits on every topic a mapping writes to', () => {
  const mapping = (extra: string) =>
    `forwarding:\n  - { name: m, mqtt: { topic: a }, kafka: { topic: a }${extra} }\n`;

  it('rejects a dead_letter_topic longer than 249 characters or with other characters', () => {
    assert.deepEqual(
      problemsOf(mapping(`, on_error: dead_letter, dead_letter_topic: ${'d'.repeat(260)}`)),
      [
        'forwarding[0].dead_letter_topic: Kafka topic name is 260 characters long; Kafka allows at most 249',
      ],
    );
    assert.deepEqual(problemsOf(mapping(', on_error: dead_letter, dead_letter_topic: "dl q"')), [
      `forwarding[0].dead_letter_topic: Kafka topic names may only contain ASCII letters, digits, '.', '_' and '-' (got "dl q", which contains " ")`,
    ]);
  });

  it('rejects a 260-character kafka.topic and accepts 249', () => {
    assert.deepEqual(
      problemsOf(
        `forwarding:\n  - { name: m, mqtt: { topic: a }, kafka: { topic: ${'t'.repeat(260)} } }\n`,
      ),
      [
        'forwarding[0].kafka.topic: Kafka topic name is 260 characters long; Kafka allows at most 249',
      ],
    );
    parse(mapping(`, on_error: dead_letter, dead_letter_topic: ${'d'.repeat(249)}`));
  });
});
