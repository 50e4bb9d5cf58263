/** Turns per-message times into the report's figures and the plot's time series. */
import type { LatencySummary, Series, Throughput } from '../types';
import type { Tracker } from './tracker';

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
  return sorted[i]!;
}

export function summarize(values: Float64Array): LatencySummary {
  const sorted = Float64Array.from(values).sort();
  let sum = 0;
  for (const v of sorted) sum += v;
  return {
    count: sorted.length,
    p50: percentile(sorted, 0.5),
    p90: percentile(sorted, 0.9),
    p99: percentile(sorted, 0.99),
    max: sorted.length ? sorted[sorted.length - 1]! : NaN,
    mean: sorted.length ? sum / sorted.length : NaN,
  };
}

/**
 * Latency of every first copy. Kafka timestamps have millisecond resolution while publish times
 * have microseconds, so a value can come out up to 1 ms below the truth; negatives become 0.
 */
export function latencies(t: Tracker): Float64Array {
  const out = new Float64Array(t.unique);
  let k = 0;
  for (let i = 0; i < t.messages; i++) {
    if (t.seen[i] === 0) continue;
    out[k++] = Math.max(0, t.arrivedAt[i]! - t.publishedAt[i]!);
  }
  return out.subarray(0, k);
}

function minMax(a: Float64Array): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of a) {
    if (Number.isNaN(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

export function throughput(t: Tracker, publishTimes: Float64Array): Throughput | undefined {
  const [firstPublishAt] = minMax(publishTimes);
  const arrivals = Float64Array.from(t.arrivedAt.filter((v) => !Number.isNaN(v))).sort();
  if (arrivals.length === 0 || !Number.isFinite(firstPublishAt)) return undefined;
  const lastArrivalAt = arrivals[arrivals.length - 1]!;
  const durationMs = Math.max(1, lastArrivalAt - firstPublishAt);
  let steady = NaN;
  if (arrivals.length >= 100) {
    const lo = percentile(arrivals, 0.1);
    const hi = percentile(arrivals, 0.9);
    // Whole-millisecond Kafka timestamps: a span under 10 ms says nothing about a rate.
    if (hi - lo >= 10) steady = (0.8 * arrivals.length * 1000) / (hi - lo);
  }
  return {
    endToEndMsgS: (arrivals.length * 1000) / durationMs,
    steadyMsgS: steady,
    firstPublishAt,
    lastArrivalAt,
    durationS: durationMs / 1000,
  };
}

const BUCKETS_MS = [50, 100, 200, 250, 500, 1000, 2000, 5000, 10000, 30000, 60000];

export function series(t: Tracker, publishTimes: Float64Array, maxBuckets = 240): Series {
  const [p0, p1] = minMax(publishTimes);
  const [, a1] = minMax(t.arrivedAt);
  const startAt = Number.isFinite(p0) ? p0 : 0;
  const end = Math.max(Number.isFinite(p1) ? p1 : startAt, Number.isFinite(a1) ? a1 : startAt);
  const span = Math.max(1, end - startAt);
  const bucketMs = BUCKETS_MS.find((b) => span / b <= maxBuckets) ?? 60000;
  const n = Math.floor(span / bucketMs) + 1;
  const published = new Array<number>(n).fill(0);
  const delivered = new Array<number>(n).fill(0);
  const lat: number[][] = Array.from({ length: n }, () => []);
  const bucket = (ts: number): number =>
    Math.min(n - 1, Math.max(0, Math.floor((ts - startAt) / bucketMs)));
  for (const ts of publishTimes) if (!Number.isNaN(ts)) published[bucket(ts)]!++;
  for (let i = 0; i < t.messages; i++) {
    if (t.seen[i] === 0) continue;
    const b = bucket(t.arrivedAt[i]!);
    delivered[b]!++;
    lat[b]!.push(Math.max(0, t.arrivedAt[i]! - t.publishedAt[i]!));
  }
  const perS = 1000 / bucketMs;
  const pick = (p: number) =>
    lat.map((l) => (l.length ? percentile(Float64Array.from(l).sort(), p) : null));
  return {
    bucketMs,
    startAt,
    published: published.map((c) => c * perS),
    delivered: delivered.map((c) => c * perS),
    latP50: pick(0.5),
    latP99: pick(0.99),
    latMax: pick(1),
  };
}
