'use strict';
/* global require, process, console, Buffer, setTimeout, setInterval, clearInterval */
/* eslint-disable @typescript-eslint/no-require-imports */
/**
 * Issue 16 probe: LANES idempotent node-rdkafka producers with the forwarder's settings produce
 * about RATE msg/s (keyed by 8 "MQTT topics", hashed to lanes) to TOPIC on 127.0.0.1:KAFKA_PORT.
 * At FENCE_AT_S it sends SIGUSR1 to HOLD_PID (hold-proxy.js between broker and controller: the
 * broker gets fenced while it keeps serving) and SIGUSR2 after HOLD_MS; or, with FREEZE_PID, it
 * SIGSTOPs that process for HOLD_MS. Every retriable failure is produced again (as deliveries.ts).
 * Reports per lane the longest gap between deliveries while records were waiting.
 * Bounded: DURATION_S of producing, then at most DRAIN_S for the rest.
 *
 * Env: KAFKA_PORT, TOPIC, LANES=2, RATE=200, DURATION_S=60, DRAIN_S=120, FENCE_AT_S=10, HOLD_MS,
 *      HOLD_PID | FREEZE_PID, DEBUG=msg,eos,protocol,broker,topic,metadata (empty: off),
 *      LOG_DIR (one librdkafka log per lane), EXTRA (JSON of extra librdkafka global props).
 */
const fs = require('node:fs');
const path = require('node:path');
const Kafka = require('node-rdkafka');

const env = (k, d) => process.env[k] ?? d;
const PORT = Number(env('KAFKA_PORT', '49092'));
const TOPIC = env('TOPIC', `probe-${Date.now().toString(36)}`);
const LANES = Number(env('LANES', '2'));
const RATE = Number(env('RATE', '200'));
const DURATION_S = Number(env('DURATION_S', '60'));
const DRAIN_S = Number(env('DRAIN_S', '120'));
const FENCE_AT_S = Number(env('FENCE_AT_S', '10'));
const HOLD_MS = Number(env('HOLD_MS', '5000'));
const HOLD_PID = Number(env('HOLD_PID', '0'));
const FREEZE_PID = Number(env('FREEZE_PID', '0'));
const DEBUG = env('DEBUG', 'msg,eos,protocol,broker,topic,metadata');
const LOG_DIR = env('LOG_DIR', '/tmp');
const EXTRA = JSON.parse(env('EXTRA', '{}'));

const t0 = Date.now();
const now = () => Date.now() - t0;
const out = (o) => console.log(JSON.stringify({ t: now(), ...o }));

setTimeout(
  () => {
    out({ event: 'safety-exit' });
    process.exit(3);
  },
  (DURATION_S + DRAIN_S + 40) * 1000,
).unref();

let fenceAt = 0;
let unfenceAt = 0;

function makeLane(i) {
  const logFile = fs.createWriteStream(path.join(LOG_DIR, `lane${i}.log`));
  const lane = {
    i,
    produced: 0,
    delivered: 0,
    inflight: 0,
    lastDelivery: 0,
    maxGap: 0,
    maxGapAt: 0,
    errors: {},
    log: logFile,
    ready: false,
  };
  const p = new Kafka.Producer(
    {
      'bootstrap.servers': `127.0.0.1:${PORT}`,
      'statistics.interval.ms': 5000,
      'reconnect.backoff.ms': 1000,
      'enable.idempotence': true,
      dr_cb: true,
      ...(DEBUG ? { debug: DEBUG, event_cb: true, log_level: 7 } : { log_level: 0 }),
      ...EXTRA,
    },
    { acks: 'all' },
  );
  lane.p = p;
  p.on('event.log', (l) => logFile.write(`${now()} ${l.fac} ${l.message}\n`));
  p.on('event.error', (e) => {
    logFile.write(`${now()} EVENT.ERROR ${e.code} ${e.message}\n`);
    out({ lane: i, eventError: e.code, message: e.message });
  });
  p.on('event.stats', (ev) => {
    try {
      const s = JSON.parse(ev.message);
      const brokers = Object.values(s.brokers ?? {}).map(
        (b) => `${b.name}:${b.state}:${b.outbuf_cnt}/${b.waitresp_cnt}`,
      );
      const tp = s.topics?.[TOPIC]?.partitions?.['0'];
      lane.stats = {
        brokers,
        msgq: tp?.msgq_cnt,
        xmitq: tp?.xmit_msgq_cnt,
        leader: tp?.leader,
        eos: s.eos,
      };
    } catch {
      /* ignore */
    }
  });
  p.on('delivery-report', (err, r) => {
    const rec = r.opaque;
    lane.inflight--;
    const t = now();
    if (lane.inflight >= 0 && lane.lastDelivery) {
      const gap = t - lane.lastDelivery;
      if (gap > lane.maxGap) {
        lane.maxGap = gap;
        lane.maxGapAt = t;
      }
    }
    if (err) {
      lane.errors[err.code] = (lane.errors[err.code] ?? 0) + 1;
      setTimeout(() => produce(lane, rec), 100).unref();
      return;
    }
    lane.delivered++;
    lane.lastDelivery = t;
  });
  return lane;
}

function produce(lane, rec) {
  try {
    lane.p.produce(TOPIC, null, rec.value, rec.key, Date.now(), rec);
    if (lane.inflight === 0) lane.lastDelivery = now(); // gap counted from the first waiting record
    lane.inflight++;
    if (rec.attempts++ === 0) lane.produced++;
  } catch (e) {
    lane.errors[`produce:${e.code}`] = (lane.errors[`produce:${e.code}`] ?? 0) + 1;
    setTimeout(() => produce(lane, rec), 100).unref();
  }
}

function connect(lane) {
  return new Promise((resolve, reject) => {
    lane.p.connect({ timeout: 10000 }, (err) => (err ? reject(err) : resolve()));
  });
}

function laneOf(key) {
  let h = 0;
  for (const c of key) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return h % LANES;
}

const CONNECT_AFTER_HOLD_MS = Number(env('CONNECT_AFTER_HOLD_MS', '-1'));

/** HOLD_PID: the hold proxy's signals; FREEZE_PID: Kafka itself, stopped and continued. */
const FENCE = HOLD_PID
  ? { pid: HOLD_PID, on: 'SIGUSR1', off: 'SIGUSR2', start: 'hold', end: 'release' }
  : FREEZE_PID
    ? { pid: FREEZE_PID, on: 'SIGSTOP', off: 'SIGCONT', start: 'freeze', end: 'thaw' }
    : undefined;

function startFence() {
  fenceAt = now();
  if (!FENCE) return;
  process.kill(FENCE.pid, FENCE.on);
  out({ event: FENCE.start, pid: FENCE.pid, ms: HOLD_MS });
  setTimeout(() => {
    process.kill(FENCE.pid, FENCE.off);
    unfenceAt = now();
    out({ event: FENCE.end });
  }, HOLD_MS);
}

async function main() {
  // CONNECT_AFTER_HOLD_MS >= 0: the hold starts first and the producers connect (and ask for
  // their producer ids) this long after it, i.e. around the moment the controller fences.
  if (CONNECT_AFTER_HOLD_MS >= 0) {
    startFence();
    await new Promise((r) => setTimeout(r, CONNECT_AFTER_HOLD_MS));
  }
  const lanes = Array.from({ length: LANES }, (_, i) => makeLane(i));
  await Promise.all(lanes.map(connect));
  for (const l of lanes) l.p.setPollInterval(1);
  out({ event: 'connected', topic: TOPIC, lanes: LANES, rate: RATE });

  let n = 0;
  const perTick = Math.max(1, Math.round(RATE / 10));
  const producer = setInterval(() => {
    for (let k = 0; k < perTick; k++, n++) {
      const key = `mqtt/s/${n % 8}`;
      produce(lanes[laneOf(key)], {
        key: Buffer.from(key),
        value: Buffer.from(String(n)),
        attempts: 0,
      });
    }
  }, 100);

  const status = setInterval(() => {
    out({
      lanes: lanes.map((l) => ({
        i: l.i,
        produced: l.produced,
        delivered: l.delivered,
        inflight: l.inflight,
        sinceLast: l.inflight > 0 ? now() - l.lastDelivery : 0,
        errors: l.errors,
        stats: l.stats,
      })),
    });
  }, 2000);

  if (CONNECT_AFTER_HOLD_MS < 0) setTimeout(startFence, FENCE_AT_S * 1000);

  await new Promise((r) => setTimeout(r, DURATION_S * 1000));
  clearInterval(producer);
  const drainUntil = now() + DRAIN_S * 1000;
  while (now() < drainUntil && lanes.some((l) => l.inflight > 0)) {
    await new Promise((r) => setTimeout(r, 200));
  }
  clearInterval(status);
  const summary = lanes.map((l) => ({
    lane: l.i,
    produced: l.produced,
    delivered: l.delivered,
    unconfirmed: l.inflight,
    maxGapMs: l.maxGap,
    maxGapEndedAt: l.maxGapAt,
    errors: l.errors,
  }));
  out({
    event: 'summary',
    fenceAt,
    unfenceAt,
    summary,
    stalledLanes: summary.filter((s) => s.maxGapMs > 30000 || s.unconfirmed > 0).length,
  });
  for (const l of lanes) {
    if (FREEZE_PID) process.kill(FREEZE_PID, 'SIGCONT');
    await new Promise((r) => l.p.disconnect(5000, () => r()));
    l.log.end();
  }
  process.exit(0);
}

process.on('exit', () => {
  if (FREEZE_PID) {
    try {
      process.kill(FREEZE_PID, 'SIGCONT');
    } catch {
      /* gone */
    }
  }
  if (HOLD_PID) {
    try {
      process.kill(HOLD_PID, 'SIGUSR2');
    } catch {
      /* gone */
    }
  }
});
main().catch((e) => {
  out({ event: 'fatal', message: String(e) });
  process.exit(1);
});
