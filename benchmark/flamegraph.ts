/**
 * Flame graphs from profiles of the forwarder: one HTML page per thread, a combined page with
 * every thread side by side, and an index. Pages are self-contained (data and a small renderer
 * inline): open them in a browser, click a frame to zoom, type in the box to highlight.
 *
 *   node build/benchmark/flamegraph.js --cpuprofile-dir DIR --out OUT   (node --cpu-prof files)
 *   node build/benchmark/flamegraph.js --perf-script FILE --pid PID --out OUT   (perf script text)
 *
 * benchmark/flamegraph.sh runs a benchmark cell under the profiler and calls this.
 */
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';

/** Folded stacks of one thread: "root;child;leaf" → weight (µs for cpuprofile, samples for perf). */
export interface ThreadProfile {
  readonly label: string;
  readonly unit: string;
  readonly stacks: Map<string, number>;
  /** Weight not spent running code (V8's "(idle)"), reported apart from the graph. */
  readonly idle: number;
}

interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: CpuProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

function shortUrl(url: string): string {
  if (!url) return '';
  const u = url.replace(/^file:\/\//, '');
  const nm = u.lastIndexOf('node_modules/');
  if (nm >= 0) return u.slice(nm + 'node_modules/'.length);
  const b = u.indexOf('/build/');
  if (b >= 0) return u.slice(b + '/build/'.length);
  return u;
}

function frameName(f: CpuProfileNode['callFrame']): string {
  const fn = f.functionName || '(anonymous)';
  const url = shortUrl(f.url);
  return url ? `${fn} ${url}:${f.lineNumber + 1}` : fn;
}

/** A V8 .cpuprofile (one per thread with `node --cpu-prof`) as folded stacks weighted by time. */
export function foldCpuProfile(p: CpuProfile, label: string): ThreadProfile {
  const byId = new Map<number, CpuProfileNode>();
  const parent = new Map<number, number>();
  for (const n of p.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const pathCache = new Map<number, string>();
  const stackOf = (id: number): string => {
    const cached = pathCache.get(id);
    if (cached !== undefined) return cached;
    const names: string[] = [];
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const n = byId.get(cur)!;
      if (n.callFrame.functionName === '(root)') break;
      names.push(frameName(n.callFrame).replace(/;/g, ','));
    }
    const s = names.reverse().join(';');
    pathCache.set(id, s);
    return s;
  };
  const stacks = new Map<string, number>();
  let idle = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i]!;
    // A sample's delta is the time until the next sample: its weight.
    const w = Math.max(0, p.timeDeltas[i + 1] ?? p.timeDeltas[i] ?? 0);
    if (byId.get(id)?.callFrame.functionName === '(idle)') {
      idle += w;
      continue;
    }
    const s = stackOf(id);
    stacks.set(s, (stacks.get(s) ?? 0) + w);
  }
  return { label, unit: 'µs', stacks, idle };
}

/** Every `CPU.<date>.<time>.<pid>.<threadId>.<seq>.cpuprofile` in `dir`; thread 0 is main. */
export function readCpuProfiles(dir: string): ThreadProfile[] {
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  return files
    .map((f) => {
      const parts = f.split('.');
      const pid = parts[3] ?? '?';
      const tid = Number(parts[4]);
      const label = tid === 0 ? `main (pid ${pid})` : `worker ${tid} (pid ${pid})`;
      return foldCpuProfile(
        JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as CpuProfile,
        label,
      );
    })
    .sort((a, b) => a.label.localeCompare(b.label));
}

/**
 * `perf script` output (stack blocks: "comm pid/tid ...:" then one frame per line, leaf first)
 * for one process, one profile per thread. Worker threads are the `node` threads whose stacks
 * show the producer worker or Piscina; librdkafka names its threads rdk:*.
 */
export function readPerfScript(text: string, pid: number): ThreadProfile[] {
  const threads = new Map<number, { comm: string; stacks: Map<string, number> }>();
  const blocks = text.split(/\n\s*\n/);
  for (const block of blocks) {
    const lines = block.split('\n').filter((l) => l.trim().length > 0);
    if (lines.length === 0) continue;
    const head = /^\s*(.+?)\s+(\d+)\/(\d+)\s/.exec(lines[0]!);
    if (!head || Number(head[2]) !== pid) continue;
    const tid = Number(head[3]);
    const frames = lines
      .slice(1)
      .map((l) => {
        const m = /^\s*[0-9a-f]+\s+(.+?)\s+\((.*)\)\s*$/.exec(l);
        if (!m) return l.trim();
        const sym = m[1]!.replace(/\+0x[0-9a-f]+$/, '');
        const dso = path.basename(m[2]!);
        return sym === '[unknown]' ? `[${dso}]` : dso.startsWith('perf-') ? sym : `${sym} [${dso}]`;
      })
      .map((f) => f.replace(/;/g, ','))
      .reverse();
    const t = threads.get(tid) ?? { comm: head[1]!, stacks: new Map<string, number>() };
    threads.set(tid, t);
    const s = frames.join(';') || '[no stack]';
    t.stacks.set(s, (t.stacks.get(s) ?? 0) + 1);
  }
  return [...threads.entries()]
    .map(([tid, t]) => {
      const isWorker = [...t.stacks.keys()].some((s) => /worker\/(entry|producer)|piscina/.test(s));
      const label =
        tid === pid
          ? `main (tid ${tid})`
          : t.comm.startsWith('rdk:')
            ? `${t.comm} (tid ${tid})`
            : isWorker
              ? `worker (tid ${tid})`
              : `${t.comm} (tid ${tid})`;
      return { label, unit: 'samples', stacks: t.stacks, idle: 0 };
    })
    .sort((a, b) => total(b) - total(a));
}

interface Node {
  n: string;
  v: number;
  c?: Node[];
}

function total(p: ThreadProfile): number {
  let t = 0;
  for (const v of p.stacks.values()) t += v;
  return t;
}

/** Folded stacks → tree; frames under `minShare` of the total are merged into their parent. */
function toTree(label: string, stacks: Map<string, number>, minShare = 0.0005): Node {
  type Mut = { n: string; v: number; kids?: Map<string, Mut> };
  const root: Mut = { n: label, v: 0 };
  for (const [stack, w] of stacks) {
    let cur = root;
    cur.v += w;
    for (const f of stack.split(';')) {
      if (!f) continue;
      cur.kids ??= new Map();
      let next = cur.kids.get(f);
      if (!next) {
        next = { n: f, v: 0 };
        cur.kids.set(f, next);
      }
      next.v += w;
      cur = next;
    }
  }
  const min = root.v * minShare;
  const finish = (m: Mut): Node => {
    const kids = [...(m.kids?.values() ?? [])].filter((k) => k.v >= min).sort((a, b) => b.v - a.v);
    return kids.length ? { n: m.n, v: m.v, c: kids.map(finish) } : { n: m.n, v: m.v };
  };
  return finish(root);
}

const RENDERER = `
const data = JSON.parse(document.getElementById('data').textContent);
const unit = document.body.dataset.unit;
const el = document.getElementById('graph');
const tip = document.getElementById('tip');
const ROW = 17;
let zoom = data;
let query = '';
function color(n) {
  if (/^\\((garbage collector|program)\\)/.test(n)) return '#bbbbbb';
  if (/\\[kernel|\\[vmlinux|kallsyms/.test(n)) return '#7fb3e0';
  if (/node_modules\\/|^node:|internal\\//.test(n)) return '#e8c267';
  if (/\\.js:\\d+$/.test(n)) return '#f2925b';
  if (/\\[.*\\.so/.test(n) || /::/.test(n)) return '#d7d39a';
  return '#f0a878';
}
function depth(n) { return 1 + Math.max(0, ...(n.c || []).map(depth)); }
function fmt(v) { return unit === 'µs' ? (v / 1000).toFixed(1) + ' ms' : v + ' samples'; }
function draw() {
  const width = el.clientWidth;
  const rows = depth(zoom);
  el.innerHTML = '';
  el.style.height = rows * ROW + 'px';
  const scale = width / zoom.v;
  const top = data.v;
  function walk(n, x, d) {
    const w = n.v * scale;
    if (w < 0.5) return;
    const div = document.createElement('div');
    div.className = 'f';
    div.style.left = x + 'px';
    div.style.top = (rows - 1 - d) * ROW + 'px';
    div.style.width = Math.max(0, w - 1) + 'px';
    const hit = query && n.n.toLowerCase().includes(query);
    div.style.background = hit ? '#e040fb' : color(n.n);
    if (w > 30) div.textContent = n.n;
    div.onmousemove = (e) => {
      tip.style.display = 'block';
      tip.style.left = e.pageX + 12 + 'px';
      tip.style.top = e.pageY + 12 + 'px';
      tip.textContent = n.n + ' — ' + fmt(n.v) + ' (' + (100 * n.v / top).toFixed(2) + ' % of all, ' + (100 * n.v / zoom.v).toFixed(2) + ' % of view)';
    };
    div.onmouseleave = () => (tip.style.display = 'none');
    div.onclick = () => { zoom = n; draw(); };
    el.appendChild(div);
    let cx = x;
    for (const c of n.c || []) { walk(c, cx, d + 1); cx += c.v * scale; }
  }
  walk(zoom, 0, 0);
}
document.getElementById('reset').onclick = () => { zoom = data; draw(); };
document.getElementById('q').oninput = (e) => { query = e.target.value.toLowerCase(); draw(); };
window.onresize = draw;
draw();
`;

function page(title: string, subtitle: string, unit: string, tree: Node): string {
  const json = JSON.stringify(tree).replace(/</g, '\\u003c');
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>${title}</title>
<style>
body { font: 12px sans-serif; margin: 12px; }
#graph { position: relative; width: 100%; }
.f { position: absolute; height: 16px; overflow: hidden; white-space: nowrap; font-size: 11px;
     line-height: 16px; padding-left: 2px; box-sizing: border-box; cursor: pointer; }
#tip { position: absolute; display: none; background: #ffffe0; border: 1px solid #999;
       padding: 3px 5px; pointer-events: none; max-width: 900px; }
</style></head>
<body data-unit="${unit}">
<h2 style="margin:0">${title}</h2><p>${subtitle}</p>
<p><button id="reset">reset zoom</button> <input id="q" placeholder="highlight frames containing…" size="40">
 Click a frame to zoom. Colours: orange = our code, yellow = node_modules / Node internals,
 grey = V8 (GC, program), blue = kernel, olive = native libraries.</p>
<div id="graph"></div><div id="tip"></div>
<script type="application/json" id="data">${json}</script>
<script>${RENDERER}</script>
</body></html>
`;
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
}

function fileName(label: string): string {
  return `flame-${label.replace(/[^A-Za-z0-9]+/g, '-').replace(/-+$/, '')}.html`;
}

/** Writes the pages; returns the index file. */
export function writeFlameGraphs(
  profiles: readonly ThreadProfile[],
  outDir: string,
  title: string,
): string {
  mkdirSync(outDir, { recursive: true });
  const unit = profiles[0]?.unit ?? 'µs';
  const grand = profiles.reduce((s, p) => s + total(p), 0);
  const fmt = (v: number) => (unit === 'µs' ? `${(v / 1e6).toFixed(2)} s` : `${v} samples`);
  const links: string[] = [];
  for (const p of profiles) {
    const t = total(p);
    const f = fileName(p.label);
    writeFileSync(
      path.join(outDir, f),
      page(
        `${esc(title)}: ${esc(p.label)}`,
        `${fmt(t)} on CPU${p.idle ? `, ${fmt(p.idle)} idle` : ''} (${((100 * t) / Math.max(1, grand)).toFixed(1)} % of all profiled threads)`,
        unit,
        toTree(p.label, p.stacks),
      ),
    );
    links.push(
      `<li><a href="${f}">${esc(p.label)}</a>: ${fmt(t)} on CPU${p.idle ? `, ${fmt(p.idle)} idle` : ''}</li>`,
    );
  }
  const combined = new Map<string, number>();
  for (const p of profiles) {
    for (const [s, v] of p.stacks) combined.set(`${p.label.replace(/;/g, ',')};${s}`, v);
  }
  writeFileSync(
    path.join(outDir, 'flame-all-threads.html'),
    page(
      `${esc(title)}: all threads`,
      `${fmt(grand)} on CPU in ${profiles.length} threads`,
      unit,
      toTree('all threads', combined),
    ),
  );
  const index = path.join(outDir, 'index.html');
  writeFileSync(
    index,
    `<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title></head>
<body style="font:14px sans-serif"><h2>${esc(title)}</h2>
<p><a href="flame-all-threads.html">All threads combined</a> (${fmt(grand)} on CPU)</p>
<ul>${links.join('\n')}</ul></body></html>
`,
  );
  return index;
}

if (require.main === module) {
  const o = new Command()
    .name('flamegraph')
    .option('--cpuprofile-dir <dir>', 'directory of .cpuprofile files (node --cpu-prof)')
    .option('--perf-script <file>', 'text output of perf script')
    .option('--pid <pid>', 'process to take from the perf script output')
    .option('--title <text>', 'page title', 'forwarder')
    .requiredOption('--out <dir>', 'output directory')
    .parse()
    .opts<{
      cpuprofileDir?: string;
      perfScript?: string;
      pid?: string;
      title: string;
      out: string;
    }>();
  let profiles: ThreadProfile[];
  if (o.cpuprofileDir) profiles = readCpuProfiles(o.cpuprofileDir);
  else if (o.perfScript && o.pid)
    profiles = readPerfScript(readFileSync(o.perfScript, 'utf8'), Number(o.pid));
  else {
    process.stderr.write('flamegraph: give --cpuprofile-dir, or --perf-script with --pid\n');
    process.exit(2);
  }
  if (profiles.length === 0) {
    process.stderr.write('flamegraph: no profile data found\n');
    process.exit(1);
  }
  const index = writeFlameGraphs(profiles, o.out, o.title);
  for (const p of profiles) process.stdout.write(`${p.label}: ${total(p)} ${p.unit}\n`);
  process.stdout.write(`${index}\n`);
}
