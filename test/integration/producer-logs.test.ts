/**
 * librdkafka calls its log callback from its own threads. The binding hands each line to a
 * uv_async handle that connect() creates only after those threads started, so a line logged in
 * between (a "connection refused" from an unreachable broker, at once) made uv_async_send run on
 * a handle not yet initialised: SIGSEGV, about 1 in 1,000 starts with Kafka unreachable
 * (DESIGN.md). The forwarder's producers therefore log nothing through that callback. This
 * checks it against a refusing port, next to a client with librdkafka's default log level that
 * does log there (so the check can fail).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Producer } from 'node-rdkafka';
import pino from 'pino';
import { KafkaProducerRunner } from '../../src/pipeline/4-kafka-produce/kafka-producer';
import { closedPort } from '../helpers/stack';

/** Clients of this file live as long as the process: collecting one aborts it (DESIGN.md). */
const keep: unknown[] = [];

function logLines(producer: Producer, ms: number): Promise<number> {
  let n = 0;
  producer.on('event.log', () => n++);
  return new Promise((resolve) => setTimeout(() => resolve(n), ms));
}

test('a producer to an unreachable broker makes no log callback from librdkafka threads', async () => {
  const port = await closedPort();
  const bootstrap = `127.0.0.1:${port}`;

  // Control: librdkafka's default log level logs the refused connection from a broker thread.
  const control = new Producer({ 'bootstrap.servers': bootstrap, dr_cb: true });
  keep.push(control);
  const controlLines = logLines(control, 1_500);
  control.connect({ timeout: 1_000 }, () => undefined);
  assert.ok((await controlLines) > 0, 'premise: the default log level logs a refused connection');

  const lines: Record<string, unknown>[] = [];
  const runner = new KafkaProducerRunner(
    {
      // A `log_level` of the user's is refused at load; the runner's own setting must win anyway.
      global: { 'bootstrap.servers': bootstrap, log_level: 7 },
      topic: {},
      connectTimeoutMs: 1_000,
      logLevel: 'warn',
    },
    pino(
      { level: 'warn' },
      { write: (l: string) => lines.push(JSON.parse(l) as Record<string, unknown>) },
    ),
  );
  keep.push(runner);
  const producer = (runner as unknown as { producer: Producer }).producer;
  const n = await logLines(producer, 1_500);
  assert.ok(
    lines.some((l) => l['code'] === 'ERR_KAFKA_CONNECT'),
    'premise: the connect attempt was refused',
  );
  assert.equal(n, 0, 'log callbacks from librdkafka threads');
  // Between attempts it closes, during one it is abandoned (nothing of ours is in it).
  assert.ok(['abandoned', 'closed'].includes(await runner.shutdown(1_000)));
});
