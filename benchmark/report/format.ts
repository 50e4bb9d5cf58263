/** Number formats and the text report of a run, as printed on the terminal and in the docs. */
import type { PublisherClient, RunResult } from '../types';

/** 12345.6 → "12,346"; NaN → "–". */
export function fmtInt(n: number): string {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '–';
}

export function fmtMs(n: number): string {
  if (!Number.isFinite(n)) return '–';
  return n < 10 ? n.toFixed(2) : n < 100 ? n.toFixed(1) : Math.round(n).toString();
}

export function describeParams(r: RunResult): string {
  const p = r.params;
  return (
    `${fmtInt(p.messages)} msgs, QoS ${p.qos}, MQTT ${p.protocolVersion === 5 ? '5' : '3.1.1'}, ` +
    `${p.payloadSize} B, ${p.topics} topic(s), ${p.wrapped ? 'wrapped' : 'raw'}, ` +
    `rate ${p.rate > 0 ? `${fmtInt(p.rate)}/s` : 'unlimited'}, ` +
    `${p.connections} conn × window ${p.window} (${clientName(p.publisherClient)})` +
    ((p.processes ?? 1) > 1 ? `, forwarder processes: ${p.processes}` : '')
  );
}

export function clientName(c: PublisherClient | undefined): string {
  return (c ?? 'raw') === 'raw' ? 'raw client' : 'mqtt.js';
}

function describeGone(n: number): string {
  return n === 0 ? '' : ` (${n} exited during the run, counted as last sampled)`;
}

/** The human-readable report. */
export function formatReport(r: RunResult): string {
  const c = r.counts;
  const tp = r.throughput;
  const l = r.latencyMs;
  const p = r.publisher;
  const lines = [
    `${r.label}  (${describeParams(r)})`,
    `  published   ${fmtInt(p.sent)} sent, ${fmtInt(p.acked)} completed in ${((p.endedAt - p.startedAt) / 1000).toFixed(2)} s = ${fmtInt(p.msgS)} msg/s (publisher thread: ${p.cpuPct.toFixed(0)} % of a core, ${(p.busy * 100).toFixed(0)} % busy)` +
      (p.timedOut ? ', TIMED OUT' : '') +
      (p.error ? `, ERROR: ${p.error}` : ''),
    `  received    ${fmtInt(c.received)} (${r.sink}), unique ${fmtInt(c.unique)}, LOST ${fmtInt(c.lost)}, duplicates ${fmtInt(c.duplicates)}, out of order ${fmtInt(c.outOfOrder)} in ${c.outOfOrderTopics} topic(s)` +
      (c.foreign ? `, foreign ${fmtInt(c.foreign)}` : ''),
    ...(c.lost > 0
      ? [`  missing ids (first ${c.missingSample.length}): ${c.missingSample.join(', ')}`]
      : []),
    `  throughput  ${tp ? fmtInt(tp.endToEndMsgS) : '–'} msg/s first publish → last arrival (${tp ? tp.durationS.toFixed(2) : '–'} s), steady state ${tp ? fmtInt(tp.steadyMsgS) : '–'} msg/s`,
    `  latency     p50 ${fmtMs(l.p50)}  p90 ${fmtMs(l.p90)}  p99 ${fmtMs(l.p99)}  max ${fmtMs(l.max)} ms  (arrival = ${r.sinkInfo.arrival})`,
  ];
  if (r.forwarder) {
    const f = r.forwarder;
    const procs = f.processes ?? [];
    // A tree (supervisor + ingest processes) says so; a single process keeps the line it had.
    const who =
      procs.length > 1
        ? `pid ${f.pid} + ${procs.length - 1} descendant(s)${describeGone(procs.filter((p) => p.goneS !== undefined).length)}, summed`
        : `pid ${f.pid}`;
    lines.push(
      `  forwarder   ${who}: RSS max ${f.rssMaxMb.toFixed(1)} MB (end ${f.rssEndMb.toFixed(1)}), CPU ${f.cpuPct.toFixed(0)} % of one core = ${f.cpuS.toFixed(2)} s: main thread ${f.mainThreadCpuS.toFixed(2)} s, librdkafka ${f.kafkaThreadsCpuS.toFixed(2)} s, other threads ${f.otherThreadsCpuS.toFixed(2)} s`,
    );
    if (procs.length > 1) {
      lines.push(
        `  processes   ` +
          procs
            .map(
              (p) =>
                `${p.pid}${p.pid === f.pid ? ' (root)' : ''}: ${p.cpuS.toFixed(2)} s, main thread ${p.mainThreadCpuS.toFixed(2)} s, RSS max ${p.rssMaxMb.toFixed(0)} MB${p.goneS !== undefined ? `, gone at ${p.goneS.toFixed(1)} s` : ''}`,
            )
            .join('; '),
      );
    }
  }
  lines.push(
    `  machine     ${r.machine.busyPct.toFixed(0)} % of ${r.machine.cores} cores busy; ` +
      r.machine.processes.map((x) => `${x.name} ${x.cpuPct.toFixed(0)} %`).join(', '),
  );
  lines.push(`  ended       ${r.endReason} after a drain of ${r.drainS.toFixed(1)} s`);
  if (r.plotFile) lines.push(`  plot        ${r.plotFile}`);
  return lines.join('\n');
}
