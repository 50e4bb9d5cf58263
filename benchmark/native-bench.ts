/**
 * `npm run native-bench`: the ceilings the forwarder is judged against (ceilings/), on the same
 * brokers, payloads and machine.
 *
 *   npm run native-bench -- publisher --qos 0,1,2   publisher alone (nobody subscribed)
 *   npm run native-bench -- mqtt --qos 0,1,2        publisher → mosquitto → subscriber
 *                                                   (bare mqtt.js and raw, per QoS)
 *   npm run native-bench -- kafka --workers 0,1,2   engine producer, main thread / n workers
 *   npm run native-bench -- dispatch                Piscina round trip per batch size
 *
 * `--json` prints one JSON line (last line of stdout) instead of the table.
 */
import { Command, InvalidArgumentError } from 'commander';
import { dispatchBench } from './ceilings/dispatch';
import { kafkaCeiling } from './ceilings/kafka-ceiling';
import { mqttCeiling, publisherCeiling } from './ceilings/mqtt-ceiling';
import { hostPort, int, intList, kafkaConfigOption, protocolOf, publisherOption } from './options';
import { clientName, fmtInt, fmtMs, formatReport } from './report/format';
import { mqttCeilingPlotName } from './report/plot';
import { SUBSCRIBER_CLIENTS } from './types';
import type {
  DispatchMode,
  KafkaCeilingResult,
  MqttCeiling,
  ProtocolVersion,
  PublisherCeiling,
  PublisherClient,
  QoS,
  SubscriberClient,
} from './types';

function subscriberList(v: string): SubscriberClient[] {
  const list = v.split(',').map((s) => s.trim());
  for (const s of list) {
    if (!(SUBSCRIBER_CLIENTS as readonly string[]).includes(s)) {
      throw new InvalidArgumentError(`expected a list of ${SUBSCRIBER_CLIENTS.join(', ')}`);
    }
  }
  return [...new Set(list)] as SubscriberClient[];
}

function emit(json: boolean, kind: string, results: unknown, table: string): void {
  if (json) process.stdout.write(JSON.stringify({ kind, results }) + '\n');
  else process.stdout.write(table + '\n');
}

interface MqttOpts {
  messages: number;
  qos: number[];
  payloadSize: number;
  topics: number;
  protocol: ProtocolVersion;
  connections: number;
  window: number;
  publisher: PublisherClient;
  mqtt: string;
  idleTimeout: number;
  warmup: number;
  timeout: number;
  json: boolean;
  plotDir?: string;
  subscriber: SubscriberClient[];
}

function mqttOptions(cmd: Command): Command {
  return cmd
    .option('-m, --messages <n>', 'messages per QoS', int(1), 100_000)
    .option('-q, --qos <list>', 'QoS levels', intList(0, 2), [0, 1, 2])
    .option('-s, --payload-size <bytes>', 'payload size', int(24), 100)
    .option('-t, --topics <n>', 'MQTT topics', int(1), 1)
    .option('--protocol <v>', "5 or '3.1.1'", protocolOf, 5 as ProtocolVersion)
    .option('--connections <n>', 'publisher connections', int(1), 1)
    .option('--window <n>', 'publishes in flight per connection', int(1), 1000)
    .addOption(publisherOption())
    .option('--mqtt <host:port>', 'MQTT broker', '127.0.0.1:1883')
    .option('--idle-timeout <s>', 'end after this long without an arrival', int(1), 10)
    .option('--warmup <n>', 'mqtt: uncounted messages first (JIT, connections)', int(0), 0)
    .option('--timeout <s>', 'bound per run', int(1), 600)
    .option('--json', 'one JSON line on stdout', false);
}

export async function main(argv: readonly string[]): Promise<void> {
  const program = new Command().name('native-bench');

  mqttOptions(program.command('publisher'))
    .description('the benchmark publisher alone: mosquitto acknowledges, nobody subscribed')
    .action(async (o: MqttOpts) => {
      const { host, port } = hostPort(o.mqtt, '--mqtt');
      const results: PublisherCeiling[] = [];
      for (const qos of o.qos) {
        results.push(
          await publisherCeiling({
            client: o.publisher,
            host,
            port,
            protocolVersion: o.protocol,
            qos: qos as QoS,
            messages: o.messages,
            topics: o.topics,
            topicPrefix: `mkf-pubonly-${process.pid}`,
            payloadSize: o.payloadSize,
            rate: 0,
            window: o.window,
            connections: o.connections,
            runId: 1,
            timeoutMs: o.timeout * 1000,
          }),
        );
      }
      emit(
        o.json,
        'publisher',
        results,
        results
          .map(
            (r) =>
              `publisher only (${clientName(r.client)})  QoS ${r.qos}: ${fmtInt(r.msgS)} msg/s (${fmtInt(r.acked)}/${fmtInt(r.messages)} completed, publisher thread ${r.cpuPct.toFixed(0)} % of a core)${r.error ? ` ERROR ${r.error}` : ''}`,
          )
          .join('\n'),
      );
    });

  mqttOptions(program.command('mqtt'))
    .description(
      'MQTT-only ceiling: publisher → mosquitto → subscriber acking at once (mqtt.js and raw)',
    )
    .option(
      '--subscriber <list>',
      `subscribers, one run each per QoS: ${SUBSCRIBER_CLIENTS.join(',')}`,
      subscriberList,
      [...SUBSCRIBER_CLIENTS],
    )
    .option('--plot-dir <dir>', 'write one SVG per QoS and subscriber here')
    .action(async (o: MqttOpts) => {
      const { host, port } = hostPort(o.mqtt, '--mqtt');
      const results: MqttCeiling[] = [];
      for (const qos of o.qos) {
        for (const sub of o.subscriber) {
          results.push(
            await mqttCeiling(
              {
                label: `mqtt-only QoS ${qos} (${sub === 'raw' ? 'raw' : 'mqtt.js'} subscriber)`,
                messages: o.messages,
                qos: qos as QoS,
                rate: 0,
                wrapped: false,
                payloadSize: o.payloadSize,
                topics: o.topics,
                protocolVersion: o.protocol,
                connections: o.connections,
                window: o.window,
                publisherClient: o.publisher,
                mqttHost: host,
                mqttPort: port,
                topicPrefix: `mkf-ceiling-${process.pid}-${qos}-${sub}`,
                warmup: o.warmup,
                idleTimeoutMs: o.idleTimeout * 1000,
                timeoutMs: o.timeout * 1000,
                quiet: o.json,
                ...(o.plotDir
                  ? { plotFile: `${o.plotDir}/${mqttCeilingPlotName(qos, sub)}.svg` }
                  : {}),
              },
              sub,
            ),
          );
        }
      }
      emit(o.json, 'mqtt', results, results.map(formatReport).join('\n'));
    });

  program
    .command('kafka')
    .description("Kafka-only ceiling: the engine's producer lanes, main thread and n workers")
    .option('-m, --messages <n>', 'records per configuration', int(1), 100_000)
    .option(
      '-w, --workers <list>',
      '0 = main thread (inline), n = n worker threads',
      intList(0, 64),
      [0, 1, 2],
    )
    .option('-s, --payload-size <bytes>', 'record value size', int(24), 100)
    .option('--keys <n>', 'distinct record keys', int(1), 1)
    .option('--batch-size <n>', 'records per batch (dispatch.batch_size)', int(1), 1000)
    .option('--batches-per-worker <n>', 'batches in flight per lane', int(1), 4)
    .option('--kafka <host:port>', 'Kafka bootstrap broker', '127.0.0.1:9092')
    .option('--topic <name>', 'Kafka topic (created if missing)', 'mkf-kafka-ceiling')
    .option('--timeout <s>', 'bound per configuration', int(1), 300)
    .addOption(kafkaConfigOption("librdkafka properties, as in the forwarder's kafka.config"))
    .option('--json', 'one JSON line on stdout', false)
    .action(
      async (o: {
        messages: number;
        workers: number[];
        payloadSize: number;
        keys: number;
        batchSize: number;
        batchesPerWorker: number;
        kafka: string;
        topic: string;
        timeout: number;
        kafkaConfig: Record<string, string>;
        json: boolean;
      }) => {
        const { host, port } = hostPort(o.kafka, '--kafka');
        // librdkafka's connect/flush hold libuv pool threads shared by all producers.
        process.env['UV_THREADPOOL_SIZE'] ??= String(Math.max(4, Math.max(...o.workers) * 2 + 2));
        const results: KafkaCeilingResult[] = [];
        for (const workers of o.workers) {
          results.push(
            await kafkaCeiling({
              host,
              port,
              topic: o.topic,
              messages: o.messages,
              payloadSize: o.payloadSize,
              keys: o.keys,
              workers,
              batchSize: o.batchSize,
              batchesPerWorker: o.batchesPerWorker,
              timeoutMs: o.timeout * 1000,
              kafkaConfig: o.kafkaConfig,
            }),
          );
        }
        emit(
          o.json,
          'kafka',
          results,
          results
            .map(
              (r) =>
                `kafka only  ${r.mode.padEnd(22)} ${fmtInt(r.msgS).padStart(9)} msg/s  ${fmtInt(r.delivered)}/${fmtInt(r.messages)} delivered${r.failed ? `, ${r.failed} FAILED` : ''} in ${r.durationS.toFixed(2)} s, batch p50 ${fmtMs(r.batchP50Ms)} / p99 ${fmtMs(r.batchP99Ms)} ms, main thread ${(r.mainBusy * 100).toFixed(0)} % busy${r.timedOut ? ', TIMED OUT' : ''}`,
            )
            .join('\n'),
        );
      },
    );

  program
    .command('dispatch')
    .description('Piscina round trip per batch size: transferred packed batch vs structured clone')
    .option(
      '--batch-sizes <list>',
      'records per batch',
      intList(1, 100_000),
      [1, 10, 100, 1000, 5000],
    )
    .option('-s, --payload-size <bytes>', 'record value size', int(24), 100)
    .option('--records <n>', 'records per case (at least 50 batches)', int(1), 200_000)
    .option('--inflight <n>', 'batches outstanding (concurrentTasksPerWorker)', int(1), 4)
    .option(
      '--modes <list>',
      'transfer,clone-copies,clone-views',
      'transfer,clone-copies,clone-views',
    )
    .option('--timeout <s>', 'bound per case', int(1), 120)
    .option('--json', 'one JSON line on stdout', false)
    .action(
      async (o: {
        batchSizes: number[];
        payloadSize: number;
        records: number;
        inflight: number;
        modes: string;
        timeout: number;
        json: boolean;
      }) => {
        const modes = o.modes.split(',') as DispatchMode[];
        const results = await dispatchBench({
          batchSizes: o.batchSizes,
          modes,
          payloadSize: o.payloadSize,
          recordsPerCase: o.records,
          inflight: o.inflight,
          timeoutMs: o.timeout * 1000,
        });
        emit(
          o.json,
          'dispatch',
          results,
          [
            'batch size  mode           µs/batch   µs/record   records/s   main busy',
            ...results.map(
              (r) =>
                `${String(r.batchSize).padStart(10)}  ${r.mode.padEnd(13)} ${r.usPerBatch.toFixed(1).padStart(9)} ${r.usPerRecord.toFixed(3).padStart(11)} ${fmtInt(r.recordsPerS).padStart(11)} ${(r.mainBusy * 100).toFixed(0).padStart(9)} %`,
            ),
          ].join('\n'),
        );
      },
    );

  await program.parseAsync(argv as string[]);
}

if (require.main === module) {
  main(process.argv).then(
    // Kafka lanes are closed before this point; exit without waiting for stray handles.
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`native-bench: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
