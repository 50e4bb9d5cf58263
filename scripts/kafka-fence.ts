/**
 * `npm run chaos:fence -- --runs N`: does a producer lane stall after Kafka fences its broker?
 * Seen twice under heavy load (docs/DEPLOY.md, HiveMQ): after the KRaft controller fenced the
 * only broker for 0.1 s, one lane confirmed nothing for 90 s. Each run streams QoS 1 messages
 * through a 2-worker forwarder, SIGSTOPs Kafka for longer than its broker.session.timeout.ms (the
 * controller then fences and unfences the broker on resume, as the Kafka log shows), thaws it,
 * and measures how long the window takes to drain after the thaw; every message must be in Kafka.
 * A drain slower than --stall-seconds counts as a stall. Bounded: every wait has a deadline.
 */
import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { uniqueName } from '../test/helpers/env';
import { ForwarderProcess, testConfig, writeConfig } from '../test/helpers/forwarder';
import { createTopic, idsOf, readAll } from '../test/helpers/kafka';
import { ready, sleep } from '../test/helpers/kit';
import { connectClient } from '../test/helpers/mqtt';
import { freezeKafka, thawKafka, waitKafkaWritable } from '../test/helpers/stack';

interface RunResult {
  readonly run: number;
  readonly freezeMs: number;
  readonly published: number;
  readonly inKafka: number;
  /**
   * From the thaw (or the last publish, if later) until the window was empty; undefined if it
   * never emptied in time.
   */
  readonly drainMs: number | undefined;
  /** Log lines of librdkafka's "all broker connections are down" and of a replaced client. */
  readonly allBrokersDown: number;
  readonly clientLost: number;
}

/**
 * `--hold-pid-file`: instead of SIGSTOPping Kafka, signal a hold proxy between the broker and its
 * controller listener (SIGUSR1 hold, SIGUSR2 release): the broker keeps serving clients while the
 * controller fences it for missed heartbeats, as a starved JVM does.
 */
let holdPid: number | undefined;

function fence(): void {
  if (holdPid === undefined) freezeKafka();
  else process.kill(holdPid, 'SIGUSR1');
}

function unfence(): void {
  if (holdPid === undefined) thawKafka();
  else process.kill(holdPid, 'SIGUSR2');
}

async function oneRun(
  run: number,
  freezeMs: number,
  messages: number,
  stallMs: number,
  workers: number,
) {
  const name = uniqueName('fence');
  await createTopic(name, { 'retention.ms': '3600000' });
  const config = testConfig(
    [{ name: 'f', mqtt: { topic: `${name}/#`, qos: 1 }, kafka: { topic: name } }],
    { dispatch: { workers }, mqtt: { client_id: name }, log_level: 'info' },
  );
  const fwd = new ForwarderProcess(writeConfig(config));
  let published = 0;
  let thawedAt = 0;
  try {
    await ready(fwd);
    const pub = await connectClient({ protocolVersion: 5 });
    const start = Date.now();
    let frozen = false;
    // About 200 msg/s on 8 topics; Kafka is frozen 3 s in.
    while (published < messages && Date.now() - start < 120_000) {
      const burst: Promise<unknown>[] = [];
      for (let i = 0; i < 20 && published < messages; i++, published++) {
        burst.push(pub.publishAsync(`${name}/t${published % 8}`, String(published), { qos: 1 }));
      }
      await Promise.all(burst);
      await sleep(100);
      if (!frozen && Date.now() - start > 3_000) {
        frozen = true;
        fence();
        setTimeout(() => {
          unfence();
          thawedAt = Date.now();
        }, freezeMs).unref();
      }
    }
    await pub.endAsync();
    const publishedAt = Date.now();
    while (thawedAt === 0) await sleep(100);
    const from = Math.max(thawedAt, publishedAt);
    let drainMs: number | undefined;
    const deadline = from + stallMs * 3;
    while (Date.now() < deadline) {
      const r = await fwd.readyz().catch(() => ({}) as Record<string, unknown>);
      if (r['inflight'] === 0) {
        drainMs = Date.now() - from;
        break;
      }
      await sleep(200);
    }
    const ids = idsOf(
      (await readAll(name, 60_000)).filter((r) => /^\d+$/.test(r.value.toString())),
    );
    const count = (pred: (l: Record<string, unknown>) => boolean) =>
      fwd.lines.filter((l) => pred(l as unknown as Record<string, unknown>)).length;
    return {
      run,
      freezeMs,
      published,
      inKafka: ids.size,
      drainMs,
      allBrokersDown: count((l) => String(l['msg']).includes('all broker connections are down')),
      clientLost: count((l) => l['code'] === 'ERR_KAFKA_CLIENT_LOST'),
    } satisfies RunResult;
  } finally {
    unfence();
    await fwd.stop('SIGTERM', 20_000);
  }
}

async function main(): Promise<void> {
  const o = new Command()
    .option('--runs <n>', 'runs', '10')
    .option('--messages <n>', 'messages per run', '6000')
    .option('--freeze-ms <list>', 'freeze lengths, used in turn', '4000,6000,8000,10000,12000')
    .option('--stall-seconds <s>', 'a drain slower than this counts as a stall', '30')
    .option('--workers <n>', 'producer lanes (dispatch.workers)', '2')
    .option(
      '--hold-pid-file <file>',
      'fence by holding this proxy (broker to controller) instead of SIGSTOP',
    )
    .parse()
    .opts<{
      runs: string;
      messages: string;
      freezeMs: string;
      stallSeconds: string;
      holdPidFile?: string;
      workers: string;
    }>();
  holdPid =
    o.holdPidFile === undefined ? undefined : Number(readFileSync(o.holdPidFile, 'utf8').trim());
  const freezes = o.freezeMs.split(',').map(Number);
  const stallMs = Number(o.stallSeconds) * 1_000;
  let stalls = 0;
  let lost = 0;
  for (let run = 1; run <= Number(o.runs); run++) {
    await waitKafkaWritable();
    const r = await oneRun(
      run,
      freezes[(run - 1) % freezes.length]!,
      Number(o.messages),
      stallMs,
      Number(o.workers),
    );
    const stalled = r.drainMs === undefined || r.drainMs > stallMs;
    if (stalled) stalls++;
    lost += r.published - r.inKafka;
    console.log(JSON.stringify({ ...r, stalled }));
  }
  console.log(`fence: ${o.runs} runs, ${stalls} stalled, ${lost} lost`);
  process.exitCode = stalls > 0 || lost > 0 ? 1 : 0;
}

void main();
