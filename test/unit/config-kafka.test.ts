import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildProducerConfig, redactConfig } from '../../src/config/kafka';
import { REDACTED, isSecretKafkaKey } from '../../src/config/kafka-properties';
import { parseConfigText } from '../../src/config/load';
import type { Config } from '../../src/config/schema';

function config(kafkaSection: string): Config {
  return parseConfigText(
    `${kafkaSection}\nforwarding:\n  - { name: m, mqtt: { topic: a }, kafka: { topic: b } }\n`,
    'test.yaml',
    {},
  );
}

describe('buildProducerConfig', () => {
  it('derives bootstrap.servers from bootstrap_server and port, with safe defaults', () => {
    const cfg = config('kafka:\n  bootstrap_server: kafka.local\n  port: 9093');
    assert.deepEqual(buildProducerConfig(cfg), {
      global: {
        'bootstrap.servers': 'kafka.local:9093',
        'enable.idempotence': true,
        'linger.adaptive': true,
      },
      topic: { acks: 'all' },
    });
  });

  it('brackets an IPv6 literal', () => {
    const cfg = config("kafka:\n  bootstrap_server: '::1'");
    assert.equal(buildProducerConfig(cfg).global['bootstrap.servers'], '[::1]:9092');
  });

  it('routes topic-level properties to the topic argument and the rest to global', () => {
    const cfg = config(`kafka:
  config:
    acks: all
    message.timeout.ms: 30000
    request.timeout.ms: 5000
    partitioner: murmur2_random
    compression.level: 3
    compression.codec: lz4
    linger.ms: 5
    security.protocol: SASL_SSL`);
    // Looks like a topic-level key but is none. Not a librdkafka property either, so loading
    // would reject it: added after validation, to test the routing alone.
    cfg.kafka.config['delivery.timeout.ms_not_an_alias'] = 1;
    const { global, topic } = buildProducerConfig(cfg);
    assert.deepEqual(topic, {
      acks: 'all',
      'message.timeout.ms': 30000,
      'request.timeout.ms': 5000,
      partitioner: 'murmur2_random',
      'compression.level': 3,
    });
    assert.deepEqual(global, {
      'bootstrap.servers': 'localhost:9092',
      'enable.idempotence': true,
      'linger.adaptive': true,
      'delivery.timeout.ms_not_an_alias': 1,
      'compression.codec': 'lz4',
      'linger.ms': 5,
      'security.protocol': 'SASL_SSL',
    });
  });

  it("lets the user's settings win over every default", () => {
    const cfg = config(`kafka:
  bootstrap_server: ignored
  config:
    bootstrap.servers: a:1,b:2
    enable.idempotence: false
    linger.adaptive: false
    request.required.acks: 1`);
    assert.deepEqual(buildProducerConfig(cfg), {
      global: {
        'bootstrap.servers': 'a:1,b:2',
        'enable.idempotence': false,
        'linger.adaptive': false,
      },
      topic: { 'request.required.acks': 1 },
    });
    const legacy = config('kafka:\n  config:\n    metadata.broker.list: k:9092');
    assert.equal(buildProducerConfig(legacy).global['bootstrap.servers'], undefined);
    assert.equal(buildProducerConfig(legacy).global['metadata.broker.list'], 'k:9092');
  });

  it('keeps weaker acks meaning what they meant in the reference: no idempotence default', () => {
    const { global, topic } = buildProducerConfig(config('kafka:\n  config:\n    acks: 1'));
    assert.equal(global['enable.idempotence'], undefined);
    assert.deepEqual(topic, { acks: 1 });
  });

  it('keeps the idempotence default with acks=-1', () => {
    const { global, topic } = buildProducerConfig(config("kafka:\n  config:\n    acks: '-1'"));
    assert.equal(global['enable.idempotence'], true);
    assert.deepEqual(topic, { acks: '-1' });
  });
});

describe('secrets', () => {
  it('recognizes secret-looking librdkafka keys', () => {
    for (const key of [
      'sasl.password',
      'ssl.key.password',
      'ssl.key.pem',
      'ssl.keystore.password',
      'sasl.oauthbearer.client.secret',
      'sasl.oauthbearer.config',
      'some.future.Password',
      'x.secret.y',
    ]) {
      assert.equal(isSecretKafkaKey(key), true, key);
    }
    for (const key of ['sasl.username', 'ssl.ca.location', 'ssl.certificate.pem', 'acks']) {
      assert.equal(isSecretKafkaKey(key), false, key);
    }
  });

  it('redactConfig hides the MQTT password and Kafka secrets only', () => {
    const cfg = parseConfigText(
      `mqtt:
  credentials: { username: u, password: p }
kafka:
  config: { sasl.username: su, sasl.password: sp }
forwarding:
  - { name: m, mqtt: { topic: a }, kafka: { topic: b } }
`,
      'test.yaml',
      {},
    );
    const redacted = redactConfig(cfg);
    assert.deepEqual(redacted.mqtt.credentials, { username: 'u', password: REDACTED });
    assert.deepEqual(redacted.kafka.config, { 'sasl.username': 'su', 'sasl.password': REDACTED });
    assert.equal(cfg.mqtt.credentials?.password, 'p', 'the original is left alone');
  });
});
