/**
 * Publisher thread (see publisher.ts). mqtt.js clients with a large window of outstanding
 * publishes each; bounded in count (`messages`) and time (`timeoutMs`).
 */
import { parentPort, workerData } from 'node:worker_threads';
import mqtt from 'mqtt';
import type { MqttClient } from 'mqtt';
import { encodePayload, nowMs, payloadTemplate } from './payload';
import { threadCpuS } from './proc-sampler';
import type { PublisherConfig, PublisherMessage } from './publisher';

const cfg = workerData as PublisherConfig;
const PROGRESS_MS = 200;

interface Conn {
  readonly client: MqttClient;
  readonly index: number;
  /** Next sequence id to look at; ids of other connections' topics are skipped. */
  cursor: number;
  inflight: number;
  refillScheduled: boolean;
}

const topicNames = Array.from({ length: cfg.topics }, (_, i) => `${cfg.topicPrefix}/${i}`);
const connections = Math.max(1, Math.min(cfg.connections, cfg.topics));
const template = payloadTemplate(cfg.payloadSize);
const publishTimes = new Float64Array(cfg.messages).fill(NaN);
let sent = 0;
let acked = 0;
let startedAt = NaN;
let finished = false;
let error: string | undefined;
let rateTimer: NodeJS.Timeout | undefined;
const conns: Conn[] = [];

function post(m: PublisherMessage, transfer: ArrayBuffer[] = []): void {
  parentPort!.postMessage(m, transfer);
}

function connect(index: number): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect({
      host: cfg.host,
      port: cfg.port,
      protocolVersion: cfg.protocolVersion,
      clientId: `mkf-bench-pub-${cfg.runId.toString(16)}-${index}`,
      clean: true,
      keepalive: 60,
      // A dropped publisher connection ends the run with an error: reconnecting would resend
      // with new packet ids and blur what the forwarder did.
      reconnectPeriod: 0,
      connectTimeout: 10_000,
    });
    client.once('connect', () => resolve(client));
    client.once('error', reject);
  });
}

/**
 * Token bucket for --msg-rate. The burst is capped at 5 ms worth: after a stall (GC, a busy
 * core) the publisher resumes at the configured rate instead of catching up in one burst,
 * which would measure the forwarder under a load nobody asked for.
 */
const BURST_MS = 5;
let tokens = 0;
let tokensAt = 0;

/** Messages the rate limit allows to be sent now, beyond those already sent. */
function allowance(): number {
  if (cfg.rate <= 0) return Infinity;
  const now = nowMs();
  tokens = Math.min(
    tokens + ((now - tokensAt) * cfg.rate) / 1000,
    Math.max(1, (cfg.rate * BURST_MS) / 1000),
  );
  tokensAt = now;
  return Math.floor(tokens);
}

function pump(c: Conn): void {
  let budget = allowance();
  while (!finished && c.inflight < cfg.window && budget >= 1 && c.cursor < cfg.messages) {
    const seq = c.cursor++;
    const topic = seq % cfg.topics;
    if (topic % connections !== c.index) continue;
    const t = nowMs();
    publishTimes[seq] = t;
    sent++;
    budget--;
    if (cfg.rate > 0) tokens--;
    c.inflight++;
    c.client.publish(
      topicNames[topic]!,
      encodePayload(template, cfg.runId, seq, topic, t),
      { qos: cfg.qos },
      (err) => {
        if (err) {
          error ??= `publish failed: ${err.message}`;
          finish(false);
          return;
        }
        c.inflight--;
        acked++;
        if (acked === cfg.messages) {
          finish(false);
          return;
        }
        // Refill once per turn of the event loop, not per acknowledgement: many PUBACKs
        // arrive in one socket read.
        if (!c.refillScheduled) {
          c.refillScheduled = true;
          setImmediate(() => {
            c.refillScheduled = false;
            pump(c);
          });
        }
      },
    );
  }
}

function finish(timedOut: boolean): void {
  if (finished) return;
  finished = true;
  if (rateTimer) clearInterval(rateTimer);
  const endedAt = nowMs();
  const busy = performance.eventLoopUtilization(elu0).utilization;
  const cpuPct = ((threadCpuS() - cpu0) / Math.max(1e-3, (endedAt - startedAt) / 1000)) * 100;
  for (const c of conns) c.client.end(true);
  post(
    {
      type: 'done',
      sent,
      acked,
      timedOut,
      ...(error === undefined ? {} : { error }),
      startedAt,
      endedAt,
      busy,
      cpuPct,
      publishTimes: publishTimes.buffer,
    },
    [publishTimes.buffer],
  );
}

let elu0 = performance.eventLoopUtilization();
let cpu0 = NaN;

async function main(): Promise<void> {
  const timeout = setTimeout(() => finish(true), cfg.timeoutMs);
  const progress = setInterval(() => post({ type: 'progress', sent, acked }), PROGRESS_MS);
  progress.unref();
  timeout.unref();
  try {
    for (let i = 0; i < connections; i++) {
      const client = await connect(i);
      client.on('error', (err) => {
        error ??= `mqtt connection ${i}: ${err.message}`;
        finish(false);
      });
      client.on('close', () => {
        if (!finished) {
          error ??= `mqtt connection ${i} closed by the broker`;
          finish(false);
        }
      });
      conns.push({ client, index: i, cursor: 0, inflight: 0, refillScheduled: false });
    }
  } catch (err) {
    error = `mqtt connect to ${cfg.host}:${cfg.port} failed: ${(err as Error).message}`;
    finish(false);
    return;
  }
  if (cfg.messages === 0) return finish(false);
  elu0 = performance.eventLoopUtilization();
  cpu0 = threadCpuS();
  startedAt = nowMs();
  tokensAt = startedAt;
  tokens = 1;
  for (const c of conns) pump(c);
  if (cfg.rate > 0) {
    // Rate-limited sending stalls on the allowance, not on acknowledgements: poll it.
    rateTimer = setInterval(() => {
      for (const c of conns) pump(c);
    }, 1);
  }
}

void main();
