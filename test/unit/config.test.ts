import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ConfigFileError, ConfigInvalidError } from '../../src/errors';
import { loadConfig, parseConfigText, resolveConfigPath } from '../../src/config/load';
import { substituteString } from '../../src/config/env';
import type { Env } from '../../src/config/env';
import type { Config } from '../../src/config/schema';

// The example from the reference service's README, "Configuration" section, with its
// placeholder-only tls/credentials blocks left out (they are covered by the variants below).
const REFERENCE_EXAMPLE = `
mqtt:
  host: localhost # Host/DNS name of the MQTT broker
  port: 1883 # Port of the MQTT broker
  client_id: 'forwarding-service-1' # Client-ID to use, if not specified a clean session will be used
kafka:
  bootstrap_server: localhost # Host/DNS name of the kafka server
  port: 9092 # Port of the kafk server
  config: {}  # Key-Value pairs of extra config to supply to the Kafka Producer
forwarding: # List of forwardings
  - name: demo # A unique name
    mqtt:
      topic: 'demo/#' # MQTT topic to subscribe to, can be a wildcard
    kafka:
      topic: demo_data # Kafka topic to send data to
    wrap_as_json: false # Should the payload be wrapped in a json object, optional, defaults to false
`;

// From the reference README's helm quickstart.
const REFERENCE_HELM_EXAMPLE = `
mqtt:
  host: mqtt.default.svc.cluster.local  # DNS name of your mqtt broker
  port: 1883
  client_id: 'kafka-forwarding-service-1'
kafka:
  bootstrap_server: kafka.default.svc.cluster.local  # DNS name of your kafka broker
  port: 9092
forwarding:
  - name: foobar
    mqtt:
      topic: foo/bar/#
    kafka:
      topic: foobar
    wrap_as_json: false
`;

// The reference README's "TLS" and "Authentication" sections combined into one file.
const REFERENCE_TLS_AND_AUTH = `
mqtt:
  host: localhost
  port: 8883
  client_id: 'forwarding-service-1'
  tls:
    ca_cert: mqtt-ca.cert.pem
    client_key: mqtt-client.cert.pem # Optional, only if client cert authentication is needed
    client_cert: mqtt-client.key.pem # Optional, only if client cert authentication is needed
  credentials:
    username: forwardinguser
    password: supersecretpassword
kafka:
  bootstrap_server: localhost
  port: 9093
  config:
    security.protocol: SASL_SSL
    sasl.mechanism: PLAIN
    ssl.ca.location: kafka/ca.cert.pem
    sasl.username: foobar
    sasl.password: foopassword
forwarding:
  - name: demo
    mqtt:
      topic: 'demo/#'
    kafka:
      topic: demo_data
`;

const MINIMAL_FORWARDING = `
forwarding:
  - name: demo
    mqtt: { topic: 'demo/#' }
    kafka: { topic: demo_data }
`;

function parse(text: string, env: Env = {}): Config {
  return parseConfigText(text, 'test.yaml', env);
}

/** The problems of the ConfigInvalidError that parsing `text` must throw. */
function problemsOf(text: string, env: Env = {}): readonly string[] {
  try {
    parse(text, env);
  } catch (err) {
    assert.ok(err instanceof ConfigInvalidError, `expected ConfigInvalidError, got ${String(err)}`);
    assert.equal(err.code, 'ERR_CONFIG_INVALID');
    return err.problems;
  }
  assert.fail('expected the config to be rejected');
}

/** A config whose first mapping has the given MQTT filter and Kafka topic. */
function withTopics(filter: string, kafkaTopic = 'out'): string {
  return `
forwarding:
  - name: m
    mqtt: { topic: ${JSON.stringify(filter)} }
    kafka: { topic: ${JSON.stringify(kafkaTopic)} }
`;
}

describe('reference compatibility', () => {
  it('accepts the README example unchanged, with the same meaning', () => {
    const cfg = parse(REFERENCE_EXAMPLE);
    assert.equal(cfg.mqtt.host, 'localhost');
    assert.equal(cfg.mqtt.port, 1883);
    assert.equal(cfg.mqtt.client_id, 'forwarding-service-1');
    assert.equal(cfg.mqtt.tls, undefined);
    assert.equal(cfg.mqtt.credentials, undefined);
    assert.equal(cfg.kafka.bootstrap_server, 'localhost');
    assert.equal(cfg.kafka.port, 9092);
    assert.deepEqual(cfg.kafka.config, {});
    assert.deepEqual(cfg.forwarding, [
      {
        name: 'demo',
        mqtt: { topic: 'demo/#', qos: 2 },
        kafka: { topic: 'demo_data' },
        wrap_as_json: false,
        // The reference stalls forever on a refused message; ours stops visibly (documented).
        on_error: 'stop',
      },
    ]);
  });

  it('accepts the helm quickstart example', () => {
    const cfg = parse(REFERENCE_HELM_EXAMPLE);
    assert.equal(cfg.mqtt.host, 'mqtt.default.svc.cluster.local');
    assert.equal(cfg.kafka.bootstrap_server, 'kafka.default.svc.cluster.local');
    assert.equal(cfg.forwarding[0]?.mqtt.topic, 'foo/bar/#');
  });

  it('accepts the TLS and authentication examples', () => {
    const cfg = parse(REFERENCE_TLS_AND_AUTH);
    assert.deepEqual(cfg.mqtt.tls, {
      ca_cert: 'mqtt-ca.cert.pem',
      client_key: 'mqtt-client.cert.pem',
      client_cert: 'mqtt-client.key.pem',
      verify_hostname: true,
    });
    assert.deepEqual(cfg.mqtt.credentials, {
      username: 'forwardinguser',
      password: 'supersecretpassword',
    });
    assert.deepEqual(cfg.kafka.config, {
      'security.protocol': 'SASL_SSL',
      'sasl.mechanism': 'PLAIN',
      'ssl.ca.location': 'kafka/ca.cert.pem',
      'sasl.username': 'foobar',
      'sasl.password': 'foopassword',
    });
  });

  it('accepts tls with only ca_cert', () => {
    const cfg = parse(`mqtt:\n  tls:\n    ca_cert: ca.pem\n${MINIMAL_FORWARDING}`);
    assert.deepEqual(cfg.mqtt.tls, { ca_cert: 'ca.pem', verify_hostname: true });
  });

  it("keeps client_id '' (clean session) and defaults to it when absent", () => {
    assert.equal(parse(`mqtt:\n  client_id: ''\n${MINIMAL_FORWARDING}`).mqtt.client_id, '');
    assert.equal(parse(MINIMAL_FORWARDING).mqtt.client_id, '');
  });
});

describe('defaults', () => {
  it('fills every optional field', () => {
    const cfg = parse(MINIMAL_FORWARDING);
    assert.deepEqual(cfg.mqtt, {
      host: 'localhost',
      port: 1883,
      client_id: '',
      protocol_version: 5,
      keepalive_s: 30,
      session_expiry_s: 4294967295,
      connect_timeout_ms: 10000,
      reconnect_min_ms: 500,
      reconnect_max_ms: 30000,
      inflight_window: 1000,
      max_payload_bytes: 0,
    });
    assert.deepEqual(cfg.kafka, { bootstrap_server: 'localhost', port: 9092, config: {} });
    assert.equal(cfg.dispatch.workers, 1);
    assert.equal(cfg.dispatch.batch_size, 1000);
    assert.equal(cfg.dispatch.linger_ms, 1);
    assert.equal(cfg.dispatch.batches_per_worker, 4);
    assert.equal(cfg.dispatch.kafka_connect_timeout_ms, 5000);
    assert.equal(cfg.log_level, 'info');
    assert.equal(cfg.shutdown_timeout_ms, 10000);
    assert.equal(cfg.forwarding[0]?.mqtt.qos, 2);
    assert.equal(cfg.forwarding[0]?.wrap_as_json, false);
  });

  it('fills the rest of a partly given dispatch section', () => {
    const cfg = parse(`dispatch:\n  workers: 0\n${MINIMAL_FORWARDING}`);
    assert.equal(cfg.dispatch.workers, 0);
    assert.equal(cfg.dispatch.batch_size, 1000);
  });
});

describe('protocol_version', () => {
  const version = (v: string) => parse(`mqtt:\n  protocol_version: ${v}\n${MINIMAL_FORWARDING}`);

  it("normalizes '3.1.1' and 4 to 4, and 5 to 5", () => {
    assert.equal(version("'3.1.1'").mqtt.protocol_version, 4);
    assert.equal(version('3.1.1').mqtt.protocol_version, 4); // plain scalar: a string in YAML
    assert.equal(version('4').mqtt.protocol_version, 4);
    assert.equal(version("'4'").mqtt.protocol_version, 4);
    assert.equal(version('5').mqtt.protocol_version, 5);
    assert.equal(version("'5'").mqtt.protocol_version, 5);
  });

  it('rejects 3.1 (a YAML number) and other values', () => {
    assert.deepEqual(problemsOf(`mqtt:\n  protocol_version: 3.1\n${MINIMAL_FORWARDING}`), [
      "mqtt.protocol_version: must be 5 (MQTT 5) or '3.1.1' (MQTT 3.1.1, also written 4) (got the number 3.1: MQTT 3.1 is not supported; write '3.1.1')",
    ]);
    assert.deepEqual(problemsOf(`mqtt:\n  protocol_version: 3\n${MINIMAL_FORWARDING}`), [
      "mqtt.protocol_version: must be 5 (MQTT 5) or '3.1.1' (MQTT 3.1.1, also written 4) (got 3)",
    ]);
  });
});

describe('environment substitution', () => {
  it('substitutes ${NAME} inside a value', () => {
    const cfg = parse(`mqtt:\n  host: mqtt-\${ZONE}.example\n${MINIMAL_FORWARDING}`, {
      ZONE: 'eu',
    });
    assert.equal(cfg.mqtt.host, 'mqtt-eu.example');
  });

  it('uses the default of ${NAME:-default} when NAME is unset or empty, the value otherwise', () => {
    const text = `mqtt:\n  host: \${MQTT_HOST:-broker.local}\n${MINIMAL_FORWARDING}`;
    assert.equal(parse(text, {}).mqtt.host, 'broker.local');
    assert.equal(parse(text, { MQTT_HOST: '' }).mqtt.host, 'broker.local');
    assert.equal(parse(text, { MQTT_HOST: 'b2' }).mqtt.host, 'b2');
  });

  it('turns $${NAME} into the literal text ${NAME}', () => {
    const cfg = parse(`mqtt:\n  client_id: 'a$\${NAME}b'\n${MINIMAL_FORWARDING}`, { NAME: 'x' });
    assert.equal(cfg.mqtt.client_id, 'a${NAME}b');
  });

  it('reports an unset variable with its name and the path where it is used', () => {
    const text = `kafka:\n  config:\n    sasl.password: \${KAFKA_PASS}\n${MINIMAL_FORWARDING}`;
    assert.deepEqual(problemsOf(text), [
      'kafka.config."sasl.password": environment variable KAFKA_PASS is not set',
    ]);
  });

  it('reports every unset variable, not just the first', () => {
    const text = `mqtt:\n  host: \${A}\n  credentials: { username: '\${B}', password: '\${C}' }\n${MINIMAL_FORWARDING}`;
    assert.deepEqual(problemsOf(text, { B: 'user' }), [
      'mqtt.host: environment variable A is not set',
      'mqtt.credentials.password: environment variable C is not set',
    ]);
  });

  it('reports malformed references', () => {
    assert.deepEqual(problemsOf(`mqtt:\n  host: 'a\${b c}'\n${MINIMAL_FORWARDING}`), [
      `mqtt.host: invalid variable reference "\${b c}": expected \${NAME} or \${NAME:-default} with NAME made of letters, digits and '_' (write "$\${" for a literal "\${")`,
    ]);
    assert.deepEqual(problemsOf(`mqtt:\n  host: 'a\${B'\n${MINIMAL_FORWARDING}`), [
      `mqtt.host: unterminated "\${" in "a\${B" (write "$\${" for a literal "\${")`,
    ]);
  });

  it('does not echo a secret value in a reference error', () => {
    const text = `mqtt:\n  credentials: { username: u, password: 'pa\${ss' }\n${MINIMAL_FORWARDING}`;
    assert.deepEqual(problemsOf(text), [
      'mqtt.credentials.password: unterminated "${" (write "$${" for a literal "${")',
    ]);
  });

  it('cannot change the structure of the document (injection safety)', () => {
    const evil = 'x"\n  port: 1\n# not a comment: y\'\nforwarding: []';
    const cfg = parse(
      `mqtt:\n  client_id: \${ID}\n  credentials:\n    username: u\n    password: "\${PASS}"\n${MINIMAL_FORWARDING}`,
      { ID: evil, PASS: 'p#w: "\'' },
    );
    assert.equal(cfg.mqtt.client_id, evil);
    assert.equal(cfg.mqtt.credentials?.password, 'p#w: "\'');
    assert.equal(cfg.mqtt.port, 1883);
    assert.equal(cfg.forwarding.length, 1);
  });

  it('does not expand references inside substituted values', () => {
    const cfg = parse(`mqtt:\n  client_id: \${ID}\n${MINIMAL_FORWARDING}`, {
      ID: '${SECRET}',
      SECRET: 'leaked',
    });
    assert.equal(cfg.mqtt.client_id, '${SECRET}');
  });

  it('accepts a substituted number in a number field and a substituted boolean', () => {
    const text = `mqtt:\n  port: \${MQTT_PORT}\n  tls:\n    ca_cert: ca.pem\n    verify_hostname: \${VERIFY}\nforwarding:\n  - name: demo\n    mqtt: { topic: 'demo/#', qos: '\${QOS}' }\n    kafka: { topic: demo_data }\n    wrap_as_json: \${WRAP:-true}\n`;
    const cfg = parse(text, { MQTT_PORT: '1884', VERIFY: 'false', QOS: '1' });
    assert.equal(cfg.mqtt.port, 1884);
    assert.equal(cfg.mqtt.tls?.verify_hostname, false);
    assert.equal(cfg.forwarding[0]?.mqtt.qos, 1);
    assert.equal(cfg.forwarding[0]?.wrap_as_json, true);
  });

  it("substitutes processes as a number, and 'auto' as the word (a number-or-word field)", () => {
    const text = `processes: \${P:-1}\n${MINIMAL_FORWARDING}`;
    assert.equal(parse(text, { P: '4' }).processes, 4);
    assert.equal(parse(text, { P: 'auto' }).processes, 'auto');
    assert.equal(parse(text, {}).processes, 1);
  });

  it('keeps numeric-looking substitutions as strings in string fields', () => {
    const cfg = parse(
      `mqtt:\n  client_id: \${ID}\n  credentials: { username: u, password: '\${PW}' }\nkafka:\n  config:\n    linger.ms: \${LINGER}\n${MINIMAL_FORWARDING}`,
      { ID: '0042', PW: '12345', LINGER: '5' },
    );
    assert.equal(cfg.mqtt.client_id, '0042');
    assert.equal(cfg.mqtt.credentials?.password, '12345');
    assert.equal(cfg.kafka.config['linger.ms'], '5');
  });

  it('does not treat an empty or partly numeric substitution as a number', () => {
    const text = `mqtt:\n  port: \${MQTT_PORT}\n${MINIMAL_FORWARDING}`;
    assert.deepEqual(problemsOf(text, { MQTT_PORT: '' }), [
      'mqtt.port: expected an integer, got "" (substituted from "${MQTT_PORT}")',
    ]);
    assert.deepEqual(problemsOf(text, { MQTT_PORT: '1883x' }), [
      'mqtt.port: expected an integer, got "1883x" (substituted from "${MQTT_PORT}")',
    ]);
  });

  it('leaves keys alone', () => {
    // The key stays as written: librdkafka, which checks every property, names it unchanged.
    assert.deepEqual(
      problemsOf(`kafka:\n  config:\n    \${X}: 1\n${MINIMAL_FORWARDING}`, { X: 'y' }),
      ['kafka.config."${X}": librdkafka: No such configuration property: "${X}"'],
    );
  });

  it('substituteString handles several references in one value', () => {
    assert.deepEqual(substituteString('${A}:${B:-2}/$${C}', { A: '1' }), {
      value: '1:2/${C}',
      substituted: true,
      errors: [],
    });
  });
});

describe('unknown keys', () => {
  it('names the closest known key', () => {
    assert.deepEqual(problemsOf(`mqtt:\n  clientid: x\n${MINIMAL_FORWARDING}`), [
      'mqtt.clientid: unknown key (did you mean "client_id"?)',
    ]);
    assert.deepEqual(problemsOf(`${MINIMAL_FORWARDING}    wrap_as_jsn: true\n`), [
      'forwarding[0].wrap_as_jsn: unknown key (did you mean "wrap_as_json"?)',
    ]);
  });

  it('lists the known keys when nothing is close', () => {
    assert.deepEqual(problemsOf(`mqtt:\n  something_else: 1\n${MINIMAL_FORWARDING}`), [
      'mqtt.something_else: unknown key (expected one of: host, port, client_id, protocol_version, keepalive_s, session_expiry_s, connect_timeout_ms, reconnect_min_ms, reconnect_max_ms, inflight_window, max_payload_bytes, tls, credentials)',
    ]);
  });

  it('treats __proto__ as an ordinary unknown key', () => {
    assert.deepEqual(
      problemsOf(
        `kafka:\n  __proto__: { port: 1 }\n  config: { __proto__: x }\n${MINIMAL_FORWARDING}`,
      ),
      [
        'kafka.__proto__: unknown key (expected one of: bootstrap_server, port, config, config_files)',
      ],
    );
  });

  it('reports a misspelt top-level section', () => {
    assert.deepEqual(problemsOf(`Kafka: {}\n${MINIMAL_FORWARDING}`), [
      'Kafka: unknown key (did you mean "kafka"?)',
    ]);
  });
});

describe('field rules', () => {
  it('rejects ports 0 and 70000', () => {
    assert.deepEqual(problemsOf(`mqtt:\n  port: 0\n${MINIMAL_FORWARDING}`), [
      'mqtt.port: must be at least 1 (got 0)',
    ]);
    assert.deepEqual(problemsOf(`kafka:\n  port: 70000\n${MINIMAL_FORWARDING}`), [
      'kafka.port: must be at most 65535 (got 70000)',
    ]);
  });

  it('rejects a fractional integer and a quoted number', () => {
    assert.deepEqual(problemsOf(`mqtt:\n  keepalive_s: 1.5\n${MINIMAL_FORWARDING}`), [
      'mqtt.keepalive_s: expected an integer, got 1.5',
    ]);
    assert.deepEqual(problemsOf(`mqtt:\n  port: '1883'\n${MINIMAL_FORWARDING}`), [
      'mqtt.port: expected an integer, got "1883"; remove the quotes',
    ]);
  });

  it('reports missing required keys and an empty forwarding list', () => {
    assert.deepEqual(problemsOf('mqtt: {}\n'), ['forwarding: required key is missing']);
    assert.deepEqual(problemsOf('forwarding: []\n'), ['forwarding: must have at least 1 entry']);
    assert.deepEqual(problemsOf(`forwarding:\n  - name: a\n    mqtt: { topic: x }\n`), [
      'forwarding[0].kafka: required key is missing',
    ]);
  });

  it('explains null where a mapping is expected', () => {
    assert.deepEqual(problemsOf(`kafka:\n  config:\n${MINIMAL_FORWARDING}`), [
      'kafka.config: expected a mapping, got an empty value; write {} for an empty mapping',
    ]);
  });

  it('rejects kafka.config values that are not scalars', () => {
    assert.deepEqual(problemsOf(`kafka:\n  config:\n    linger.ms: [1]\n${MINIMAL_FORWARDING}`), [
      'kafka.config."linger.ms": expected a string, a number or a boolean, got a list',
    ]);
  });

  it('suggests the closest enum value', () => {
    assert.deepEqual(problemsOf(`log_level: warning\n${MINIMAL_FORWARDING}`), [
      'log_level: must be one of "fatal", "error", "warn", "info", "debug", "trace" or "silent" (got "warning"; did you mean "warn"?)',
    ]);
  });

  it('hides secret values in messages', () => {
    const text = `mqtt:\n  credentials: { username: u, password: 12345 }\nkafka:\n  config:\n    sasl.password: [x]\n${MINIMAL_FORWARDING}`;
    assert.deepEqual(problemsOf(text), [
      'mqtt.credentials.password: expected a string, got a number (value hidden)',
      'kafka.config."sasl.password": expected a string, a number or a boolean, got a list',
    ]);
  });

  it('rejects an empty file', () => {
    assert.deepEqual(problemsOf(''), [
      '(top level): config test.yaml is empty; it needs at least a forwarding list',
    ]);
  });
});

describe('MQTT topic filters', () => {
  const cases: [string, string][] = [
    ['', 'topic filter must not be empty'],
    ['a/\u0000', 'topic filter must not contain the NUL character (got "a/\\u0000")'],
    ['a/#/b', `'#' must be the last level of a filter (got "a/#/b")`],
    ['#/a', `'#' must be the last level of a filter (got "#/a")`],
    ['a/b#', `'#' must occupy a whole level (got "a/b#")`],
    ['a/b+', `'+' must occupy a whole level (got "a/b+")`],
    ['+a/b', `'+' must occupy a whole level (got "+a/b")`],
    ['$share/g', 'a shared subscription is $share/<group>/<filter> (got "$share/g")'],
    ['$share//a', 'a shared subscription is $share/<group>/<filter> (got "$share//a")'],
    [
      '$share/g+/a',
      'the group name of a shared subscription must not contain wildcards (got "$share/g+/a")',
    ],
    ['$share/g/a/#/b', `'#' must be the last level of a filter (got "$share/g/a/#/b")`],
    [
      'a/\ud800',
      'topic filter contains an unpaired UTF-16 surrogate, which has no UTF-8 encoding (got "a/\\ud800")',
    ],
  ];
  for (const [filter, message] of cases) {
    it(`rejects ${JSON.stringify(filter)}`, () => {
      assert.deepEqual(problemsOf(withTopics(filter)), [`forwarding[0].mqtt.topic: ${message}`]);
    });
  }

  it('rejects a filter longer than 65535 bytes in UTF-8', () => {
    const filter = 'ä'.repeat(32768); // 2 bytes each
    assert.deepEqual(problemsOf(withTopics(filter)), [
      'forwarding[0].mqtt.topic: topic filter is 65536 bytes in UTF-8; MQTT allows at most 65535',
    ]);
  });

  it('accepts valid filters', () => {
    for (const filter of [
      '#',
      '+',
      'a/+/b',
      'a/#',
      '+/+',
      '/',
      'a//b',
      '$SYS/#',
      'ä/€',
      '$share/g/a/#',
    ]) {
      assert.equal(parse(withTopics(filter)).forwarding[0]?.mqtt.topic, filter);
    }
  });
});

describe('Kafka topic names', () => {
  const cases: [string, string][] = [
    ['', 'Kafka topic name must not be empty'],
    ['.', '"." and ".." are not valid Kafka topic names (got ".")'],
    ['..', '"." and ".." are not valid Kafka topic names (got "..")'],
    ['a'.repeat(250), 'Kafka topic name is 250 characters long; Kafka allows at most 249'],
    [
      'a b',
      `Kafka topic names may only contain ASCII letters, digits, '.', '_' and '-' (got "a b", which contains " ")`,
    ],
    [
      'a/b',
      `Kafka topic names may only contain ASCII letters, digits, '.', '_' and '-' (got "a/b", which contains "/")`,
    ],
    [
      'tö',
      `Kafka topic names may only contain ASCII letters, digits, '.', '_' and '-' (got "tö", which contains "ö")`,
    ],
  ];
  for (const [name, message] of cases) {
    it(`rejects ${JSON.stringify(name.length > 20 ? `${name.slice(0, 5)}…` : name)}`, () => {
      assert.deepEqual(problemsOf(withTopics('a', name)), [
        `forwarding[0].kafka.topic: ${message}`,
      ]);
    });
  }

  it('accepts valid names', () => {
    for (const name of ['a', 'demo_data', 'a.b-c_D9', '...', 'a'.repeat(249)]) {
      assert.equal(parse(withTopics('a', name)).forwarding[0]?.kafka.topic, name);
    }
  });
});

describe('rules spanning fields', () => {
  it('rejects client_cert without client_key and the reverse', () => {
    assert.deepEqual(
      problemsOf(`mqtt:\n  tls: { ca_cert: ca.pem, client_cert: c.pem }\n${MINIMAL_FORWARDING}`),
      ['mqtt.tls.client_cert: client_cert requires client_key (mutual TLS needs both)'],
    );
    assert.deepEqual(
      problemsOf(`mqtt:\n  tls: { ca_cert: ca.pem, client_key: k.pem }\n${MINIMAL_FORWARDING}`),
      ['mqtt.tls.client_key: client_key requires client_cert (mutual TLS needs both)'],
    );
  });

  it('rejects tls without ca_cert', () => {
    assert.deepEqual(
      problemsOf(`mqtt:\n  tls: { client_cert: c, client_key: k }\n${MINIMAL_FORWARDING}`),
      ['mqtt.tls.ca_cert: required key is missing'],
    );
  });

  it('rejects duplicate mapping names', () => {
    const text = `
forwarding:
  - { name: demo, mqtt: { topic: a }, kafka: { topic: a } }
  - { name: other, mqtt: { topic: b }, kafka: { topic: b } }
  - { name: demo, mqtt: { topic: c }, kafka: { topic: c } }
`;
    assert.deepEqual(problemsOf(text), [
      'forwarding[2].name: duplicate mapping name "demo" (first used at forwarding[0])',
    ]);
  });

  it('rejects reconnect_min_ms above reconnect_max_ms', () => {
    const text = `mqtt:\n  reconnect_min_ms: 5000\n  reconnect_max_ms: 1000\n${MINIMAL_FORWARDING}`;
    assert.deepEqual(problemsOf(text), [
      'mqtt.reconnect_min_ms: reconnect_min_ms must not exceed reconnect_max_ms (got 5000 > 1000)',
    ]);
  });

  it('rejects enable.idempotence=true with acks other than all', () => {
    const config = (props: string) => `kafka:\n  config:\n${props}${MINIMAL_FORWARDING}`;
    assert.deepEqual(problemsOf(config('    enable.idempotence: true\n    acks: 1\n')), [
      'kafka.config: enable.idempotence=true requires acks=all (got acks=1)',
    ]);
    assert.deepEqual(
      problemsOf(config("    enable.idempotence: 'true'\n    request.required.acks: 0\n")),
      ['kafka.config: enable.idempotence=true requires acks=all (got acks=0)'],
    );
    // Fine: acks=all in either spelling, or idempotence off, or left to the defaults.
    parse(config('    enable.idempotence: true\n    acks: -1\n'));
    parse(config('    enable.idempotence: true\n    acks: all\n'));
    parse(config('    enable.idempotence: false\n    acks: 1\n'));
    parse(config('    acks: 1\n'));
  });

  it('rejects setting both names of an aliased property', () => {
    const text = `kafka:\n  config:\n    acks: all\n    request.required.acks: all\n${MINIMAL_FORWARDING}`;
    assert.deepEqual(problemsOf(text), [
      'kafka.config: acks and request.required.acks are two names of one property; set only one',
    ]);
  });

  it('rejects settings that would stop delivery reports', () => {
    const text = `kafka:\n  config:\n    delivery.report.only.error: true\n    dr_msg_cb: true\n${MINIMAL_FORWARDING}`;
    assert.deepEqual(problemsOf(text), [
      'kafka.config."delivery.report.only.error": must not be true: MQTT messages are acknowledged when Kafka reports their delivery, so without success reports nothing would ever be acknowledged',
      'kafka.config.dr_msg_cb: is managed by the forwarder (delivery reports drive MQTT acknowledgements); remove it',
    ]);
  });
});

describe('several problems at once', () => {
  it('reports every problem in one error, one line each', () => {
    const text = `
mqtt:
  port: 0
  clientid: x
  tls: { ca_cert: ca.pem, client_cert: c.pem }
kafka:
  config:
    sasl.password: \${KAFKA_PASS}
    enable.idempotence: true
    acks: 1
forwarding:
  - name: demo
    mqtt: { topic: 'a/#/b' }
    kafka: { topic: 'a b' }
  - name: demo
    mqtt: { topic: ok }
    kafka: { topic: ok }
`;
    let error: unknown;
    try {
      parse(text);
    } catch (err) {
      error = err;
    }
    assert.ok(error instanceof ConfigInvalidError);
    assert.deepEqual(error.problems, [
      'kafka.config."sasl.password": environment variable KAFKA_PASS is not set',
      'mqtt.port: must be at least 1 (got 0)',
      'mqtt.clientid: unknown key (did you mean "client_id"?)',
      'forwarding[0].mqtt.topic: \'#\' must be the last level of a filter (got "a/#/b")',
      `forwarding[0].kafka.topic: Kafka topic names may only contain ASCII letters, digits, '.', '_' and '-' (got "a b", which contains " ")`,
      'mqtt.tls.client_cert: client_cert requires client_key (mutual TLS needs both)',
      'forwarding[1].name: duplicate mapping name "demo" (first used at forwarding[0])',
      'kafka.config: enable.idempotence=true requires acks=all (got acks=1)',
    ]);
    assert.equal(error.message, `invalid configuration:\n  ${error.problems.join('\n  ')}`);
  });
});

describe('files', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'forwarder-config-'));

  it('loads a file', () => {
    const file = path.join(dir, 'ok.yaml');
    writeFileSync(file, REFERENCE_EXAMPLE);
    assert.equal(loadConfig(file, {}).forwarding[0]?.name, 'demo');
  });

  it('names the path of a missing file and why it cannot be read', () => {
    const file = path.join(dir, 'missing.yaml');
    assert.throws(
      () => loadConfig(file, {}),
      (err: unknown) =>
        err instanceof ConfigFileError &&
        err.code === 'ERR_CONFIG_FILE' &&
        err.message ===
          `cannot read config file ${file}: no such file (set --config or CONFIG_FILE to use another file)`,
    );
  });

  it('shows a relative path as given and resolved', () => {
    const relative = path.relative(process.cwd(), path.join(dir, 'missing.yaml'));
    assert.throws(
      () => loadConfig(relative, {}),
      (err: unknown) =>
        err instanceof ConfigFileError &&
        err.message.startsWith(
          `cannot read config file ${relative} (${path.join(dir, 'missing.yaml')}): no such file`,
        ),
    );
  });

  it('reports a directory', () => {
    assert.throws(
      () => loadConfig(dir, {}),
      (err: unknown) =>
        err instanceof ConfigFileError && err.message.endsWith(': it is a directory'),
    );
  });

  it('reports a YAML syntax error with line and column', () => {
    const file = path.join(dir, 'broken.yaml');
    writeFileSync(file, 'mqtt:\n  host: localhost\nkafka: [1,\nforwarding: []\n');
    assert.throws(
      () => loadConfig(file, {}),
      (err: unknown) =>
        err instanceof ConfigFileError &&
        err.message.startsWith(`config file ${file} is not valid YAML:\n  line 4, column 1: `),
    );
  });

  it('reports a duplicate key as a YAML error', () => {
    assert.throws(
      () => parse('mqtt: {}\nmqtt: {}\n'),
      (err: unknown) =>
        err instanceof ConfigFileError &&
        err.message.startsWith(
          'config file test.yaml is not valid YAML:\n  line 2, column 1: Map keys must be unique',
        ),
    );
  });
});

describe('resolveConfigPath', () => {
  it('prefers the flag, then CONFIG_FILE, then ./config.yaml', () => {
    assert.equal(resolveConfigPath('flag.yaml', { CONFIG_FILE: 'env.yaml' }), 'flag.yaml');
    assert.equal(resolveConfigPath(undefined, { CONFIG_FILE: 'env.yaml' }), 'env.yaml');
    assert.equal(resolveConfigPath(undefined, {}), './config.yaml');
    assert.equal(resolveConfigPath('', { CONFIG_FILE: '' }), './config.yaml');
  });
});

describe('error policy', () => {
  const base = (extra: string) => `
forwarding:
  - name: m
    mqtt: { topic: 'a/#' }
    kafka: { topic: a }
${extra}`;

  it('dead_letter requires dead_letter_topic', () => {
    assert.throws(
      () => parseConfigText(base('    on_error: dead_letter'), 't.yaml', {}),
      (e: ConfigInvalidError) =>
        e.problems.some(
          (p) =>
            p ===
            'forwarding[0].dead_letter_topic: on_error: dead_letter requires dead_letter_topic',
        ),
    );
  });

  it('dead_letter_topic is refused without on_error: dead_letter', () => {
    assert.throws(
      () => parseConfigText(base('    dead_letter_topic: dlq'), 't.yaml', {}),
      (e: ConfigInvalidError) =>
        e.problems.some((p) =>
          p.startsWith(
            'forwarding[0].dead_letter_topic: dead_letter_topic is only used with on_error: dead_letter',
          ),
        ),
    );
  });

  it('accepts a valid dead-letter mapping and rejects an unknown policy', () => {
    const cfg = parseConfigText(
      base('    on_error: dead_letter\n    dead_letter_topic: dlq'),
      't.yaml',
      {},
    );
    assert.equal(cfg.forwarding[0]!.on_error, 'dead_letter');
    assert.equal(cfg.forwarding[0]!.dead_letter_topic, 'dlq');
    assert.throws(
      () => parseConfigText(base('    on_error: retry'), 't.yaml', {}),
      (e: ConfigInvalidError) => e.problems.some((p) => p.startsWith('forwarding[0].on_error: ')),
    );
  });
});
