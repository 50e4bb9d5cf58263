import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { Metrics } from '../../src/observability/metrics';

const DASHBOARD = path.resolve(
  __dirname,
  '..',
  '..',
  '..',
  'docs',
  'grafana',
  'forwarder-dashboard.json',
);

test('the Grafana dashboard only queries metrics the forwarder exports', async () => {
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
    panels: { title: string; targets: { expr: string }[] }[];
  };
  const metrics = new Metrics({
    received: () => 0,
    inflightMessages: () => 0,
    inflightBytes: () => 0,
    producersReady: () => 0,
  });
  const exported = new Set<string>();
  for (const m of await metrics.registry.getMetricsAsJSON()) {
    exported.add(m.name);
    // Histograms expose _bucket/_sum/_count series.
    for (const suffix of ['_bucket', '_sum', '_count']) exported.add(`${m.name}${suffix}`);
  }
  for (const panel of dashboard.panels) {
    for (const t of panel.targets) {
      for (const name of t.expr.match(/mkf_[a-z0-9_]+/g) ?? []) {
        assert.ok(exported.has(name), `panel "${panel.title}" queries unknown metric ${name}`);
      }
    }
  }
});
