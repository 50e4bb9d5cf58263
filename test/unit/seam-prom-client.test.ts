/**
 * Seam test for src/seams/prom-client.ts: a metric registered through the seam is rendered by
 * the installed prom-client exactly as its own Histogram renders the same observations.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { Histogram, Registry } from 'prom-client';
import { FastHistogram } from '../../src/observability/fast-histogram';
import { PINNED_PROM_CLIENT_VERSION } from '../../src/seams/prom-client';
import { REPO_ROOT } from '../helpers/env';

describe('seam: prom-client', () => {
  test(`installed prom-client is ${PINNED_PROM_CLIENT_VERSION} and package.json pins it exactly`, () => {
    const installed = (
      JSON.parse(
        readFileSync(path.join(REPO_ROOT, 'node_modules/prom-client/package.json'), 'utf8'),
      ) as { version: string }
    ).version;
    assert.equal(installed, PINNED_PROM_CLIENT_VERSION, 're-check src/seams/prom-client.ts');
    const pkg = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    assert.equal(pkg.dependencies['prom-client'], PINNED_PROM_CLIENT_VERSION);
  });

  test('a custom metric scrapes exactly like prom-client’s own histogram, and resets', async () => {
    const buckets = [0.001, 0.01, 0.1, 1];
    const values = [0.0005, 0.001, 0.002, 0.05, 0.5, 2, 0.01];
    const own = new Registry();
    const h = new Histogram({
      name: 'x_seconds',
      help: 'h',
      labelNames: ['mapping'],
      buckets,
      registers: [own],
    });
    const seam = new Registry();
    const f = new FastHistogram('x_seconds', 'h', 'mapping', buckets, seam);
    for (const m of ['a', 'b']) {
      const child = f.labels(m);
      for (const v of values) {
        h.labels(m).observe(v);
        child.observe(v);
      }
    }
    assert.equal(await seam.metrics(), await own.metrics());
    seam.resetMetrics();
    own.resetMetrics();
    assert.match(await seam.metrics(), /x_seconds_count\{mapping="a"\} 0/);
  });
});
