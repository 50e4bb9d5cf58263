/**
 * The messages between the supervisor and its ingest processes, over the IPC channel of
 * child_process.fork. An ingest process answers probes (health, readiness, metrics) and says
 * how its stop ended; everything else (start, stop, reload) travels as signals, exactly as for
 * a single process, so an ingest process behaves like the forwarder a user runs alone.
 */
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { Forwarder, StopOutcome } from '../forwarder';

export interface ProbeRequest {
  readonly t: 'probe';
  readonly id: number;
  /** Also send the metrics (only a /metrics scrape needs them). */
  readonly metrics: boolean;
}

export interface ProbeReply {
  readonly t: 'probe';
  readonly id: number;
  readonly healthy: boolean;
  readonly ready: boolean;
  readonly detail: Record<string, unknown>;
  readonly metrics?: MetricObjectWithValues<MetricValue<string>>[];
}

export interface StoppedReport {
  readonly t: 'stopped';
  readonly drained: boolean;
  readonly producers: StopOutcome['producers'];
}

export type FromIngest = ProbeReply | StoppedReport;

/**
 * Series that keep a `process` label in the pod's /metrics instead of being summed: the ones
 * that say which process is disconnected, stuck or on an old config, and how the load spreads.
 */
export const PER_PROCESS_METRICS: ReadonlySet<string> = new Set([
  'mkf_mqtt_connected',
  'mkf_kafka_producers_connected',
  'mkf_inflight_messages',
  'mkf_mqtt_messages_received_total',
  'mkf_config_generation',
]);

function isProbeRequest(m: unknown): m is ProbeRequest {
  return typeof m === 'object' && m !== null && (m as { t?: unknown }).t === 'probe';
}

/**
 * Ingest side: answer the supervisor's probes from this process's forwarder. The channel is
 * unreferenced, so it never keeps a stopped process alive; `onOrphaned` runs when the
 * supervisor is gone (killed), so an ingest process never outlives it.
 */
export function serveSupervisor(
  forwarder: Forwarder,
  index: number,
  onOrphaned: () => void,
): (outcome: StopOutcome) => Promise<void> {
  const channel = process.channel;
  channel?.unref();
  const label = String(index);
  process.on('message', (m: unknown) => {
    if (!isProbeRequest(m)) return;
    const h = forwarder.probes.health();
    const r = forwarder.probes.readiness();
    const base = { t: 'probe' as const, id: m.id, healthy: h.ok, ready: r.ok };
    const detail = { ...h.detail, ...r.detail, generation: forwarder.generation };
    if (!m.metrics) {
      send({ ...base, detail });
      return;
    }
    forwarder.metrics.registry.getMetricsAsJSON().then(
      (metrics) => {
        for (const metric of metrics) {
          if (!PER_PROCESS_METRICS.has(metric.name)) continue;
          for (const v of metric.values) v.labels = { ...v.labels, process: label };
        }
        send({ ...base, detail, metrics });
      },
      () => send({ ...base, detail }),
    );
  });
  process.on('disconnect', onOrphaned);
  return (outcome) =>
    new Promise<void>((resolve) => {
      if (!process.connected) {
        resolve();
        return;
      }
      const report: StoppedReport = { t: 'stopped', ...outcome };
      process.send!(report, undefined, {}, () => resolve());
    });
}

function send(m: FromIngest): void {
  // The supervisor may be gone between a request and its answer; 'disconnect' handles that.
  if (process.connected) process.send!(m, undefined, {}, () => undefined);
}
