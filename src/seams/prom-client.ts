/**
 * Seam: what the forwarder relies on in prom-client beyond its typed API. Pinned to
 * PINNED_PROM_CLIENT_VERSION; test/unit/seam-prom-client.test.ts checks the installed version
 * and the exposition of a metric registered this way.
 *
 * - A registry accepts any object with `name`, `help`, `type`, `aggregator`, `get()` and
 *   `reset()` as a metric, and renders what `get()` returns exactly as for its own metrics
 *   (that is how observability/fast-histogram.ts serves a histogram without prom-client's
 *   per-observation label hashing).
 */
import type { Metric, Registry } from 'prom-client';

export const PINNED_PROM_CLIENT_VERSION = '15.1.3';

export interface MetricSample {
  readonly labels: Record<string, string | number>;
  readonly value: number;
  readonly metricName: string;
}

/** The shape a registry reads from a metric at scrape time. */
export interface CustomMetric {
  readonly name: string;
  readonly help: string;
  readonly type: 'histogram' | 'counter' | 'gauge';
  readonly aggregator: 'sum';
  get(): Promise<{
    name: string;
    help: string;
    type: CustomMetric['type'];
    aggregator: 'sum';
    values: MetricSample[];
  }>;
  reset(): void;
}

export function registerCustomMetric(registry: Registry, metric: CustomMetric): void {
  registry.registerMetric(metric as unknown as Metric);
}
