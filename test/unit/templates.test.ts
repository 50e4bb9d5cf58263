import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT } from '../helpers/env';
import { parseConfigText } from '../../src/config/load';
import { compileTemplates } from '../../src/config/mapping-rules';
import { parseFilter } from '../../src/config/templates';
import { topicFilterProblem } from '../../src/config/topic-rules';
import { Router } from '../../src/pipeline/2-route/router';
import { routeMappingsOf } from '../../src/pipeline/2-route/mappings';

const loadConfigText = (cfg: object) => parseConfigText(JSON.stringify(cfg), 't.yaml', {});

test('a named level is subscribed as a plain +, and $share levels are not counted', () => {
  const c = parseFilter('$share/g/plant/+{site}/sensors/+{device}/#');
  assert.ok(!('problem' in c));
  assert.equal(c.subscribe, '$share/g/plant/+/sensors/+/#');
  assert.deepEqual(
    [...c.names],
    [
      ['site', 1],
      ['device', 3],
    ],
  );
  assert.equal(c.guaranteedLevels, 4);
  assert.equal(topicFilterProblem('plant/+{site}/#'), undefined);
  assert.match(topicFilterProblem('plant/+{1x}/#') ?? '', /not a named level/);
  assert.match(topicFilterProblem('a/+{x}/+{x}') ?? '', /used twice/);
  assert.match(topicFilterProblem('a/+{topic}') ?? '', /cannot be named "topic"/);
  assert.match(topicFilterProblem('a/b+{x}') ?? '', /'\+' must occupy a whole level/);
});

test('templates may use only levels every matching topic has', () => {
  const problems = (filter: string, topic: string, key?: string | null): string[] => {
    const c = compileTemplates(filter, topic, key);
    return c.ok ? [] : c.problems.map((p) => `${p.path.join('.')}: ${p.message}`);
  };
  assert.deepEqual(problems('a/+/b/#', 'x.{1}.{3}', '{topic}'), []);
  assert.match(
    problems('a/+/#', 'x.{3}')[0] ?? '',
    /kafka\.topic: \{3\} needs a topic of at least 3 levels.*matches topics of 2/,
  );
  assert.match(problems('a/#', 'x', '{2}')[0] ?? '', /kafka\.key: \{2\} needs/);
  assert.match(
    problems('a/+{site}', 'x.{dev}')[0] ?? '',
    /\{dev\} names no level.*named levels: site/,
  );
  assert.match(problems('a/+', 'x.{a-b}')[0] ?? '', /not a placeholder/);
  assert.match(problems('a/+', 'x.{1')[0] ?? '', /unclosed '\{'/);
  assert.match(problems('a/+', 'x}')[0] ?? '', /unmatched '\}'/);
  assert.match(problems('a/+', 'x y.{1}')[0] ?? '', /may only contain.*" "/);
  assert.match(problems('a/+', `${'x'.repeat(250)}{1}`)[0] ?? '', /alone is 250 characters/);
  assert.deepEqual(problems('a/+', 'x', null), [], 'null: no key');
  assert.deepEqual(problems('a/+', 'x', '{{{1}}}'), [], 'doubled braces are literal in a key');
});

function route(mapping: object, topic: string) {
  const cfg = loadConfigText({ forwarding: [{ name: 'm', ...mapping }] });
  const r = new Router(routeMappingsOf(cfg.forwarding), 4);
  const route = r.route(topic);
  return { router: r, route, target: route.targets[0] };
}

test('rendering: levels by name and number, the whole topic, literal braces, no key', () => {
  const { router, target } = route(
    {
      mqtt: { topic: 'plant/+{site}/sensors/+/#' },
      kafka: { topic: 'plant.{site}.{4}', key: '{{{site}}}/{topic}' },
    },
    'plant/berlin/sensors/temp/a/b',
  );
  assert.equal(router.subscriptions[0]?.filter, 'plant/+/sensors/+/#');
  assert.equal(target?.kafkaTopic, 'plant.berlin.temp');
  assert.equal(target?.key?.toString(), '{berlin}/plant/berlin/sensors/temp/a/b');
  assert.equal(target?.topicProblem, undefined);
  const none = route({ mqtt: { topic: 'a/#' }, kafka: { topic: 'x', key: null } }, 'a/b');
  assert.equal(none.target?.key, null);
  const dflt = route({ mqtt: { topic: 'a/#' }, kafka: { topic: 'x' } }, 'a/b');
  assert.equal(dflt.target?.key?.toString(), 'a/b', 'absent: the MQTT topic, as the reference');
});

test("characters Kafka does not allow: '/' becomes '.', others '_'; the key keeps them", () => {
  const { target } = route(
    { mqtt: { topic: 'f/+/#' }, kafka: { topic: 'k-{topic}', key: '{2}' } },
    'f/Wärme 1:x/y',
  );
  assert.equal(target?.kafkaTopic, 'k-f.W_rme_1_x.y');
  assert.equal(target?.key?.toString(), 'Wärme 1:x');
  // One code point, one '_': a character outside the BMP is not two.
  assert.equal(
    route({ mqtt: { topic: 'e/+' }, kafka: { topic: 'e.{2}' } }, 'e/🌡').target?.kafkaTopic,
    'e._',
  );
});

test('a rendered name Kafka cannot take is a problem of that topic, not of the mapping', () => {
  const m = { mqtt: { topic: 'p/+' }, kafka: { topic: '{2}' } };
  assert.match(
    route(m, 'p/').target?.topicProblem ?? '',
    /rendered from MQTT topic "p\/".*must not be empty/,
  );
  assert.match(route(m, 'p/..').target?.topicProblem ?? '', /"\." and "\.\."/);
  assert.match(route(m, `p/${'x'.repeat(250)}`).target?.topicProblem ?? '', /250 characters/);
  assert.equal(route(m, 'p/ok').target?.topicProblem, undefined);
});

test('header names must not collide', () => {
  const load = (headers: object) => () =>
    loadConfigText({
      forwarding: [{ name: 'm', mqtt: { topic: 'a' }, kafka: { topic: 'x', headers } }],
    });
  assert.doesNotThrow(load({ user_properties: ['trace-id'] }));
  assert.throws(
    load({ user_properties: ['mqtt_topic'] }),
    /gives the header name "mqtt_topic", which include entry "topic" already gives/,
  );
  assert.throws(load({ user_properties: ['a', 'a'] }), /"a".*already gives/);
  assert.doesNotThrow(load({ user_properties: ['mqtt_topic'], user_property_prefix: 'user.' }));
  assert.throws(
    load({ user_properties: ['mqtt_correlation_data_base64'] }),
    /which include entry "correlation_data" already gives/,
    'the base64 name of binary correlation data is taken too',
  );
});

test("config.yaml's commented template example loads as written", () => {
  const lines = readFileSync(path.join(REPO_ROOT, 'config.yaml'), 'utf8').split('\n');
  const start = lines.findIndex((l) => l.includes('#  - name: sensors'));
  assert.ok(start > 0, 'the example is in config.yaml');
  const example = lines
    .slice(start)
    .filter((l) => l.startsWith('  #'))
    .map((l) => l.slice(3))
    .join('\n');
  const cfg = parseConfigText(`forwarding:\n${example}\n`, 'config.yaml example', {});
  const [m] = routeMappingsOf(cfg.forwarding);
  assert.equal(m?.filter, 'plant/+/sensors/+/#');
  assert.deepEqual(cfg.forwarding[0]?.kafka.headers?.user_properties, ['trace-id']);
});
