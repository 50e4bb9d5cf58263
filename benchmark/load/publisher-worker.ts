/**
 * Publisher thread (see publisher.ts). One or more connections, each with a large window of
 * outstanding publishes, through either the raw client (raw-mqtt.ts) or mqtt.js; the window,
 * rate limit, timestamps and result are the same for both. Bounded in count (`messages`) and
 * time (`timeoutMs`).
 */
import { parentPort, workerData } from 'node:worker_threads';
import mqtt from 'mqtt';
import type { MqttClient } from 'mqtt';
import { encodePayload, nowMs, payloadTemplate, writePayload } from './payload';
import { threadCpuS } from '../measure/proc-sampler';
import type { PublisherConfig, PublisherMessage } from '../types';
import { RawMqttPublisher, encodeTopic } from './raw-mqtt';

const cfg = workerData as PublisherConfig;
const PROGRESS_MS = 200;
const KEEPALIVE_S = 60;
const CONNECT_TIMEOUT_MS = 10_000;

/** What the pump needs from a connection, whichever client is behind it. */
interface Conn {
  readonly index: number;
  /** Next sequence id to look at; ids of other connections' topics are skipped. */
  cursor: number;
  refillScheduled: boolean;
  /**
   * Completions arrive already batched per turn (raw client, QoS 1/2): refill at once, so the
   * new PUBLISHes go out with the PUBRELs of that turn. Otherwise refill on the next turn.
   */
  readonly refillInline: boolean;
  /** Publishes that may be started now. */
  room(): number;
  /** Starts one publish; its completion is reported through `completed()`. */
  send(seq: number, topic: number, publishedAt: number): void;
  /** End of a pump turn: hand what was queued to the socket. */
  flush(): void;
  close(): void;
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

function clientId(index: number): string {
  return `mkf-bench-pub-${cfg.runId.toString(16)}-${index}`;
}

function fail(message: string): void {
  error ??= message;
  finish(false);
}

/** `n` publishes of `c` completed: acknowledged (QoS 1/2) or written (QoS 0). */
function completed(c: Conn, n: number): void {
  acked += n;
  if (acked === cfg.messages) {
    finish(false);
    return;
  }
  if (c.refillInline) pump(c);
  else scheduleRefill(c);
}

/**
 * Refill once per turn of the event loop, not per completion: many acknowledgements arrive in
 * one socket read, and several reads may be handled in one turn.
 */
function scheduleRefill(c: Conn): void {
  if (c.refillScheduled || finished) return;
  c.refillScheduled = true;
  setImmediate(() => {
    c.refillScheduled = false;
    pump(c);
  });
}

function connectMqttjs(index: number): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect({
      host: cfg.host,
      port: cfg.port,
      protocolVersion: cfg.protocolVersion,
      clientId: clientId(index),
      clean: true,
      keepalive: KEEPALIVE_S,
      // A dropped publisher connection ends the run with an error: reconnecting would resend
      // with new packet ids and blur what the forwarder did.
      reconnectPeriod: 0,
      connectTimeout: CONNECT_TIMEOUT_MS,
    });
    client.once('connect', () => resolve(client));
    client.once('error', reject);
  });
}

async function mqttjsConn(index: number): Promise<Conn> {
  const client = await connectMqttjs(index);
  client.on('error', (err) => fail(`mqtt connection ${index}: ${err.message}`));
  client.on('close', () => {
    if (!finished) fail(`mqtt connection ${index} closed by the broker`);
  });
  let inflight = 0;
  const conn: Conn = {
    index,
    cursor: 0,
    refillScheduled: false,
    refillInline: false,
    room: () => cfg.window - inflight,
    send(seq, topic, t) {
      inflight++;
      client.publish(
        topicNames[topic]!,
        encodePayload(template, cfg.runId, seq, topic, t),
        { qos: cfg.qos },
        (err) => {
          if (err) return fail(`publish failed: ${err.message}`);
          inflight--;
          completed(conn, 1);
        },
      );
    },
    flush() {},
    close: () => client.end(true),
  };
  return conn;
}

async function rawConn(index: number): Promise<Conn> {
  const client = await RawMqttPublisher.connect({
    host: cfg.host,
    port: cfg.port,
    protocolVersion: cfg.protocolVersion,
    clientId: clientId(index),
    keepaliveS: KEEPALIVE_S,
    qos: cfg.qos,
    window: cfg.window,
    connectTimeoutMs: CONNECT_TIMEOUT_MS,
  });
  // Only this connection's topics, encoded once; the payload is built in one reused buffer and
  // copied into the packet at once, so a publish allocates nothing.
  const topics = topicNames.map((name, i) =>
    i % connections === index ? encodeTopic(name) : undefined,
  );
  const payload = Buffer.allocUnsafe(template.length);
  const conn: Conn = {
    index,
    cursor: 0,
    refillScheduled: false,
    refillInline: cfg.qos > 0,
    room: () => client.room(),
    send(seq, topic, t) {
      writePayload(payload, 0, template, cfg.runId, seq, topic, t);
      client.publish(topics[topic]!, payload);
    },
    flush: () => client.flush(),
    close: () => client.disconnect(),
  };
  client.onComplete = (n) => completed(conn, n);
  client.onDrain = () => scheduleRefill(conn);
  client.onError = (message) => fail(`mqtt connection ${index}: ${message}`);
  return conn;
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
  while (!finished && c.room() > 0 && budget >= 1 && c.cursor < cfg.messages) {
    const seq = c.cursor++;
    const topic = seq % cfg.topics;
    if (topic % connections !== c.index) continue;
    // Taken right before the packet is queued, as the latency is measured from it.
    const t = nowMs();
    publishTimes[seq] = t;
    sent++;
    budget--;
    if (cfg.rate > 0) tokens--;
    c.send(seq, topic, t);
  }
  if (!finished) c.flush();
}

function finish(timedOut: boolean): void {
  if (finished) return;
  finished = true;
  if (rateTimer) clearInterval(rateTimer);
  const endedAt = nowMs();
  const busy = performance.eventLoopUtilization(elu0).utilization;
  const cpuPct = ((threadCpuS() - cpu0) / Math.max(1e-3, (endedAt - startedAt) / 1000)) * 100;
  for (const c of conns) c.close();
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
  const open = (cfg.client ?? 'raw') === 'raw' ? rawConn : mqttjsConn;
  try {
    for (let i = 0; i < connections; i++) conns.push(await open(i));
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
