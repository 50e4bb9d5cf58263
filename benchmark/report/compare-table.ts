/**
 * The table of `compare.ts`: per case and figure, this forwarder, the reference service and
 * their ratio (forwarder / reference); with several repetitions the mean, and each run's value
 * in brackets. Below it the checks (losses, duplicates, reordering, runs that did not complete)
 * and the capped brokers' probes: which clients their cap applied to.
 */
import type {
  CappedBrokerInfo,
  CompareCase,
  CompareResult,
  CompareRun,
  InflightProbe,
  SubjectName,
} from '../types';
import { fmtInt, fmtMs } from './format';

interface Metric {
  readonly name: string;
  readonly value: (r: CompareRun) => number | undefined;
  readonly fmt: (n: number) => string;
}

const fixed =
  (digits: number) =>
  (n: number): string =>
    Number.isFinite(n) ? n.toFixed(digits) : '–';

export function describeCappedBroker(b: CappedBrokerInfo): string {
  return `${b.kind === 'mosquitto' ? 'mosquitto max_inflight_messages' : 'HiveMQ in-flight window'} ${b.maxInflight} (127.0.0.1:${b.port})`;
}

/** "MQTT 3.1.1, never acking: got 20 of 50" / "…, acking 5 ms late: at most 20 unacked of 200". */
export function describeProbe(p: InflightProbe): string {
  return p.ackDelayMs === undefined
    ? `${p.client}: got ${p.received} of ${p.published}`
    : `${p.client}: at most ${p.maxUnacked} unacked (${p.published} published)`;
}

/** CPU of the subject per message that arrived (µs), over the measured run (no warm-up). */
export function cpuUsPerMessage(r: CompareRun): number | undefined {
  const f = r.result?.forwarder;
  const n = r.result?.counts.unique;
  return f && n ? (f.cpuS * 1e6) / n : undefined;
}

const LOAD_METRICS: readonly Metric[] = [
  { name: 'msg/s', value: (r) => r.result?.throughput?.endToEndMsgS, fmt: fmtInt },
  { name: 'CPU µs/msg', value: cpuUsPerMessage, fmt: fixed(1) },
  { name: 'CPU % of a core', value: (r) => r.result?.forwarder?.cpuPct, fmt: fixed(0) },
  { name: 'RSS max MB', value: (r) => r.result?.forwarder?.rssMaxMb, fmt: fixed(1) },
  { name: 'latency p50 ms', value: (r) => r.result?.latencyMs.p50, fmt: fmtMs },
  { name: 'latency p99 ms', value: (r) => r.result?.latencyMs.p99, fmt: fmtMs },
];

const IDLE_METRICS: readonly Metric[] = [
  { name: 'CPU % of a core', value: (r) => r.idle?.forwarder.cpuPct, fmt: fixed(2) },
  { name: 'RSS max MB', value: (r) => r.idle?.forwarder.rssMaxMb, fmt: fixed(1) },
];

function mean(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

function finite(xs: readonly (number | undefined)[]): number[] {
  return xs.filter((x): x is number => x !== undefined && Number.isFinite(x));
}

/** "mean" or "mean (a / b)"; "–" when no run has the figure. */
function cell(values: readonly number[], fmt: (n: number) => string, runs: number): string {
  if (values.length === 0) return runs === 0 ? '' : '–';
  const m = fmt(mean(values));
  return runs > 1 ? `${m} (${values.map(fmt).join(' / ')})` : m;
}

function ratio(a: readonly number[], b: readonly number[]): string {
  if (a.length === 0 || b.length === 0) return '–';
  const r = mean(a) / mean(b);
  return Number.isFinite(r) ? r.toFixed(2) : '–';
}

function table(rows: readonly string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => [...(r[i] ?? '')].length)));
  const line = (r: readonly string[]): string =>
    r
      .map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [
    line(rows[0]!),
    widths.map((w) => '-'.repeat(w)).join('  '),
    ...rows.slice(1).map(line),
  ].join('\n');
}

function runsOf(c: CompareResult, cs: CompareCase, subject: SubjectName): CompareRun[] {
  return c.runs.filter((r) => r.case === cs.name && r.subject === subject);
}

/** The ceiling of a capped case: MQTT-only msg/s per repetition. */
function ceilingValues(c: CompareResult, cs: CompareCase): number[] {
  return finite(
    c.ceilings.filter((x) => x.case === cs.name).map((x) => x.result?.throughput?.endToEndMsgS),
  );
}

/** Problems a reader must see next to the figures. */
export function compareChecks(c: CompareResult): string[] {
  const out: string[] = [];
  const cases = new Map(c.cases.map((x) => [x.name, x]));
  for (const r of c.runs) {
    const where = `${r.case} ${r.subject} #${r.repeat}`;
    if (r.error) {
      out.push(`${where}: FAILED: ${r.error.split('\n')[0]}`);
      continue;
    }
    const res = r.result;
    if (!res) continue;
    const qos = cases.get(r.case)?.qos ?? 1;
    const n = res.counts;
    if (n.lost > 0) {
      out.push(
        `${where}: ${fmtInt(n.lost)} lost${qos === 0 ? ' (QoS 0 may lose by design)' : ' — QoS ≥ 1 must lose nothing'}`,
      );
    }
    if (n.duplicates > 0) out.push(`${where}: ${fmtInt(n.duplicates)} duplicates`);
    if (n.outOfOrder > 0) {
      out.push(`${where}: ${fmtInt(n.outOfOrder)} out of order in ${n.outOfOrderTopics} topic(s)`);
    }
    if (res.endReason !== 'complete') out.push(`${where}: ended by ${res.endReason}`);
    const rate = cases.get(r.case)?.rate ?? 0;
    const steady = res.throughput?.steadyMsgS;
    if (rate > 0 && res.publisher.msgS < rate * 0.95) {
      out.push(
        `${where}: the publisher reached only ${fmtInt(res.publisher.msgS)} of ${fmtInt(rate)} msg/s (a busy machine, or broker backpressure)`,
      );
    } else if (rate > 0 && steady !== undefined && steady < rate * 0.95) {
      out.push(
        `${where}: did not keep up with ${fmtInt(rate)} msg/s (steady ${fmtInt(steady)} msg/s): its latency is queueing`,
      );
    }
    if (res.sinkInfo['kafkaTimestampType'] === 'CreateTime') {
      out.push(`${where}: Kafka CreateTime: latency ends at the subject's produce(), not at Kafka`);
    }
  }
  for (const b of c.cappedBrokers) {
    if (b.holds) continue;
    const steady = b.probes.find(
      (p) => p.ackDelayMs !== undefined && p.client.startsWith('MQTT 3.1.1'),
    );
    out.push(
      `${describeCappedBroker(b)}: the cap did not hold once acks flowed (${steady ? `up to ${steady.maxUnacked} unacked at once, acks ${steady.ackDelayMs} ms late` : 'not probed'}): the case measures that broker as it is, not a broker that allows only ${b.maxInflight}`,
    );
  }
  for (const x of c.ceilings) {
    if (x.error) out.push(`${x.case} MQTT-only ceiling #${x.repeat}: FAILED: ${x.error}`);
    else if (x.result && x.result.counts.lost > 0) {
      out.push(`${x.case} MQTT-only ceiling #${x.repeat}: ${fmtInt(x.result.counts.lost)} lost`);
    }
  }
  return out;
}

export function formatCompare(c: CompareResult): string {
  const [a, b] = ['forwarder', 'reference'] as const;
  const rows: string[][] = [['case', 'figure', 'this forwarder', 'reference', 'ratio (this/ref)']];
  for (const cs of c.cases) {
    const ra = runsOf(c, cs, a);
    const rb = runsOf(c, cs, b);
    const metrics = cs.kind === 'idle' ? IDLE_METRICS : LOAD_METRICS;
    let first = true;
    const label = (): string => {
      const l = first ? cs.name : '';
      first = false;
      return l;
    };
    for (const m of metrics) {
      const va = finite(ra.map(m.value));
      const vb = finite(rb.map(m.value));
      rows.push([
        label(),
        m.name,
        cell(va, m.fmt, ra.length),
        cell(vb, m.fmt, rb.length),
        ratio(va, vb),
      ]);
    }
    if (cs.kind === 'load') {
      const lost = (rs: CompareRun[]): string =>
        rs.length === 0
          ? ''
          : rs
              .map((r) =>
                r.result
                  ? `${fmtInt(r.result.counts.lost)}/${fmtInt(r.result.counts.duplicates)}/${fmtInt(r.result.counts.outOfOrder)}`
                  : 'failed',
              )
              .join(' ');
      rows.push([label(), 'lost/dup/reordered', lost(ra), lost(rb), '']);
    }
    if (cs.maxInflight !== undefined) {
      const ceil = ceilingValues(c, cs);
      if (ceil.length > 0) {
        const reps = c.ceilings.filter((x) => x.case === cs.name).length;
        const tp = (r: CompareRun): number | undefined => r.result?.throughput?.endToEndMsgS;
        const fa = finite(ra.map(tp)).map((v) => v / mean(ceil));
        const fb = finite(rb.map(tp)).map((v) => v / mean(ceil));
        rows.push([
          label(),
          `MQTT-only msg/s (${c.settings.ceilingSubscriber} sub)`,
          cell(ceil, fmtInt, reps),
          '',
          '',
        ]);
        rows.push([
          label(),
          '× MQTT-only',
          cell(fa, fixed(2), ra.length),
          cell(fb, fixed(2), rb.length),
          '',
        ]);
      }
    }
  }
  const s = c.settings;
  const out = [
    `side by side  (${fmtInt(s.messages)} msgs per load run, ${s.payloadSize} B, ${s.topics} topic(s), MQTT ${s.protocol} (capped cases: 3.1.1), publisher ${s.publisher} × window ${s.window}, warm-up ${fmtInt(s.warmup)}, ${s.repeat} repetition(s), subjects alternated${(s.processes ?? 1) > 1 ? `, this forwarder with processes: ${s.processes} (${s.processLayout ?? 'split'})` : ''})`,
    ...c.cases.map((x) => `  ${x.name.padEnd(18)} ${x.description}`),
    '',
    table(rows),
  ];
  const probes = c.cappedBrokers.flatMap((b) => [
    `  ${describeCappedBroker(b)}: the cap ${b.holds ? 'held' : 'did NOT hold'} with acks flowing`,
    ...b.probes.map((p) => `    ${describeProbe(p)}`),
  ]);
  if (probes.length > 0) out.push('', 'capped brokers, probed at their start:', ...probes);
  const checks = compareChecks(c);
  out.push(
    '',
    checks.length
      ? 'checks:'
      : 'checks: none (nothing lost, duplicated or reordered; every run complete)',
  );
  out.push(...checks.map((x) => `  ${x}`));
  out.push(
    '',
    "CPU = utime + stime of all the subject's threads and its descendants' (/proc) during the measured run; µs/msg per message that arrived.",
  );
  return out.join('\n');
}
