/**
 * `node build/scripts/stress-binding-teardown.js --cycles N --threads T`: the binding's own
 * teardown under delivery reports, without the forwarder around it. Each of T worker threads
 * (as T lanes would) runs N cycles of: a new producer with the forwarder's delivery-report
 * config (compact reports served by the wakeup, native/node-rdkafka/0002), connect, produce 200
 * records, and disconnect() at once, while their reports are being queued and served. A crash
 * ends the whole process (SIGSEGV, SIGABRT: the exit status tells); a hang is a cycle that does
 * not end within --cycle-timeout: the summary counts it and the process then SIGKILLs itself,
 * since a thread under a pending native call cannot be ended safely. Needs a Kafka
 * (`--kafka`, default the test stack's, `KAFKA_PORT` honoured).
 *
 * The forwarder's own stop order never disconnects under unreported records (it flushes and
 * waits first, kafka-producer.ts); this is the harder case, so that the wakeup is safe whatever
 * the caller does. Output: one line per 100 cycles of a thread, then a JSON summary line.
 */
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { Command } from 'commander';
import { Producer } from 'node-rdkafka';
import { int } from '../benchmark/options';
import { deliveryReportsConfig, onCompactReports } from '../src/seams/rdkafka';
import { KAFKA_BROKERS, uniqueName } from '../test/helpers/env';

interface ThreadJob {
  readonly kafka: string;
  readonly cycles: number;
  readonly topic: string;
  readonly cycleTimeoutMs: number;
}

interface ThreadDone {
  readonly cycles: number;
  readonly reports: number;
  readonly produced: number;
  readonly hung: boolean;
}

async function cycle(job: ThreadJob, n: number): Promise<{ reports: number; produced: number }> {
  const producer = new Producer(
    {
      'bootstrap.servers': job.kafka,
      log_level: 0,
      'linger.ms': 0,
      ...deliveryReportsConfig(),
    } as ConstructorParameters<typeof Producer>[0],
    { 'message.timeout.ms': 10_000 },
  );
  await new Promise<void>((resolve, reject) =>
    producer.connect({ timeout: 10_000 }, (err) => (err ? reject(err) : resolve())),
  );
  let reports = 0;
  onCompactReports(producer, (ids) => (reports += ids.length));
  const records = 200;
  for (let id = 1; id <= records; id++)
    producer.produce(
      job.topic,
      null,
      Buffer.alloc(100),
      null,
      Date.now(),
      (n % 1_000) * 1_000 + id,
    );
  // Let the first reports start to arrive, so that disconnect() meets the wakeup serving them.
  await new Promise((resolve) => setImmediate(resolve));
  await new Promise<void>((resolve) => producer.disconnect(0, () => resolve()));
  return { reports, produced: records };
}

async function thread(job: ThreadJob): Promise<ThreadDone> {
  let reports = 0;
  let produced = 0;
  for (let n = 1; n <= job.cycles; n++) {
    let timer: NodeJS.Timeout | undefined;
    const hung = await Promise.race([
      cycle(job, n).then((r) => {
        reports += r.reports;
        produced += r.produced;
        return false;
      }),
      new Promise<boolean>(
        (resolve) => (timer = setTimeout(() => resolve(true), job.cycleTimeoutMs)),
      ),
    ]);
    clearTimeout(timer);
    if (hung) return { cycles: n - 1, reports, produced, hung: true };
    if (n % 100 === 0) parentPort?.postMessage({ progress: n });
  }
  return { cycles: job.cycles, reports, produced, hung: false };
}

async function main(): Promise<void> {
  const o = new Command()
    .option('--cycles <n>', 'cycles per thread', int(1), 500)
    .option('--threads <n>', 'worker threads, one producer at a time each', int(1, 64), 2)
    .option(
      '--kafka <host:port>',
      'Kafka bootstrap server (default: the test stack)',
      KAFKA_BROKERS,
    )
    .option('--cycle-timeout <ms>', 'a cycle longer than this is a hang', int(1), 30_000)
    .parse()
    .opts<{ cycles: number; threads: number; kafka: string; cycleTimeout: number }>();
  const topic = uniqueName('stress-binding-teardown');
  const started = Date.now();
  const results = await Promise.all(
    Array.from(
      { length: o.threads },
      (_, i) =>
        new Promise<ThreadDone>((resolve, reject) => {
          const job: ThreadJob = {
            kafka: o.kafka,
            cycles: o.cycles,
            topic,
            cycleTimeoutMs: o.cycleTimeout,
          };
          const w = new Worker(__filename, { workerData: job });
          w.on('message', (m: { progress?: number; done?: ThreadDone }) => {
            if (m.progress !== undefined)
              process.stdout.write(`thread ${i}: ${m.progress} cycles\n`);
            if (m.done !== undefined) resolve(m.done);
          });
          w.on('error', reject);
        }),
    ),
  );
  const summary = {
    threads: o.threads,
    cycles: results.reduce((a, r) => a + r.cycles, 0),
    hung: results.filter((r) => r.hung).length,
    produced: results.reduce((a, r) => a + r.produced, 0),
    reportsBeforeDisconnectReturned: results.reduce((a, r) => a + r.reports, 0),
    seconds: Math.round((Date.now() - started) / 1_000),
  };
  process.stdout.write(JSON.stringify(summary) + '\n');
  if (summary.hung > 0) process.kill(process.pid, 'SIGKILL');
}

if (isMainThread) {
  main().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
} else {
  thread(workerData as ThreadJob).then(
    (done) => parentPort?.postMessage({ done }),
    (err: unknown) => {
      throw err;
    },
  );
}
