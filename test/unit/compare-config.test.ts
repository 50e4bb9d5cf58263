/** The config file bench:compare hands both subjects, and its --kafka-config parsing. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { subjectConfig } from '../../benchmark/compare';
import { keyValues } from '../../benchmark/options';
import { parseConfigText } from '../../src/config/load';

describe('bench:compare config', () => {
  test('--kafka-config pairs become kafka.config, and the file is a valid forwarder config', () => {
    const kafkaConfig = keyValues('linger.ms=1,compression.type=lz4');
    assert.deepEqual(kafkaConfig, { 'linger.ms': '1', 'compression.type': 'lz4' });
    const cfg = subjectConfig(1883, 9092, 4, 'bench', 'bench', undefined, kafkaConfig);
    assert.deepEqual((cfg['kafka'] as Record<string, unknown>)['config'], kafkaConfig);
    const loaded = parseConfigText(JSON.stringify(cfg), 'compare.yaml', {});
    assert.equal(loaded.kafka.config['linger.ms'], '1');
  });

  test('without --kafka-config the file has no kafka.config (the reference reads the same file)', () => {
    const cfg = subjectConfig(1883, 9092, 4, 'bench', 'bench');
    assert.equal('config' in (cfg['kafka'] as Record<string, unknown>), false);
  });

  test('a pair without = is refused by name', () => {
    assert.throws(() => keyValues('linger.ms'), /'linger\.ms' is not key=value/);
    assert.deepEqual(keyValues('a=b=c'), { a: 'b=c' });
  });
});
