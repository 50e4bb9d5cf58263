// Smoke tests for the test harness itself: the brokers scripts/stack starts are real and
// reachable, and the client libraries the forwarder is built on work against them. When one
// of these fails, the other integration tests' failures say nothing about the forwarder.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import mqtt from 'mqtt';
import type { MqttClient } from 'mqtt';
import { features } from 'node-rdkafka';
import type { ProduceJob, ProduceWorkerMessage } from '../helpers/produce-worker';

// scripts/test exports these after starting the stack on the suite's own ports.
const MQTT_PORT = Number(process.env.MQTT_PORT ?? 1883);
const KAFKA_PORT = Number(process.env.KAFKA_PORT ?? 9092);
const MQTT_URL = `mqtt://127.0.0.1:${MQTT_PORT}`;
const KAFKA_BROKERS = `127.0.0.1:${KAFKA_PORT}`;
const RUN_ID = `${Date.now()}-${process.pid}`;

const mqttClients: MqttClient[] = [];
const workers: Worker[] = [];

after(async () => {
  await Promise.all(mqttClients.map((c) => c.endAsync(true).catch(() => undefined)));
  // Only reached with a live worker if a test failed before the worker said 'done'.
  await Promise.all(workers.map((w) => w.terminate().catch(() => undefined)));
});

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function connectMqtt(clientId: string): Promise<MqttClient> {
  const client = mqtt.connect(MQTT_URL, {
    clientId,
    clean: true,
    connectTimeout: 5000,
    // A harness check: fail at once instead of reconnecting forever.
    reconnectPeriod: 0,
  });
  mqttClients.push(client);
  return withTimeout(
    new Promise<MqttClient>((resolve, reject) => {
      client.once('connect', () => resolve(client));
      client.once('error', reject);
    }),
    10_000,
    `MQTT connect to ${MQTT_URL}`,
  );
}

function run(cmd: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

test('mosquitto: a QoS1 message published by one mqtt.js client reaches another', async () => {
  const topic = `harness/${RUN_ID}/qos1`;
  const payload = `hello ${RUN_ID}`;
  const sub = await connectMqtt(`harness-sub-${RUN_ID}`);
  const pub = await connectMqtt(`harness-pub-${RUN_ID}`);

  const granted = await withTimeout(sub.subscribeAsync(topic, { qos: 1 }), 5000, 'SUBACK');
  assert.equal(granted[0]?.qos, 1);

  const received = withTimeout(
    new Promise<{ topic: string; payload: string; qos: number }>((resolve) => {
      sub.on('message', (t, p, packet) => {
        if (t === topic) resolve({ topic: t, payload: p.toString(), qos: packet.qos });
      });
    }),
    10_000,
    `message on ${topic}`,
  );
  // Resolves on the broker's PUBACK.
  await withTimeout(pub.publishAsync(topic, payload, { qos: 1 }), 5000, 'PUBACK');
  assert.deepEqual(await received, { topic, payload, qos: 1 });
});

test('kafka: node-rdkafka produces from a worker thread; kcat reads the message back', async () => {
  const job: ProduceJob = {
    brokers: KAFKA_BROKERS,
    topic: `harness-${RUN_ID}`,
    key: `key-${RUN_ID}`,
    value: `value-${RUN_ID}`,
  };
  // Compiled next to this file's build output: build/test/helpers/produce-worker.js.
  const worker = new Worker(path.join(__dirname, '..', 'helpers', 'produce-worker.js'), {
    workerData: job,
  });
  workers.push(worker);

  const messages: ProduceWorkerMessage[] = [];
  const done = new Promise<void>((resolve, reject) => {
    worker.on('message', (msg: ProduceWorkerMessage) => {
      messages.push(msg);
      if (msg.type === 'done') resolve();
    });
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`worker exited (${code}) before 'done'`)));
  });
  // Longer than the worker's own connect (10 s) + delivery (15 s) + disconnect (5 s) bounds,
  // so the worker always finishes its native calls before we give up on it.
  await withTimeout(done, 40_000, "produce worker's delivery report and disconnect");
  // Only now: producer.disconnect() has completed, nothing native is pending in the thread.
  await worker.terminate();

  const errors = messages.filter((m) => m.type === 'error');
  assert.deepEqual(errors, [], 'the worker reported errors');
  const delivered = messages.find((m) => m.type === 'delivered');
  assert.ok(delivered, 'no delivery report');
  assert.equal(delivered.topic, job.topic);
  assert.equal(delivered.offset, 0);

  // kcat is an independent client: proves the message really is in the broker's log.
  const out = await run(
    'kcat',
    ['-C', '-b', KAFKA_BROKERS, '-t', job.topic, '-o', 'beginning', '-c', '1', '-e', '-f', '%k %s'],
    20_000,
  );
  assert.equal(out, `${job.key} ${job.value}`);
});

test('node-rdkafka was built with SSL, SASL (PLAIN, SCRAM), zstd and lz4', () => {
  // Missing -dev packages at install time silently produce a build without these.
  for (const feature of ['ssl', 'sasl_plain', 'sasl_scram', 'zstd', 'lz4']) {
    assert.ok(features.includes(feature), `librdkafka feature '${feature}' missing: ${features}`);
  }
});
