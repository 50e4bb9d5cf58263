/**
 * `npm run bench`: the whole benchmark in one run. Brings up a broker stack on its own ports,
 * measures the ceilings (publisher alone, MQTT-only, Kafka-only, dispatch), then runs the
 * forwarder (bin/forwarder.js, a fresh process per cell) through QoS 0/1/2 × wrap off/on, the
 * worker-count variants and a QoS 1 run at half the measured rate for latency. Writes every
 * result to benchmark/results/<stamp>/ and regenerates docs/BENCHMARKS.md with the plots.
 *
 *   npm run bench                              1M messages per cell (about 10 minutes)
 *   npm run bench -- --messages 100000         a quick pass
 *   npm run bench -- --only qos1-raw --set dispatch.batch_size=500
 *   npm run bench -- --sweep mqtt.inflight_window=500,1000,5000
 *
 * Every run is bounded (--timeout per run, --idle-timeout for a stalled drain); a missing
 * message is reported lost, never waited for forever.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import { KafkaSink } from './measure/kafka-consumer';
import {
  int,
  intList,
  processLayoutOption,
  processesOption,
  publisherOption,
  splitKeyValue,
} from './options';
import { writeBenchmarksDoc } from './report/docs-writer';
import { formatReport } from './report/format';
import { mqttCeilingPlotName } from './report/plot';
import { runBenchmark } from './run';
import {
  REPO_ROOT,
  ForwarderUnderTest,
  checkLayout,
  loadMappings,
} from './system/forwarder-process';
import {
  KAFKA_BENCH_PROPS,
  brokerPids,
  ensureStack,
  stack,
  stackEnvironment,
} from './system/stack';
import type {
  Cell,
  CellResult,
  Ceilings,
  DispatchResult,
  KafkaCeilingResult,
  MatrixResult,
  MqttCeiling,
  PublisherCeiling,
  ProcessLayout,
  PublisherClient,
  QoS,
  RunResult,
} from './types';

interface Opts {
  messages: number;
  ceilingMessages?: number;
  qos: number[];
  wrap: string[];
  protocol: string;
  payloadSize: number;
  topics: number;
  connections: number;
  window: number;
  publisher: PublisherClient;
  processes: number;
  processLayout: ProcessLayout;
  msgRate: number;
  extraWorkers: number[];
  halfRate: boolean;
  sweep: string[];
  set: string[];
  only?: string[];
  ceilings: boolean;
  kafkaCeilingWorkers: number[];
  docs: boolean;
  forwarderNodeArgs?: string;
  resultsDir: string;
  stackDir: string;
  mqttPort: number;
  kafkaPort: number;
  kafkaControllerPort: number;
  keepStack: boolean;
  warmup: number;
  idleTimeout: number;
  timeout: number;
}

const collect = (v: string, prev: string[]) => [...prev, v];

/** `a.b=c` → ['a.b', parsed c] (YAML scalar: numbers and booleans come out typed). */
function keyValue(s: string): [string, unknown] {
  const [key, value] = splitKeyValue(s);
  return [key, parseYaml(value) as unknown];
}

function setPath(obj: Record<string, unknown>, dotted: string, value: unknown): void {
  const keys = dotted.split('.');
  let cur = obj;
  for (const k of keys.slice(0, -1)) {
    if (typeof cur[k] !== 'object' || cur[k] === null) cur[k] = {};
    cur = cur[k] as Record<string, unknown>;
  }
  cur[keys[keys.length - 1]!] = value;
}

function shortValue(v: unknown): string {
  return String(v).replace(/[^A-Za-z0-9.-]/g, '_');
}

/** The cells to run, in order. The half-rate cell is added once its base rate is known. */
export function planCells(o: Opts): Cell[] {
  const cells: Cell[] = [];
  const base = { rate: o.msgRate, set: {} };
  for (const qos of o.qos as QoS[]) {
    for (const w of o.wrap) {
      const wrapped = w === 'on';
      cells.push({ ...base, name: `qos${qos}-${wrapped ? 'wrapped' : 'raw'}`, qos, wrapped });
    }
  }
  for (const workers of o.extraWorkers) {
    cells.push({
      ...base,
      name: `qos1-raw-workers${workers}`,
      qos: 1,
      wrapped: false,
      workers,
      note: workers === 0 ? 'inline mode: producer on the main thread' : undefined,
    });
  }
  for (const s of o.sweep) {
    const [key, values] = keyValue(s);
    for (const v of String(values).split(',')) {
      const parsed = parseYaml(v) as unknown;
      cells.push({
        ...base,
        name: `qos1-raw-${key.split('.').pop()}-${shortValue(parsed)}`,
        qos: 1,
        wrapped: false,
        set: { [key]: parsed },
        note: `sweep ${key}`,
      });
    }
  }
  // Sweep cells were asked for explicitly: --only narrows the matrix, not them.
  return o.only
    ? cells.filter((c) => o.only!.includes(c.name) || c.note?.startsWith('sweep'))
    : cells;
}

function runChild(
  args: string[],
  env: NodeJS.ProcessEnv,
  timeoutMs: number,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      args,
      {
        env,
        cwd: REPO_ROOT,
        timeout: timeoutMs,
        killSignal: 'SIGKILL',
        maxBuffer: 256 * 1024 * 1024,
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** The last JSON line a native-bench command printed (log lines may precede it). */
function lastJson<T>(stdout: string): T {
  const line = stdout
    .trim()
    .split('\n')
    .reverse()
    .find((l) => l.startsWith('{"kind"'));
  if (!line) throw new Error(`no result line in output:\n${stdout.slice(-2000)}`);
  return (JSON.parse(line) as { results: T }).results;
}

function log(msg: string): void {
  process.stderr.write(`bench: ${msg}\n`);
}

export async function main(argv: readonly string[]): Promise<void> {
  const program = new Command()
    .name('bench')
    .description(
      'benchmark matrix + ceilings on a broker stack of its own; regenerates docs/BENCHMARKS.md',
    )
    .option('-m, --messages <n>', 'messages per forwarder cell', int(1), 1_000_000)
    .option('--ceiling-messages <n>', 'messages per ceiling run (default: --messages)', int(1))
    .option('--qos <list>', 'QoS levels', intList(0, 2), [0, 1, 2])
    .option('--wrap <list>', 'wrap_as_json variants: off,on', (v: string) => v.split(','), [
      'off',
      'on',
    ])
    .option('--protocol <v>', "MQTT protocol: 5 or '3.1.1'", '5')
    .option('-s, --payload-size <bytes>', 'payload size', int(24), 100)
    .option('-t, --topics <n>', 'MQTT topics the load is spread over', int(1), 8)
    .option('--connections <n>', 'publisher connections', int(1), 1)
    .option('--window <n>', 'publisher window per connection', int(1), 1000)
    .addOption(publisherOption())
    .addOption(processesOption())
    .addOption(processLayoutOption())
    .option('-r, --msg-rate <n>', 'publish rate limit (0 = unlimited)', int(0), 0)
    .option(
      '--extra-workers <list>',
      'extra QoS 1 raw cells with dispatch.workers = n',
      intList(0, 64),
      [0, 2],
    )
    .option('--no-half-rate', 'skip the QoS 1 latency run at half the measured rate')
    .option('--sweep <key=v1,v2>', 'extra QoS 1 raw cells, one per value (repeatable)', collect, [])
    .option(
      '--set <key=value>',
      'forwarder config override for every cell (repeatable)',
      collect,
      [],
    )
    .option('--only <names>', 'run only these cells (e.g. qos1-raw)', (v: string) => v.split(','))
    .option('--no-ceilings', 'skip the ceiling measurements')
    .option(
      '--kafka-ceiling-workers <list>',
      'Kafka-only ceiling thread configs',
      intList(0, 64),
      [0, 1, 2],
    )
    .option('--no-docs', 'do not regenerate docs/BENCHMARKS.md and docs/benchmarks/')
    .option('--forwarder-node-args <args>', 'node flags for the forwarder, e.g. "--cpu-prof"')
    .option('--results-dir <dir>', 'where results go', path.join(REPO_ROOT, 'benchmark', 'results'))
    .option('--stack-dir <dir>', 'broker state folder', path.join(REPO_ROOT, '.stack', 'bench'))
    .option('--mqtt-port <n>', 'mosquitto port', int(1), 28830)
    .option('--kafka-port <n>', 'Kafka port', int(1), 29092)
    .option('--kafka-controller-port <n>', 'Kafka controller port', int(1), 29093)
    .option('--keep-stack', 'leave the brokers running afterwards', false)
    .option('--warmup <n>', 'uncounted messages through each forwarder first', int(0), 2000)
    .option('--idle-timeout <s>', 'end a run after this long without an arrival', int(1), 15)
    .option('--timeout <s>', 'bound per run', int(1), 900)
    .parse(argv as string[]);
  const o = program.opts<Opts>();
  // A layout that cannot work fails here, not after the ceilings have run.
  checkLayout({ topics: o.topics, processes: o.processes, layout: o.processLayout });
  const t0 = Date.now();
  const startedAt = new Date().toISOString();
  const stamp = startedAt.replace(/[:.]/g, '-');
  const resultsDir = path.join(o.resultsDir, stamp);
  mkdirSync(resultsDir, { recursive: true });
  const protocolVersion: 4 | 5 = o.protocol === '5' ? 5 : 4;
  const ceilingMessages = o.ceilingMessages ?? o.messages;
  const set: Record<string, unknown> = Object.fromEntries(o.set.map(keyValue));

  mkdirSync(o.stackDir, { recursive: true });
  const propsFile = path.join(o.stackDir, 'bench-kafka.properties');
  writeFileSync(propsFile, KAFKA_BENCH_PROPS);
  const stackEnv: NodeJS.ProcessEnv = {
    ...process.env,
    MKF_STACK_DIR: o.stackDir,
    MQTT_PORT: String(o.mqttPort),
    KAFKA_PORT: String(o.kafkaPort),
    KAFKA_CONTROLLER_PORT: String(o.kafkaControllerPort),
    KAFKA_EXTRA_PROPS: propsFile,
  };
  const brokers = `127.0.0.1:${o.kafkaPort}`;
  const mqttAddr = `127.0.0.1:${o.mqttPort}`;

  let startedStack = false;
  let forwarder: ForwarderUnderTest | undefined;
  const cleanup = async (): Promise<void> => {
    if (forwarder) await forwarder.stop(10_000);
    if (startedStack && !o.keepStack) {
      const down = await stack('down', stackEnv);
      log(down.out.trim());
    }
  };
  let interrupted = false;
  const onSignal = (): void => {
    if (interrupted) return;
    interrupted = true;
    log('interrupted; stopping the forwarder and the stack');
    void cleanup().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    startedStack = await ensureStack(o.stackDir, stackEnv, log);
    const environment = await stackEnvironment(stackEnv, log);

    const childEnv: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: 'warn' };
    const childTimeout = o.timeout * 1000 * 4;
    const ceilings: Ceilings = { errors: [] };
    const common = [
      '--messages',
      String(ceilingMessages),
      '--payload-size',
      String(o.payloadSize),
      '--json',
    ];
    const mqttArgs = [
      ...common,
      '--mqtt',
      mqttAddr,
      '--topics',
      String(o.topics),
      '--protocol',
      o.protocol,
      '--connections',
      String(o.connections),
      '--window',
      String(o.window),
      '--publisher',
      o.publisher,
      '--idle-timeout',
      String(o.idleTimeout),
      '--timeout',
      String(o.timeout),
    ];
    const nb = path.join(REPO_ROOT, 'build', 'benchmark', 'native-bench.js');
    const qosList = [...new Set(o.qos)].join(',');
    const ceilingRuns: [string, string[], (stdout: string) => void][] = o.ceilings
      ? [
          [
            'publisher alone',
            [nb, 'publisher', ...mqttArgs, '--qos', qosList],
            (s) => (ceilings.publisher = lastJson<PublisherCeiling[]>(s)),
          ],
          [
            'MQTT-only ceiling',
            [
              nb,
              'mqtt',
              ...mqttArgs,
              '--qos',
              qosList,
              '--warmup',
              String(o.warmup),
              '--plot-dir',
              resultsDir,
            ],
            (s) => {
              const rows = lastJson<MqttCeiling[]>(s);
              ceilings.mqtt = rows.filter((r) => r.subscriber === 'mqttjs');
              ceilings.mqttRaw = rows.filter((r) => r.subscriber === 'raw');
            },
          ],
          [
            'Kafka-only ceiling',
            [
              nb,
              'kafka',
              ...common,
              '--kafka',
              brokers,
              '--keys',
              String(o.topics),
              '--workers',
              o.kafkaCeilingWorkers.join(','),
              '--topic',
              'mkfbench-kafka-ceiling',
            ],
            (s) => (ceilings.kafka = lastJson<KafkaCeilingResult[]>(s)),
          ],
          [
            'dispatch round trip',
            [nb, 'dispatch', '--json', '--payload-size', String(o.payloadSize)],
            (s) => (ceilings.dispatch = lastJson<DispatchResult[]>(s)),
          ],
        ]
      : [];
    for (const [what, args, take] of ceilingRuns) {
      if (interrupted) break;
      const t = Date.now();
      log(`${what} …`);
      const r = await runChild(args, childEnv, childTimeout);
      try {
        if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.stderr.slice(-1500)}`);
        take(r.stdout);
        log(`${what} done in ${((Date.now() - t) / 1000).toFixed(1)} s`);
      } catch (err) {
        const msg = `${what}: ${(err as Error).message}`;
        ceilings.errors.push(msg);
        log(msg);
      }
    }
    for (const r of [...(ceilings.mqtt ?? []), ...(ceilings.mqttRaw ?? [])]) {
      process.stderr.write(formatReport(r) + '\n');
    }

    const cells = planCells(o);
    const results: CellResult[] = [];
    const runCell = async (cell: Cell): Promise<CellResult> => {
      const dir = path.join(resultsDir, cell.name);
      const config: Record<string, unknown> = {
        mqtt: {
          host: '127.0.0.1',
          port: o.mqttPort,
          client_id: '',
          protocol_version: protocolVersion === 5 ? 5 : '3.1.1',
        },
        kafka: { bootstrap_server: '127.0.0.1', port: o.kafkaPort },
        forwarding: [],
        dispatch: cell.workers === undefined ? {} : { workers: cell.workers },
        http: { host: '127.0.0.1', port: 0 },
        log_level: 'info',
      };
      for (const [k, v] of Object.entries({ ...set, ...cell.set })) setPath(config, k, v);
      const workers = (config['dispatch'] as { workers?: number }).workers ?? 1;
      const layout = loadMappings({
        mapping: {
          name: 'bench',
          mqtt: { topic: `mkfbench/${cell.name}/#`, qos: 2 },
          kafka: { topic: `mkfbench-${cell.name}` },
          wrap_as_json: cell.wrapped,
        },
        prefix: `mkfbench/${cell.name}`,
        topics: o.topics,
        processes: o.processes,
        layout: o.processLayout,
        workers,
      });
      config['forwarding'] = layout.forwarding;
      Object.assign(config, layout.top);
      log(`${cell.name} …`);
      forwarder = await ForwarderUnderTest.start({
        config,
        dir,
        nodeArgs: o.forwarderNodeArgs?.split(' ').filter((a) => a.length > 0) ?? [],
        filters: layout.filters,
        producers: layout.producers,
      });
      let result: RunResult | undefined;
      let error: string | undefined;
      try {
        result = await runBenchmark(
          {
            label: cell.name,
            messages: o.messages,
            qos: cell.qos,
            rate: cell.rate,
            wrapped: cell.wrapped,
            payloadSize: o.payloadSize,
            topics: o.topics,
            protocolVersion,
            connections: o.connections,
            window: o.window,
            publisherClient: o.publisher,
            mqttHost: '127.0.0.1',
            mqttPort: o.mqttPort,
            topicPrefix: `mkfbench/${cell.name}`,
            forwarderPid: forwarder.pid,
            ...(o.processes > 1 ? { processes: o.processes } : {}),
            watchPids: brokerPids(o.stackDir),
            warmup: o.warmup,
            idleTimeoutMs: o.idleTimeout * 1000,
            timeoutMs: o.timeout * 1000,
            plotFile: path.join(resultsDir, `${cell.name}.svg`),
          },
          new KafkaSink(brokers, `mkfbench-${cell.name}`, true),
        );
        process.stderr.write(formatReport(result) + '\n');
      } catch (err) {
        error = (err as Error).message;
        log(`${cell.name} failed: ${error}`);
      }
      const exit = await forwarder.stop(30_000);
      const lastLines = forwarder.lastLines();
      forwarder = undefined;
      const r: CellResult = {
        cell,
        ...(result ? { result } : {}),
        ...(error ? { error, forwarderLog: lastLines } : {}),
        forwarderExit: exit,
      };
      writeFileSync(path.join(dir, 'result.json'), JSON.stringify(r, null, 2) + '\n');
      return r;
    };
    for (const cell of cells) {
      if (interrupted) break;
      results.push(await runCell(cell));
      if (cell.name === 'qos1-raw' && o.halfRate && !o.only) {
        const base = results[results.length - 1]!.result?.throughput?.endToEndMsgS;
        if (base && Number.isFinite(base)) {
          const rate = Math.max(1, Math.round(base / 2 / 100) * 100);
          results.push(
            await runCell({
              name: 'qos1-raw-half-rate',
              qos: 1,
              wrapped: false,
              rate,
              set: {},
              note: `latency at half the measured QoS 1 rate (${rate} msg/s)`,
            }),
          );
        }
      }
    }

    const matrix: MatrixResult = {
      tool: 'mkf-bench-matrix',
      startedAt,
      finishedAt: new Date().toISOString(),
      wallS: (Date.now() - t0) / 1000,
      command:
        process.env['npm_lifecycle_event'] === 'bench'
          ? `npm run bench${argv.length > 2 ? ` -- ${argv.slice(2).join(' ')}` : ''}`
          : ['node build/benchmark/run-matrix.js', ...argv.slice(2)].join(' '),
      environment,
      settings: {
        messages: o.messages,
        ceilingMessages,
        payloadSize: o.payloadSize,
        topics: o.topics,
        protocol: protocolVersion === 5 ? '5' : '3.1.1',
        connections: o.connections,
        window: o.window,
        publisher: o.publisher,
        ...(o.processes > 1 ? { processes: o.processes, processLayout: o.processLayout } : {}),
        set,
        mqtt: mqttAddr,
        kafka: brokers,
        brokerNotes: [
          'mosquitto (scripts/stack): max_queued_messages 0, max_inflight_messages 0, persistence on',
          'Kafka (scripts/stack + bench props): single KRaft node, 1 partition per topic, log.message.timestamp.type=LogAppendTime',
        ],
      },
      ceilings,
      cells: results,
      resultsDir,
    };
    const file = path.join(resultsDir, 'matrix.json');
    writeFileSync(file, JSON.stringify(matrix, null, 2) + '\n');
    log(`results: ${file}`);
    if (o.docs && !interrupted) {
      const docs = path.join(REPO_ROOT, 'docs');
      const plots = path.join(docs, 'benchmarks');
      mkdirSync(plots, { recursive: true });
      // The folder holds this run's plots only: a plot of an earlier run's cell would sit next
      // to numbers it does not belong to.
      for (const f of readdirSync(plots)) if (f.endsWith('.svg')) rmSync(path.join(plots, f));
      const copied: Record<string, string> = {};
      const copy = (from: string | undefined, name: string): void => {
        if (!from) return;
        try {
          copyFileSync(from, path.join(plots, `${name}.svg`));
          copied[name] = `benchmarks/${name}.svg`;
        } catch {
          // a run that failed before plotting has no file
        }
      };
      for (const c of results) copy(c.result?.plotFile, c.cell.name);
      for (const m of [...(ceilings.mqtt ?? []), ...(ceilings.mqttRaw ?? [])]) {
        copy(m.plotFile, mqttCeilingPlotName(m.params.qos, m.subscriber));
      }
      await writeBenchmarksDoc(path.join(docs, 'BENCHMARKS.md'), matrix, copied);
      log('docs/BENCHMARKS.md regenerated');
    }
  } finally {
    await cleanup();
  }
}

if (require.main === module) {
  main(process.argv).then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(
        `bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
      );
      process.exit(1);
    },
  );
}
