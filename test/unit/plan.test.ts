/** src/supervisor/plan.ts: how `processes` and `share` split one config over ingest processes. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigInvalidError } from '../../src/errors';
import { parseConfigText } from '../../src/config/load';
import {
  assignMappings,
  containerCpus,
  ingestConfig,
  ingestIdentity,
  processCount,
  shareGroup,
} from '../../src/supervisor/plan';

const config = (text: string) => parseConfigText(text, 'test.yaml', {});

const FIVE = `
mqtt: { host: broker, client_id: fwd }
kafka: { bootstrap_server: kafka }
forwarding:
  - { name: a, mqtt: { topic: 'a/#' }, kafka: { topic: ta } }
  - { name: b, mqtt: { topic: 'b/#' }, kafka: { topic: tb } }
  - { name: hot, mqtt: { topic: 'hot/+{site}/#' }, kafka: { topic: 'hot.{site}' }, share: {} }
  - { name: c, mqtt: { topic: 'c/#' }, kafka: { topic: tc } }
  - { name: 'two of them', mqtt: { topic: 'd/#' }, kafka: { topic: td }, share: { processes: 2 } }
`;

test('mappings without share: round robin in config order; shared ones on k consecutive processes', () => {
  const cfg = config(`${FIVE}processes: 3\n`);
  // a → 0, b → 1, c → 2; hot on all three; 'two of them' on the two after hot's (0 and 1).
  assert.deepEqual(assignMappings(cfg.forwarding, 3), [
    [0, 2, 4],
    [1, 2, 4],
    [2, 3],
  ]);
  assert.deepEqual(assignMappings(cfg.forwarding, 1), [[0, 1, 2, 3, 4]]);
});

test('more processes than mappings: the extra ones own nothing (the supervisor does not start them)', () => {
  const cfg = config(`
mqtt: { host: broker }
kafka: { bootstrap_server: kafka }
processes: 4
forwarding:
  - { name: a, mqtt: { topic: 'a/#' }, kafka: { topic: ta } }
  - { name: b, mqtt: { topic: 'b/#' }, kafka: { topic: tb } }
`);
  assert.deepEqual(assignMappings(cfg.forwarding, 4), [[0], [1], [], []]);
});

test('an ingest config: its mappings, shared ones as $share, its client id, no HTTP server', () => {
  const cfg = config(`${FIVE}processes: 3\n`);
  const p2 = ingestConfig(cfg, 3, 2);
  assert.deepEqual(
    p2.forwarding.map((m) => [m.name, m.mqtt.topic]),
    [
      ['hot', '$share/forwarder-hot/hot/+{site}/#'],
      ['c', 'c/#'],
    ],
  );
  assert.equal(p2.mqtt.client_id, 'fwd-2');
  assert.equal(p2.http.enabled, false);
  assert.equal(shareGroup(cfg.forwarding[4]!), 'forwarder-two_of_them');
  // One process: only share applies; the client id and the HTTP server stay the user's.
  const single = ingestConfig(config(`${FIVE.replace('processes: 2', 'processes: 1')}`), 1, 0);
  assert.equal(single.mqtt.client_id, 'fwd');
  assert.equal(single.http.enabled, true);
  assert.equal(single.forwarding[2]!.mqtt.topic, '$share/forwarder-hot/hot/+{site}/#');
  // A clean session stays clean in every process.
  assert.equal(
    ingestConfig(config(`${FIVE.replace('client_id: fwd', "client_id: ''")}processes: 3\n`), 3, 1)
      .mqtt.client_id,
    '',
  );
});

test("processes: 'auto' divides the CPUs by 1 + dispatch.workers", () => {
  const auto = (workers: number) =>
    config(`${FIVE}processes: auto\ndispatch: { workers: ${workers} }\n`);
  assert.equal(
    processCount(auto(1), () => 16),
    8,
  );
  assert.equal(
    processCount(auto(3), () => 16),
    4,
  );
  assert.equal(
    processCount(auto(0), () => 6),
    6,
  );
  assert.equal(
    processCount(auto(1), () => 1),
    1,
  );
  assert.equal(
    processCount(auto(0), () => 200),
    64,
  );
  assert.equal(
    processCount(config(`${FIVE}processes: 3\n`), () => 16),
    3,
  );
});

test('container CPUs: cgroup v2 quota, then v1, then the scheduler', () => {
  const files = (f: Record<string, string>) => (name: string) => f[name];
  assert.equal(
    containerCpus(files({ '/sys/fs/cgroup/cpu.max': '150000 100000\n' })),
    Math.min(2, containerCpus(files({}))),
  );
  assert.equal(
    containerCpus(files({ '/sys/fs/cgroup/cpu.max': 'max 100000\n' })),
    containerCpus(files({})),
  );
  assert.equal(
    containerCpus(
      files({
        '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '100000',
        '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000',
      }),
    ),
    1,
  );
});

test('share: refused on a $share filter, and with more processes than run', () => {
  assert.throws(
    () =>
      config(`
mqtt: { host: broker }
kafka: { bootstrap_server: kafka }
processes: 2
forwarding:
  - { name: a, mqtt: { topic: '$share/g/a/#' }, kafka: { topic: ta }, share: {} }
  - { name: b, mqtt: { topic: 'b/#' }, kafka: { topic: tb }, share: { processes: 3, group: 'x/y' } }
`),
    (err: unknown) => {
      assert.ok(err instanceof ConfigInvalidError);
      const text = err.problems.join('\n');
      assert.match(text, /forwarding\[0\]\.share: mqtt\.topic is already a shared subscription/u);
      assert.match(
        text,
        /forwarding\[1\]\.share\.processes: is 3, but only 2 ingest processes run/u,
      );
      assert.match(text, /forwarding\[1\]\.share\.group: must not contain/u);
      return true;
    },
  );
});

test('the ingest identity comes from MKF_INGEST_PROCESS only', () => {
  assert.equal(ingestIdentity({}), undefined);
  assert.deepEqual(ingestIdentity({ MKF_INGEST_PROCESS: '2/4' }), { index: 2, count: 4 });
  assert.throws(() => ingestIdentity({ MKF_INGEST_PROCESS: '4/4' }), /index < count/u);
});
