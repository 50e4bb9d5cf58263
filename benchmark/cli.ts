/**
 * `benchmark`: publishes N messages to MQTT and reads the mapped Kafka topic with kcat, then
 * reports loss, duplicates, order, throughput, latency and (with --forwarder-pid) the
 * forwarder's RSS and CPU: of that pid and all its descendants (a forwarder with `processes: N`
 * is a supervisor with N ingest processes under it). Run against a forwarder that maps
 * `<mqtt-topic>/#` (or, with N processes, each `<mqtt-topic>/<t>`) to `<kafka-topic>`:
 *
 *   node build/benchmark/cli.js --messages 100000 --qos 1 [-w] [--msg-rate 20000]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { KafkaSink } from './measure/kafka-consumer';
import { hostPort, int, processesOption, protocolOf, publisherOption } from './options';
import { formatReport } from './report/format';
import { runBenchmark } from './run';
import type { ProtocolVersion, PublisherClient, QoS } from './types';

interface CliOptions {
  messages: number;
  qos: number;
  msgRate: number;
  wrappedPayload: boolean;
  payloadSize: number;
  topics: number;
  protocol: ProtocolVersion;
  connections: number;
  window: number;
  publisher: PublisherClient;
  mqtt: string;
  kafka: string;
  mqttTopic: string;
  kafkaTopic: string;
  createTopic: boolean;
  forwarderPid?: number;
  processes: number;
  warmup: number;
  idleTimeout: number;
  timeout: number;
  plot?: string;
  json: boolean;
  label: string;
}

export async function main(argv: readonly string[]): Promise<void> {
  const program = new Command()
    .name('benchmark')
    .description(
      'Publish N messages to MQTT, read the mapped Kafka topic with an independent consumer (kcat), report loss, duplicates, order, throughput and latency.',
    )
    .option('-m, --messages <n>', 'messages to publish', int(1), 100_000)
    .option('-q, --qos <qos>', 'MQTT QoS of the publishes: 0, 1 or 2', int(0, 2), 1)
    .option('-r, --msg-rate <n>', 'publish at most n msg/s (0 = unlimited)', int(0), 0)
    .option('-w, --wrapped-payload', 'Kafka values are wrap_as_json wrappers: unwrap first', false)
    .option('-s, --payload-size <bytes>', 'payload size (at least 24)', int(24), 100)
    .option('-t, --topics <n>', 'spread over n MQTT topics <mqtt-topic>/0..n-1', int(1, 65535), 1)
    .option(
      '--protocol <v>',
      "MQTT protocol version: 5 or '3.1.1'",
      protocolOf,
      5 as ProtocolVersion,
    )
    .option('--connections <n>', 'publisher connections (topics are split between them)', int(1), 1)
    .option('--window <n>', 'publishes in flight per connection', int(1, 65535), 1000)
    .addOption(publisherOption())
    .option('--mqtt <host:port>', 'MQTT broker', '127.0.0.1:1883')
    .option('--kafka <host:port>', 'Kafka bootstrap broker', '127.0.0.1:9092')
    .option('--mqtt-topic <prefix>', 'MQTT topic prefix', 'benchmark')
    .option('--kafka-topic <name>', 'Kafka topic the forwarder maps <prefix>/# to', 'benchmark')
    .option('--no-create-topic', 'do not create the Kafka topic (with one marker record) first')
    .option('--warmup <n>', 'publish n uncounted messages first and wait for them', int(0), 0)
    .option(
      '--forwarder-pid <pid>',
      'sample the RSS and CPU of this process and its descendants from /proc',
      int(1),
    )
    .addOption(
      processesOption(
        "the forwarder's top-level `processes` (its config, not set here): wait until --forwarder-pid has that many ingest processes",
      ),
    )
    .option('--idle-timeout <s>', 'end the drain after this long without a new arrival', int(1), 10)
    .option('--timeout <s>', 'end the whole run after this long', int(1), 900)
    .option('--plot <file>', 'SVG plot of throughput and latency over time (default: under --out)')
    .option('--out <dir>', 'directory for the JSON result and the plot', 'benchmark/results')
    .option('--json', 'print the result as JSON on stdout (the report goes to stderr)', false)
    .option('--label <text>', 'name of the run in reports', 'benchmark')
    .parse(argv as string[]);
  const o = program.opts<CliOptions & { out: string }>();
  const mqtt = hostPort(o.mqtt, '--mqtt');
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const base = path.join(o.out, `${stamp}-qos${o.qos}-${o.wrappedPayload ? 'wrapped' : 'raw'}`);
  const result = await runBenchmark(
    {
      label: o.label,
      messages: o.messages,
      qos: o.qos as QoS,
      rate: o.msgRate,
      wrapped: o.wrappedPayload,
      payloadSize: o.payloadSize,
      topics: o.topics,
      protocolVersion: o.protocol,
      connections: o.connections,
      window: o.window,
      publisherClient: o.publisher,
      mqttHost: mqtt.host,
      mqttPort: mqtt.port,
      topicPrefix: o.mqttTopic,
      ...(o.forwarderPid === undefined ? {} : { forwarderPid: o.forwarderPid }),
      ...(o.processes > 1 ? { processes: o.processes } : {}),
      warmup: o.warmup,
      idleTimeoutMs: o.idleTimeout * 1000,
      timeoutMs: o.timeout * 1000,
      plotFile: o.plot ?? `${base}.svg`,
    },
    new KafkaSink(o.kafka, o.kafkaTopic, o.createTopic),
  );
  mkdirSync(o.out, { recursive: true });
  writeFileSync(`${base}.json`, JSON.stringify(result, null, 2) + '\n');
  if (o.json) {
    process.stderr.write(formatReport(result) + '\n');
    process.stdout.write(JSON.stringify(result) + '\n');
  } else {
    process.stdout.write(formatReport(result) + `\n  result      ${base}.json\n`);
  }
}

if (require.main === module) {
  main(process.argv).then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`benchmark: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
