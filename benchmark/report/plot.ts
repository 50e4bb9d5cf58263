/**
 * A self-contained SVG (no scripts, fonts or links) of a run over time: throughput, latency
 * and, when sampled, the forwarder's CPU and RSS. Opens in any browser and renders inline in
 * Markdown on GitHub.
 */
import type { RunResult, SubscriberClient } from '../types';
import { describeParams, fmtInt, fmtMs } from './format';

interface PlotLine {
  readonly name: string;
  readonly color: string;
  /** [seconds, value | null]; null breaks the line. */
  readonly points: readonly (readonly [number, number | null])[];
}

interface PlotPanel {
  readonly title: string;
  readonly unit: string;
  readonly lines: readonly PlotLine[];
  readonly log?: boolean;
}

const W = 960;
const PANEL_H = 200;
const GAP = 46;
const LEFT = 74;
const RIGHT = 24;
const TOP = 64;

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function niceStep(span: number, ticks: number): number {
  const raw = span / ticks;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  return (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * mag;
}

function fmtTick(v: number): string {
  if (v >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
  if (v >= 1e3) return `${+(v / 1e3).toFixed(1)}k`;
  if (v > 0 && v < 1) return `${+v.toFixed(3)}`;
  return `${+v.toFixed(1)}`;
}

function panelSvg(p: PlotPanel, y0: number, xMax: number): string {
  const plotW = W - LEFT - RIGHT;
  const values = p.lines
    .flatMap((l) => l.points.map(([, v]) => v))
    .filter((v): v is number => v !== null && Number.isFinite(v));
  const out: string[] = [];
  out.push(
    `<text x="${LEFT}" y="${y0 - 8}" font-size="13" font-weight="bold">${esc(p.title)}</text>`,
  );
  let yOf: (v: number) => number;
  const ticks: number[] = [];
  if (p.log) {
    const pos = values.filter((v) => v > 0);
    const lo = 10 ** Math.floor(Math.log10(pos.length ? Math.min(...pos) : 0.1));
    const hi = 10 ** Math.ceil(Math.log10(pos.length ? Math.max(...pos) : 1) + 1e-9);
    const l0 = Math.log10(lo);
    const l1 = Math.max(l0 + 1, Math.log10(hi));
    yOf = (v) => y0 + PANEL_H - ((Math.log10(Math.max(v, lo)) - l0) / (l1 - l0)) * PANEL_H;
    for (let e = l0; e <= l1 + 1e-9; e++) ticks.push(10 ** e);
  } else {
    const max = values.length ? Math.max(...values) : 1;
    const step = niceStep(max > 0 ? max : 1, 5);
    const top = Math.max(step, Math.ceil((max * 1.05) / step) * step);
    yOf = (v) => y0 + PANEL_H - (v / top) * PANEL_H;
    for (let v = 0; v <= top + 1e-9; v += step) ticks.push(v);
  }
  const xOf = (s: number) => LEFT + (s / Math.max(xMax, 1e-9)) * plotW;
  out.push(
    `<rect x="${LEFT}" y="${y0}" width="${plotW}" height="${PANEL_H}" fill="#fafafa" stroke="#999"/>`,
  );
  for (const t of ticks) {
    const y = yOf(t).toFixed(1);
    out.push(
      `<line x1="${LEFT}" x2="${W - RIGHT}" y1="${y}" y2="${y}" stroke="#e2e2e2"/>`,
      `<text x="${LEFT - 6}" y="${y}" font-size="11" text-anchor="end" dominant-baseline="middle">${fmtTick(t)}</text>`,
    );
  }
  const xStep = niceStep(Math.max(xMax, 1e-3), 10);
  for (let s = 0; s <= xMax + 1e-9; s += xStep) {
    const x = xOf(s).toFixed(1);
    out.push(
      `<line x1="${x}" x2="${x}" y1="${y0}" y2="${y0 + PANEL_H}" stroke="#eeeeee"/>`,
      `<text x="${x}" y="${y0 + PANEL_H + 14}" font-size="11" text-anchor="middle">${fmtTick(s)}s</text>`,
    );
  }
  out.push(
    `<text x="14" y="${y0 + PANEL_H / 2}" font-size="11" transform="rotate(-90 14 ${y0 + PANEL_H / 2})" text-anchor="middle">${esc(p.unit)}</text>`,
  );
  // After the title (bold 13 px is about 7.6 px per character), so the two never overlap.
  let legendX = LEFT + p.title.length * 7.6 + 24;
  for (const l of p.lines) {
    const segments: string[] = [];
    let cur: string[] = [];
    for (const [s, v] of l.points) {
      if (v === null || !Number.isFinite(v)) {
        if (cur.length) segments.push(cur.join(' '));
        cur = [];
        continue;
      }
      cur.push(`${xOf(s).toFixed(1)},${yOf(v).toFixed(1)}`);
    }
    if (cur.length) segments.push(cur.join(' '));
    for (const seg of segments) {
      out.push(
        seg.includes(' ')
          ? `<polyline fill="none" stroke="${l.color}" stroke-width="1.6" points="${seg}"/>`
          : `<circle cx="${seg.split(',')[0]}" cy="${seg.split(',')[1]}" r="2" fill="${l.color}"/>`,
      );
    }
    out.push(
      `<rect x="${legendX}" y="${y0 - 18}" width="12" height="4" fill="${l.color}"/>`,
      `<text x="${legendX + 16}" y="${y0 - 12}" font-size="11">${esc(l.name)}</text>`,
    );
    legendX += 24 + l.name.length * 6.5;
  }
  return out.join('\n');
}

/** The whole SVG: a title, up to four subtitle lines, then the panels stacked. */
export function renderPlot(
  title: string,
  subtitle: readonly string[],
  panels: readonly PlotPanel[],
): string {
  const xMax = Math.max(
    1e-3,
    ...panels.flatMap((p) => p.lines.flatMap((l) => l.points.map(([s]) => s))),
  );
  const top = TOP + subtitle.length * 15;
  const height = top + panels.length * (PANEL_H + GAP) + 10;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${height}" viewBox="0 0 ${W} ${height}" font-family="sans-serif">`,
    `<rect width="${W}" height="${height}" fill="white"/>`,
    `<text x="${LEFT}" y="24" font-size="16" font-weight="bold">${esc(title)}</text>`,
    ...subtitle.map(
      (s, i) => `<text x="${LEFT}" y="${44 + i * 15}" font-size="12" fill="#333">${esc(s)}</text>`,
    ),
    ...panels.map((p, i) => panelSvg(p, top + i * (PANEL_H + GAP), xMax)),
    '</svg>',
  ];
  return parts.join('\n') + '\n';
}

/** The plot of one run. */
export function plotRun(r: RunResult): string {
  const s = r.series;
  const x = (i: number) => ((i + 0.5) * s.bucketMs) / 1000;
  const panels: PlotPanel[] = [
    {
      title: `Throughput (msg/s per ${s.bucketMs} ms bucket)`,
      unit: 'msg/s',
      lines: [
        { name: 'published', color: '#999999', points: s.published.map((v, i) => [x(i), v]) },
        {
          name: `arrived (${r.sink})`,
          color: '#1f77b4',
          points: s.delivered.map((v, i) => [x(i), v]),
        },
      ],
    },
    {
      title: 'End-to-end latency of the messages arriving in each bucket (log scale)',
      unit: 'ms',
      log: true,
      lines: [
        { name: 'p50', color: '#2ca02c', points: s.latP50.map((v, i) => [x(i), v]) },
        { name: 'p99', color: '#ff7f0e', points: s.latP99.map((v, i) => [x(i), v]) },
        { name: 'max', color: '#d62728', points: s.latMax.map((v, i) => [x(i), v]) },
      ],
    },
  ];
  if (r.procSamples?.length) {
    panels.push(
      {
        title: `Forwarder CPU (pid ${r.forwarder?.pid}; 100 % = one core)`,
        unit: '%',
        lines: [
          {
            name: 'CPU',
            color: '#9467bd',
            points: r.procSamples.map((p) => [Math.max(0, p.t / 1000), p.cpuPct]),
          },
        ],
      },
      {
        title: 'Forwarder RSS',
        unit: 'MB',
        lines: [
          {
            name: 'RSS',
            color: '#8c564b',
            points: r.procSamples.map((p) => [Math.max(0, p.t / 1000), p.rssMb]),
          },
        ],
      },
    );
  }
  const tp = r.throughput;
  const l = r.latencyMs;
  return renderPlot(
    `${r.label}: ${tp ? fmtInt(tp.endToEndMsgS) : '–'} msg/s end to end, ${fmtInt(r.counts.lost)} lost`,
    [
      describeParams(r),
      `unique ${fmtInt(r.counts.unique)}, duplicates ${fmtInt(r.counts.duplicates)}, out of order ${fmtInt(r.counts.outOfOrder)}, steady ${tp ? fmtInt(tp.steadyMsgS) : '–'} msg/s, end: ${r.endReason}`,
      `latency p50 ${fmtMs(l.p50)} / p90 ${fmtMs(l.p90)} / p99 ${fmtMs(l.p99)} / max ${fmtMs(l.max)} ms; arrival = ${r.sinkInfo.arrival}`,
      ...(r.forwarder
        ? [
            `forwarder RSS max ${r.forwarder.rssMaxMb.toFixed(0)} MB, CPU ${r.forwarder.cpuPct.toFixed(0)} % of one core`,
          ]
        : []),
    ],
    panels,
  );
}

/**
 * Plot file name (no extension) of an MQTT-only ceiling run, shared by native-bench --plot-dir,
 * the matrix and the docs' links; the mqtt.js runs keep the name they had before `raw`.
 */
export function mqttCeilingPlotName(qos: number, subscriber: SubscriberClient): string {
  return subscriber === 'raw' ? `mqtt-only-raw-qos${qos}` : `mqtt-only-qos${qos}`;
}
