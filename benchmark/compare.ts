/**
 * `npm run bench:compare`: this forwarder and the reference service (the Rust
 * mqtt-kafka-forwarding-service it replaces) side by side, on the same brokers, the same load
 * and the same machine. For each case both subjects run in turn (A, B, A, B with --repeat 2),
 * each a fresh process started with the same config file, measured by the same harness as
 * `npm run bench` (run.ts: publisher thread, kcat consumer, loss/duplicate/reorder counts,
 * latency percentiles, /proc CPU and RSS of the subject's pid). Prints one table of both and
 * their ratio and writes compare.json.
 *
 *   npm run bench:compare -- --reference-bin /path/to/reference/target/release/forwarder
 *   npm run bench:compare -- --messages 20000 --timeout 120 --only qos1,idle
 *
 * Every run is bounded (--timeout, --idle-timeout, start and stop timeouts); what it starts
 * (stack if not running, capped mosquittos, subjects) it stops by PID at the end or on Ctrl-C.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { stringify } from 'yaml';
import { mqttCeiling } from './ceilings/mqtt-ceiling';
import { KafkaSink } from './measure/kafka-consumer';
import { ProcSampler } from './measure/proc-sampler';
import {
  int,
  intList,
  processLayoutOption,
  processesOption,
  protocolOf,
  publisherOption,
  kafkaConfigOption,
} from './options';
import { describeCappedBroker, describeProbe, formatCompare } from './report/compare-table';
import { formatReport } from './report/format';
import { runBenchmark } from './run';
import { CappedBroker } from './system/capped-broker';
import {
  REPO_ROOT,
  ForwarderUnderTest,
  checkLayout,
  loadMappings,
} from './system/forwarder-process';
import { ReferenceUnderTest, referenceBinaryProblem } from './system/reference-process';
import {
  KAFKA_BENCH_PROPS,
  brokerPids,
  ensureStack,
  stack,
  stackEnvironment,
} from './system/stack';
import { CAPPED_BROKER_KINDS, SUBJECT_NAMES, SUBSCRIBER_CLIENTS } from './types';
import type {
  CappedBrokerInfo,
  CappedBrokerKind,
  CompareCase,
  CompareCeilingRun,
  CompareResult,
  CompareRun,
  ProcSummary,
  ProcessLayout,
  ProtocolVersion,
  PublisherClient,
  RunOptions,
  SubjectName,
  SubjectProcess,
  SubscriberClient,
} from './types';

interface Opts {
  messages: number;
  only?: string[];
  rate: number;
  caps: number[];
  idleSeconds: number;
  idleSettle: number;
  repeat: number;
  subjects: SubjectName[];
  referenceBin?: string;
  protocol: ProtocolVersion;
  payloadSize: number;
  topics: number;
  window: number;
  publisher: PublisherClient;
  processes: number;
  processLayout: ProcessLayout;
  kafkaConfig: Record<string, string>;
  warmup: number;
  ceilings: boolean;
  ceilingSubscriber: SubscriberClient;
  resultsDir: string;
  stackDir: string;
  mqttPort: number;
  kafkaPort: number;
  kafkaControllerPort: number;
  cappedMqttPort: number;
  cappedBroker: CappedBrokerKind;
  keepStack: boolean;
  idleTimeout: number;
  timeout: number;
}

/** Brokers settle between runs (Kafka's log flush, mosquitto's freed sessions). */
const BETWEEN_RUNS_MS = 2_000;
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 30_000;

/** A mistake in the command line: said in one line, exit code 2. */
class UsageError extends Error {}

function log(msg: string): void {
  process.stderr.write(`compare: ${msg}\n`);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The cases, in order (the issue's list). */
export function planCases(
  o: Pick<Opts, 'rate' | 'caps' | 'idleSeconds' | 'only' | 'cappedBroker'>,
): CompareCase[] {
  const cases: CompareCase[] = [
    { name: 'qos1', kind: 'load', qos: 1, rate: 0, description: 'QoS 1, unlimited rate' },
    { name: 'qos0', kind: 'load', qos: 0, rate: 0, description: 'QoS 0, unlimited rate' },
    { name: 'qos2', kind: 'load', qos: 2, rate: 0, description: 'QoS 2, unlimited rate' },
    {
      name: `qos1-rate${o.rate}`,
      kind: 'load',
      qos: 1,
      rate: o.rate,
      description: `QoS 1 at a steady ${o.rate.toLocaleString('en-US')} msg/s: CPU per message, p99 latency, RSS`,
    },
    {
      name: 'idle',
      kind: 'idle',
      qos: 1,
      rate: 0,
      description: `connected, no load, ${o.idleSeconds} s: CPU % of a core, RSS`,
    },
    ...o.caps.map((n): CompareCase => ({
      name: `qos1-inflight${n}`,
      kind: 'load',
      qos: 1,
      rate: 0,
      maxInflight: n,
      description:
        o.cappedBroker === 'mosquitto'
          ? `QoS 1, unlimited, through a mosquitto with max_inflight_messages ${n} (MQTT 3.1.1 clients)`
          : `QoS 1, unlimited, through HiveMQ CE with an in-flight window of ${n} (MQTT 3.1.1 clients)`,
    })),
  ];
  if (!o.only) return cases;
  const unknown = o.only.filter((n) => !cases.some((c) => c.name === n));
  if (unknown.length > 0) {
    throw new InvalidArgumentError(
      `no case named ${unknown.join(', ')}; the cases are ${cases.map((c) => c.name).join(', ')}`,
    );
  }
  return cases.filter((c) => o.only!.includes(c.name));
}

/** This forwarder's `processes` in a run's config, and how the load's mapping is laid out. */
export interface SubjectProcesses {
  readonly processes: number;
  readonly layout: ProcessLayout;
  /** The load's MQTT topics (`<mqttTopic>/0..topics-1`). */
  readonly topics: number;
}

/**
 * The one config file of a run, read by both subjects. Its keys are the reference's format
 * (README "Configuration", src/config.rs); this forwarder reads that format unchanged. Some keys
 * are this forwarder's only, and the reference ignores unknown keys: `mqtt.protocol_version`
 * (the reference speaks MQTT 3.1.1 only), `http` (its HTTP API on loopback and any free port;
 * the reference's is fixed at 0.0.0.0:8080) and, with `procs.processes` > 1, `processes` and a
 * mapping's `share`. With the split layout both subjects get one mapping per topic.
 */
export function subjectConfig(
  mqttPort: number,
  kafkaPort: number,
  protocol: ProtocolVersion,
  mqttTopic: string,
  kafkaTopic: string,
  procs: SubjectProcesses = { processes: 1, layout: 'split', topics: 1 },
  kafkaConfig: Record<string, string> = {},
): Record<string, unknown> {
  const layout = loadMappings({
    mapping: {
      name: 'compare',
      mqtt: { topic: `${mqttTopic}/#` },
      kafka: { topic: kafkaTopic },
      wrap_as_json: false,
    },
    prefix: mqttTopic,
    topics: procs.topics,
    processes: procs.processes,
    layout: procs.layout,
    workers: 1,
  });
  return {
    mqtt: {
      host: '127.0.0.1',
      port: mqttPort,
      // Empty: a clean session for both (rumqttc allows an empty id only with one).
      client_id: '',
      protocol_version: protocol === 5 ? 5 : '3.1.1',
    },
    kafka: {
      bootstrap_server: '127.0.0.1',
      port: kafkaPort,
      ...(Object.keys(kafkaConfig).length > 0 ? { config: kafkaConfig } : {}),
    },
    ...layout.top,
    forwarding: layout.forwarding,
    http: { host: '127.0.0.1', port: 0 },
  };
}

/** A ProcSummary without its samples (they would only repeat the figure 30 times). */
function omitSamples(p: ProcSummary): Omit<ProcSummary, 'samples'> {
  const out: Record<string, unknown> = { ...p };
  delete out['samples'];
  return out as Omit<ProcSummary, 'samples'>;
}

function binaryInfo(bin: string): { path: string; bytes: number; sha256: string; mtime: string } {
  const st = statSync(bin);
  return {
    path: path.resolve(bin),
    bytes: st.size,
    sha256: createHash('sha256').update(readFileSync(bin)).digest('hex'),
    mtime: st.mtime.toISOString(),
  };
}

export async function main(argv: readonly string[]): Promise<void> {
  const program = new Command()
    .name('bench:compare')
    .description('this forwarder and the reference service side by side, same brokers and load')
    .option('-m, --messages <n>', 'messages per load run', int(1), 200_000)
    .option('--only <names>', 'run only these cases (comma-separated)', (v: string) => v.split(','))
    .option('-r, --rate <n>', 'msg/s of the steady-rate case', int(1), 10_000)
    .option(
      '--caps <list>',
      'max_inflight_messages of the capped cases',
      intList(1, 65535),
      [20, 50],
    )
    .option('--idle-seconds <s>', 'length of the idle case', int(1), 30)
    .option(
      '--idle-settle <s>',
      'idle case: wait this long after the start before measuring',
      int(0),
      5,
    )
    .option('--repeat <n>', 'runs per subject and case, alternated A, B, A, B', int(1, 20), 1)
    .addOption(
      new Option('--subjects <list>', 'which subjects run, in this order')
        .argParser((v: string) => {
          const list = v.split(',') as SubjectName[];
          for (const s of list) {
            if (!SUBJECT_NAMES.includes(s)) {
              throw new InvalidArgumentError(`expected ${SUBJECT_NAMES.join(', ')}`);
            }
          }
          return list;
        })
        .default([...SUBJECT_NAMES]),
    )
    .option(
      '--reference-bin <path>',
      'the reference service binary (default: $REFERENCE_BIN)',
      process.env['REFERENCE_BIN'],
    )
    .addOption(
      new Option(
        '--protocol <v>',
        "MQTT of the publisher and of this forwarder in the uncapped cases: '3.1.1' (the reference's only one) or 5",
      )
        .argParser(protocolOf)
        .default(4 as ProtocolVersion, "'3.1.1'"),
    )
    .option('-s, --payload-size <bytes>', 'payload size', int(24), 100)
    .option('-t, --topics <n>', 'MQTT topics the load is spread over', int(1, 65535), 8)
    .option('--window <n>', 'publisher window (publishes in flight)', int(1, 65535), 1000)
    .addOption(publisherOption())
    .addOption(processesOption("this forwarder's top-level `processes` (the reference ignores it)"))
    .addOption(processLayoutOption())
    .addOption(
      kafkaConfigOption(
        "librdkafka properties for this forwarder's kafka.config (the reference ignores the key)",
      ),
    )
    .option('--warmup <n>', 'uncounted messages through each subject first', int(0), 2000)
    .option('--no-ceilings', 'skip the MQTT-only ceiling of the capped cases')
    .addOption(
      new Option('--ceiling-subscriber <client>', 'subscriber of the MQTT-only ceiling')
        .choices(SUBSCRIBER_CLIENTS)
        .default('raw'),
    )
    .option('--results-dir <dir>', 'where results go', path.join(REPO_ROOT, 'benchmark', 'results'))
    .option('--stack-dir <dir>', 'broker state folder', path.join(REPO_ROOT, '.stack', 'compare'))
    .option('--mqtt-port <n>', 'mosquitto port of the stack', int(1, 65535), 38830)
    .option('--kafka-port <n>', 'Kafka port', int(1, 65535), 39092)
    .option('--kafka-controller-port <n>', 'Kafka controller port', int(1, 65535), 39093)
    .option('--capped-mqtt-port <n>', 'port of the capped broker', int(1, 65535), 38840)
    .addOption(
      new Option('--capped-broker <kind>', 'broker of the capped cases (hivemq: scripts/broker2)')
        .choices(CAPPED_BROKER_KINDS)
        .default('mosquitto'),
    )
    .option('--keep-stack', 'leave the brokers running afterwards', false)
    .option('--idle-timeout <s>', 'end a run after this long without an arrival', int(1), 15)
    .option('--timeout <s>', 'bound per run', int(1), 600)
    .parse(argv as string[]);
  const o = program.opts<Opts>();
  const cases = planCases(o);
  const procs: SubjectProcesses = {
    processes: o.processes,
    layout: o.processLayout,
    topics: o.topics,
  };
  // What the forwarder waits for at its start; also refuses a layout that cannot work, now.
  const readiness = ((): ReturnType<typeof checkLayout> => {
    try {
      return checkLayout({ topics: o.topics, processes: o.processes, layout: o.processLayout });
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  })();
  if (o.subjects.includes('reference')) {
    const problem = referenceBinaryProblem(o.referenceBin);
    if (problem) throw new UsageError(problem);
  }
  const t0 = Date.now();
  const startedAt = new Date().toISOString();
  const resultsDir = path.join(o.resultsDir, `compare-${startedAt.replace(/[:.]/g, '-')}`);
  mkdirSync(resultsDir, { recursive: true });

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

  let startedStack = false;
  let subject: SubjectProcess | undefined;
  let capped: CappedBroker | undefined;
  const cleanup = async (): Promise<void> => {
    if (subject) await subject.stop(10_000);
    subject = undefined;
    if (capped) await capped.stop();
    capped = undefined;
    if (startedStack && !o.keepStack) {
      startedStack = false;
      log((await stack('down', stackEnv)).out.trim());
    }
  };
  let interrupted = false;
  const onSignal = (): void => {
    if (interrupted) return;
    interrupted = true;
    log('interrupted; stopping what this run started');
    void cleanup().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const runs: CompareRun[] = [];
  const ceilings: CompareCeilingRun[] = [];
  const cappedBrokers: CappedBrokerInfo[] = [];
  try {
    startedStack = await ensureStack(o.stackDir, stackEnv, log);
    const environment = await stackEnvironment(stackEnv, log);
    const referenceBinary =
      o.subjects.includes('reference') && o.referenceBin ? binaryInfo(o.referenceBin) : undefined;

    const startSubject = async (
      name: SubjectName,
      dir: string,
      configFile: string,
    ): Promise<SubjectProcess> =>
      name === 'forwarder'
        ? ForwarderUnderTest.start({
            configFile,
            dir,
            filters: readiness.filters,
            producers: readiness.producers,
            readyTimeoutMs: START_TIMEOUT_MS,
          })
        : ReferenceUnderTest.start({
            bin: o.referenceBin!,
            configFile,
            dir,
            readyTimeoutMs: START_TIMEOUT_MS,
          });

    const runOne = async (
      cs: CompareCase,
      name: SubjectName,
      repeat: number,
    ): Promise<CompareRun> => {
      const dir = path.join(resultsDir, cs.name, `${name}-${repeat}`);
      mkdirSync(dir, { recursive: true });
      const mqttPort = capped ? capped.port : o.mqttPort;
      // A capped case uses MQTT 3.1.1: mosquitto caps only those subscribers (capped-broker.ts),
      // and the reference speaks nothing else.
      const protocol: ProtocolVersion = cs.maxInflight !== undefined ? 4 : o.protocol;
      const mqttTopic = `mkfcmp/${cs.name}/${name}`;
      const kafkaTopic = `mkfcmp-${cs.name}-${name}`;
      const configFile = path.join(dir, 'config.yaml');
      writeFileSync(
        configFile,
        `# Written by benchmark/compare.ts: read unchanged by this forwarder and by the reference.\n` +
          stringify(
            subjectConfig(
              mqttPort,
              o.kafkaPort,
              protocol,
              mqttTopic,
              kafkaTopic,
              procs,
              o.kafkaConfig,
            ),
          ),
      );
      const run: { -readonly [K in keyof CompareRun]: CompareRun[K] } = {
        case: cs.name,
        subject: name,
        repeat,
        startedAt: new Date().toISOString(),
        dir,
      };
      log(`${cs.name}: ${name} #${repeat} …`);
      try {
        subject = await startSubject(name, dir, configFile);
        if (cs.kind === 'idle') {
          await sleep(o.idleSettle * 1000);
          const sampler = new ProcSampler(subject.pid, 1000);
          await sleep(o.idleSeconds * 1000);
          const summary = omitSamples(sampler.stop());
          run.idle = { seconds: o.idleSeconds, settleSeconds: o.idleSettle, forwarder: summary };
          log(
            `${cs.name}: ${name} #${repeat}: CPU ${summary.cpuPct.toFixed(2)} % of a core, RSS ${summary.rssMaxMb.toFixed(1)} MB`,
          );
        } else {
          const opts: RunOptions = {
            label: `${cs.name} ${name} #${repeat}`,
            messages: o.messages,
            qos: cs.qos,
            rate: cs.rate,
            wrapped: false,
            payloadSize: o.payloadSize,
            topics: o.topics,
            protocolVersion: protocol,
            connections: 1,
            window: o.window,
            publisherClient: o.publisher,
            mqttHost: '127.0.0.1',
            mqttPort,
            topicPrefix: mqttTopic,
            forwarderPid: subject.pid,
            ...(name === 'forwarder' && o.processes > 1 ? { processes: o.processes } : {}),
            watchPids: {
              ...brokerPids(o.stackDir),
              ...(capped
                ? { [`${capped.kind} (inflight ${capped.maxInflight})`]: capped.pid }
                : {}),
            },
            warmup: o.warmup,
            idleTimeoutMs: o.idleTimeout * 1000,
            timeoutMs: o.timeout * 1000,
            plotFile: path.join(dir, 'plot.svg'),
          };
          run.result = await runBenchmark(opts, new KafkaSink(brokers, kafkaTopic, true));
          process.stderr.write(formatReport(run.result) + '\n');
        }
      } catch (err) {
        run.error = (err as Error).message;
        log(`${cs.name}: ${name} #${repeat} failed: ${run.error}`);
      }
      if (subject) {
        run.subjectExit = await subject.stop(STOP_TIMEOUT_MS);
        if (run.error) run.subjectLog = subject.lastLines();
        subject = undefined;
      }
      writeFileSync(path.join(dir, 'result.json'), JSON.stringify(run, null, 2) + '\n');
      return run;
    };

    const runCeiling = async (cs: CompareCase, repeat: number): Promise<CompareCeilingRun> => {
      log(`${cs.name}: MQTT-only ceiling #${repeat} (${o.ceilingSubscriber} subscriber) …`);
      try {
        const result = await mqttCeiling(
          {
            label: `${cs.name} MQTT-only #${repeat}`,
            messages: o.messages,
            qos: 1,
            rate: 0,
            wrapped: false,
            payloadSize: o.payloadSize,
            topics: o.topics,
            protocolVersion: 4,
            connections: 1,
            window: o.window,
            publisherClient: o.publisher,
            mqttHost: '127.0.0.1',
            mqttPort: capped!.port,
            topicPrefix: `mkfcmp/${cs.name}/ceiling`,
            warmup: o.warmup,
            idleTimeoutMs: o.idleTimeout * 1000,
            timeoutMs: o.timeout * 1000,
          },
          o.ceilingSubscriber,
        );
        process.stderr.write(formatReport(result) + '\n');
        return { case: cs.name, repeat, result };
      } catch (err) {
        log(`${cs.name}: MQTT-only ceiling failed: ${(err as Error).message}`);
        return { case: cs.name, repeat, error: (err as Error).message };
      }
    };

    for (const cs of cases) {
      if (interrupted) break;
      if (cs.maxInflight !== undefined) {
        try {
          capped = await CappedBroker.start(
            o.cappedBroker,
            o.cappedMqttPort,
            cs.maxInflight,
            path.join(resultsDir, cs.name),
          );
        } catch (err) {
          const error = `capped broker: ${(err as Error).message}`;
          log(`${cs.name}: ${error}`);
          for (let r = 1; r <= o.repeat; r++) {
            for (const s of o.subjects) {
              runs.push({
                case: cs.name,
                subject: s,
                repeat: r,
                startedAt: new Date().toISOString(),
                dir: '',
                error,
              });
            }
          }
          continue;
        }
        const info = capped.info();
        cappedBrokers.push(info);
        log(
          `${cs.name}: ${describeCappedBroker(info)} (pid ${info.pid}): ${info.probes.map(describeProbe).join('; ')}`,
        );
      }
      for (let r = 1; r <= o.repeat && !interrupted; r++) {
        if (capped && o.ceilings) {
          ceilings.push(await runCeiling(cs, r));
          await sleep(BETWEEN_RUNS_MS);
        }
        for (const s of o.subjects) {
          if (interrupted) break;
          runs.push(await runOne(cs, s, r));
          await sleep(BETWEEN_RUNS_MS);
        }
      }
      if (capped) await capped.stop();
      capped = undefined;
    }

    const result: CompareResult = {
      tool: 'mkf-bench-compare',
      startedAt,
      finishedAt: new Date().toISOString(),
      wallS: (Date.now() - t0) / 1000,
      command:
        process.env['npm_lifecycle_event'] === 'bench:compare'
          ? `npm run bench:compare${argv.length > 2 ? ` -- ${argv.slice(2).join(' ')}` : ''}`
          : ['node build/benchmark/compare.js', ...argv.slice(2)].join(' '),
      environment,
      settings: {
        messages: o.messages,
        payloadSize: o.payloadSize,
        topics: o.topics,
        protocol: o.protocol === 5 ? '5' : '3.1.1',
        window: o.window,
        publisher: o.publisher,
        warmup: o.warmup,
        ...(o.processes > 1 ? { processes: o.processes, processLayout: o.processLayout } : {}),
        ...(Object.keys(o.kafkaConfig).length > 0 ? { kafkaConfig: o.kafkaConfig } : {}),
        repeat: o.repeat,
        subjects: o.subjects,
        ceilingSubscriber: o.ceilingSubscriber,
        cappedBroker: o.cappedBroker,
        mqtt: `127.0.0.1:${o.mqttPort}`,
        kafka: brokers,
        ...(referenceBinary ? { referenceBinary } : {}),
        notes: [
          "one config file per run, read unchanged by both subjects (reference format; mqtt.protocol_version and http are this forwarder's only, ignored by the reference)",
          'each subject with its own Kafka producer defaults: the reference sets message.timeout.ms 12000 and max.in.flight.requests.per.connection 500 (librdkafka acks default all, no idempotence); this forwarder acks all with enable.idempotence',
          'mosquitto (scripts/stack): max_queued_messages 0, max_inflight_messages 0, persistence on',
          o.cappedBroker === 'mosquitto'
            ? 'capped cases: a second mosquitto, max_queued_messages 0, max_inflight_messages N, persistence off; MQTT 3.1.1 clients'
            : 'capped cases: HiveMQ CE (scripts/broker2), HIVEMQ_MAX_INFLIGHT N, file persistence; MQTT 3.1.1 clients',
          'Kafka (scripts/stack + bench props): single KRaft node, 1 partition per topic, log.message.timestamp.type=LogAppendTime',
        ],
      },
      cases,
      cappedBrokers,
      runs,
      ceilings,
      resultsDir,
    };
    const file = path.join(resultsDir, 'compare.json');
    writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
    const text = formatCompare(result);
    writeFileSync(path.join(resultsDir, 'compare.txt'), text + '\n');
    process.stdout.write(text + '\n');
    log(`results: ${file}`);
  } finally {
    await cleanup();
  }
}

if (require.main === module) {
  main(process.argv).then(
    () => process.exit(0),
    (err: unknown) => {
      const usage = err instanceof UsageError || err instanceof InvalidArgumentError;
      process.stderr.write(
        `compare: ${err instanceof Error ? (usage ? err.message : (err.stack ?? err.message)) : String(err)}\n`,
      );
      process.exit(usage ? 2 : 1);
    },
  );
}
