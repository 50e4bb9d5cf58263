/**
 * Soak: the forwarder under a steady QoS 1 load for a long time, its RSS sampled every minute.
 *
 *   npm run soak -- --minutes 30 --rate 10000
 *
 * Brings nothing up by itself: scripts/soak starts the broker stack and builds first. Bounded:
 * the load stops after --minutes, the final check after 5 more minutes at most. Prints one JSON
 * line per minute and a summary, and rewrites the soak block of docs/RELIABILITY.md.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { KAFKA_BROKERS, REPO_ROOT, uniqueName } from '../test/helpers/env';
import { ForwarderProcess, testConfig, writeConfig } from '../test/helpers/forwarder';
import { ready } from '../test/helpers/kit';
import { connectClient } from '../test/helpers/mqtt';

interface Sample {
  minute: number;
  rssMb: number;
  published: number;
  kafkaOffset: number;
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 102.4) / 10 : NaN;
}

/** Sum of the end offsets of the topic's partitions (the records Kafka holds). */
function kafkaEndOffset(topic: string): number {
  try {
    const out = execFileSync('kcat', ['-b', KAFKA_BROKERS, '-Q', '-t', `${topic}:0:-1`], {
      encoding: 'utf8',
      timeout: 15_000,
    });
    return out
      .split('\n')
      .map((l) => /offset (\d+)/.exec(l))
      .reduce((sum, m) => sum + (m ? Number(m[1]) : 0), 0);
  } catch {
    return 0;
  }
}

/** Least-squares slope of y over x. */
function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

async function main(): Promise<void> {
  const opts = new Command()
    .option('--minutes <n>', 'duration of the load', '30')
    .option('--rate <n>', 'messages per second (QoS 1)', '10000')
    .option('--payload-size <n>', 'bytes per message', '100')
    .option('--no-report', 'do not rewrite docs/RELIABILITY.md')
    .parse()
    .opts<{ minutes: string; rate: string; payloadSize: string; report: boolean }>();
  const minutes = Number(opts.minutes);
  const rate = Number(opts.rate);
  const payload = Buffer.alloc(Number(opts.payloadSize), 'x');
  const topic = uniqueName('soak');

  const fwd = new ForwarderProcess(
    writeConfig(
      testConfig([{ name: 'soak', mqtt: { topic: `${topic}/#`, qos: 1 }, kafka: { topic } }], {
        mqtt: { client_id: uniqueName('soak-fwd') },
        log_level: 'info',
      }),
    ),
    { LOG_LEVEL: 'info' },
  );
  await ready(fwd, { timeoutMs: 60_000 });
  const pub = await connectClient({ protocolVersion: 5 });

  let published = 0;
  let acked = 0;
  let behind = 0;
  const tickMs = 50;
  const perTick = (rate * tickMs) / 1000;
  let credit = 0;
  const maxInflight = Math.max(1000, rate / 2);
  const ticker = setInterval(() => {
    credit += perTick;
    while (credit >= 1) {
      if (published - acked >= maxInflight) {
        // The broker (or the forwarder behind it) is not keeping up: count it, do not queue.
        behind += Math.floor(credit);
        credit = 0;
        break;
      }
      credit -= 1;
      published++;
      pub.publish(`${topic}/dev${published % 64}`, payload, { qos: 1 }, () => acked++);
    }
  }, tickMs);

  const samples: Sample[] = [];
  const t0 = Date.now();
  for (let minute = 1; minute <= minutes; minute++) {
    await new Promise((r) => setTimeout(r, t0 + minute * 60_000 - Date.now()));
    const s: Sample = {
      minute,
      rssMb: rssMb(fwd.pid),
      published,
      kafkaOffset: kafkaEndOffset(topic),
    };
    samples.push(s);
    console.log(JSON.stringify(s));
  }
  clearInterval(ticker);

  // Let the forwarder catch up, bounded.
  const deadline = Date.now() + 5 * 60_000;
  let inKafka = kafkaEndOffset(topic);
  while (inKafka < published && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 2_000));
    inKafka = kafkaEndOffset(topic);
  }
  await pub.endAsync();
  const stop = await fwd.stop('SIGTERM');

  // The first two minutes are warm-up (JIT, buffers, librdkafka queues); the slope is over the rest.
  const steady = samples.filter((s) => s.minute > 2);
  const perMinute = slope(
    steady.map((s) => s.minute),
    steady.map((s) => s.rssMb),
  );
  const summary = {
    minutes,
    rate,
    published,
    behind,
    inKafka,
    missing: Math.max(0, published - inKafka),
    rssFirstMb: samples[0]?.rssMb,
    rssLastMb: samples.at(-1)?.rssMb,
    rssMaxMb: Math.max(...samples.map((s) => s.rssMb)),
    rssSlopeMbPerMin: Math.round(perMinute * 100) / 100,
    exitCode: stop.code,
  };
  console.log(JSON.stringify({ summary }));

  if (opts.report) {
    const file = path.join(REPO_ROOT, 'docs', 'RELIABILITY.md');
    const doc = readFileSync(file, 'utf8');
    const rows = samples.map(
      (s) => `| ${s.minute} | ${s.rssMb} | ${s.published} | ${s.kafkaOffset} |`,
    );
    const block = [
      '<!-- soak:begin -->',
      `Measured ${new Date().toISOString().slice(0, 10)} by \`npm run soak -- --minutes ${minutes} --rate ${rate}\`: ${published} messages published (${behind} not sent because the publisher was ${maxInflight} acknowledgements behind), ${inKafka} records in Kafka at the end (${summary.missing} missing), forwarder exit code ${String(stop.code)}. RSS ${summary.rssFirstMb} MB after the first minute, ${summary.rssLastMb} MB at the end, at most ${summary.rssMaxMb} MB; slope over minutes 3–${minutes}: **${summary.rssSlopeMbPerMin} MB/min**.`,
      '',
      '| minute | forwarder RSS (MB) | published | records in Kafka |',
      '| ---: | ---: | ---: | ---: |',
      ...rows,
      '<!-- soak:end -->',
    ].join('\n');
    const begin = doc.indexOf('<!-- soak:begin -->');
    const end = doc.indexOf('<!-- soak:end -->');
    if (begin < 0 || end < 0) throw new Error(`${file} has no soak markers`);
    writeFileSync(file, doc.slice(0, begin) + block + doc.slice(end + '<!-- soak:end -->'.length));
    console.log(`soak: results written to ${file}`);
  }
  process.exit(summary.missing === 0 && stop.code === 0 ? 0 : 1);
}

void main();
