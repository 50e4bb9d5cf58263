/**
 * node-rdkafka registers its native callbacks again on every connect() of a client and never
 * removes those of a failed attempt. A producer that reconnected after failed attempts must still
 * settle every record exactly once: a duplicated delivery report would confirm records Kafka
 * never had (the batch completes early) and acknowledge their MQTT messages too soon.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, test } from 'node:test';
import pino from 'pino';
import { KafkaProducerRunner } from '../../src/pipeline/4-kafka-produce/kafka-producer';
import { packBatch } from '../../src/pipeline/4-kafka-produce/codec';
import { KAFKA_PORT, uniqueName } from '../helpers/env';
import { readAtLeast } from '../helpers/kafka';

/** A TCP relay to the test Kafka that refuses every connection until opened. */
function gate(): Promise<{ port: number; open(): void; close(): Promise<void> }> {
  let open = false;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    if (!open) {
      client.destroy();
      return;
    }
    const upstream = net.connect(KAFKA_PORT, '127.0.0.1');
    sockets.add(upstream);
    upstream.on('close', () => sockets.delete(upstream));
    client.pipe(upstream).pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      resolve({
        port: (server.address() as net.AddressInfo).port,
        open: () => {
          open = true;
        },
        close: () =>
          new Promise<void>((done) => {
            for (const s of sockets) s.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}

test('after failed connect attempts every record is settled exactly once', async () => {
  const relay = await gate();
  after(() => relay.close());
  const topic = uniqueName('mkf-reconnect');
  const lines: Record<string, unknown>[] = [];
  const log = pino(
    { level: 'debug' },
    { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) },
  );
  const runner = new KafkaProducerRunner(
    {
      // Bootstrap through the relay; the broker then advertises its own address.
      global: { 'bootstrap.servers': `127.0.0.1:${relay.port}` },
      topic: { acks: 'all' },
      connectTimeoutMs: 1_000,
      logLevel: 'debug',
    },
    log,
  );
  after(() => runner.shutdown(5_000));

  const failedAttempts = () => lines.filter((l) => l['code'] === 'ERR_KAFKA_CONNECT').length;
  const deadline = Date.now() + 15_000;
  while (failedAttempts() < 2 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(failedAttempts() >= 2, `2 failed connect attempts first (saw ${failedAttempts()})`);
  relay.open();
  await runner.ready();
  assert.equal(runner.isConnected, true);

  const count = 500;
  const records = Array.from({ length: count }, (_, i) => ({
    kafkaTopic: topic,
    key: Buffer.from('k'),
    value: Buffer.from(`v-${i}`),
  }));
  const result = await runner.handleBatch(packBatch(records));
  assert.deepEqual(result, { kind: 'batch', delivered: count, failures: [] });
  // Duplicated reports would arrive after the batch already completed: give them time.
  await new Promise((r) => setTimeout(r, 1_000));
  assert.equal(runner.unconfirmed, 0, 'one delivery report per record, no more');
  assert.equal(
    lines.filter((l) => l['msg'] === 'duplicate kafka delivery report ignored').length,
    0,
    'no duplicate report reached the runner',
  );
  const inKafka = await readAtLeast(topic, count);
  assert.equal(inKafka.length, count);
});
