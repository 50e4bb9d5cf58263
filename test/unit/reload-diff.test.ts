/** src/config/reload-diff.ts: what a reload applies (the forwarding list) and what needs a restart. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseConfigText } from '../../src/config/load';
import { diffConfigs, diffMappings } from '../../src/config/reload-diff';

const config = (text: string) => parseConfigText(text, 'test.yaml', {});

const BASE = `
mqtt: { host: broker-a, port: 1883 }
kafka: { bootstrap_server: kafka-a, config: { 'sasl.password': old-secret } }
forwarding:
  - { name: a, mqtt: { topic: 'a/#', qos: 1 }, kafka: { topic: ta } }
  - { name: b, mqtt: { topic: 'b/#' }, kafka: { topic: tb } }
  - { name: c, mqtt: { topic: 'c/#' }, kafka: { topic: tc } }
`;

test('the same config: nothing to restart, every mapping unchanged', () => {
  const d = diffConfigs(config(BASE), config(BASE));
  assert.deepEqual(d.restartRequired, []);
  assert.deepEqual(d.mappings, { added: [], removed: [], changed: [], unchanged: ['a', 'b', 'c'] });
});

test('outside forwarding: each differing value named by its path, never by its value', () => {
  const next = config(
    BASE.replace('broker-a', 'broker-b')
      .replace('old-secret', 'new-secret')
      .replace('port: 1883 }', 'port: 1883, tls: { ca_cert: ca.pem } }') +
      'dispatch: { workers: 3 }\nlog_level: debug\n',
  );
  const d = diffConfigs(config(BASE), next);
  assert.deepEqual(d.restartRequired, [
    'mqtt.host',
    'mqtt.tls',
    'kafka.config."sasl.password"',
    'dispatch.workers',
    'log_level',
  ]);
  assert.doesNotMatch(JSON.stringify(d), /secret/u, 'no value in the diff');
  assert.deepEqual(d.mappings.unchanged, ['a', 'b', 'c']);
});

test('a default written out is no change; a key removed is named', () => {
  const explicit = config(BASE.replace('port: 1883 }', 'port: 1883, keepalive_s: 30 }'));
  assert.deepEqual(diffConfigs(config(BASE), explicit).restartRequired, []);
  const noPassword = config(BASE.replace(", config: { 'sasl.password': old-secret }", ''));
  assert.deepEqual(diffConfigs(config(BASE), noPassword).restartRequired, [
    'kafka.config."sasl.password"',
  ]);
});

test('mappings by name: added, removed, changed (any field), unchanged; order does not matter', () => {
  const next = config(`
forwarding:
  - { name: c, mqtt: { topic: 'c/#' }, kafka: { topic: tc } }
  - { name: a, mqtt: { topic: 'a/#', qos: 2 }, kafka: { topic: ta } }
  - { name: d, mqtt: { topic: 'd/#' }, kafka: { topic: td } }
  - { name: e, mqtt: { topic: 'b/#' }, kafka: { topic: tb } }
mqtt: { host: broker-a, port: 1883 }
kafka: { bootstrap_server: kafka-a, config: { 'sasl.password': old-secret } }
`);
  const d = diffConfigs(config(BASE), next);
  assert.deepEqual(d.restartRequired, []);
  assert.deepEqual(d.mappings, {
    added: ['d', 'e'],
    removed: ['b'],
    changed: ['a'],
    unchanged: ['c'],
  });
});

test('a mapping changed in a field with a default (on_error, wrap_as_json) is changed', () => {
  const a = config(BASE).forwarding;
  const next = config(
    BASE.replace('kafka: { topic: tb } }', 'kafka: { topic: tb }, wrap_as_json: true }').replace(
      'kafka: { topic: tc } }',
      'kafka: { topic: tc }, on_error: skip }',
    ),
  ).forwarding;
  assert.deepEqual(diffMappings(a, next).changed, ['b', 'c']);
});
