/**
 * The binding's poll() reaches the native client without taking its lock, while disconnect()
 * deletes that client on a libuv thread. A poll in between is a use-after-free: SIGSEGV in
 * rd_kafka_q_serve, SIGABRT on a pure virtual call, or a hang (DESIGN.md, "Producer
 * teardown"). The runner must stop polling before it disconnects and make no native call until
 * the disconnect reported back. And the binding hands delivery reports over 100 per event-loop
 * turn and drops those still queued when disconnect() ends, so every report of a flushed record
 * must have arrived before. This watches the native client during real teardowns.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import pino from 'pino';
import { KafkaProducerRunner } from '../../src/pipeline/4-kafka-produce/kafka-producer';
import { packBatch } from '../../src/pipeline/4-kafka-produce/codec';
import { KAFKA_BROKERS, uniqueName } from '../helpers/env';
import { until } from '../helpers/kit';

/** The binding's native object, as `Producer._client` holds it. */
interface NativeClient {
  poll(): unknown;
  produce(...args: unknown[]): unknown;
  disconnect(cb: (...args: unknown[]) => void): unknown;
}

const CYCLES = 5;

test(`no native call reaches the client while it is being disconnected (${CYCLES} teardowns)`, async () => {
  const topic = uniqueName('mkf-teardown');
  for (let cycle = 0; cycle < CYCLES; cycle++) {
    const runner = new KafkaProducerRunner(
      {
        global: { 'bootstrap.servers': KAFKA_BROKERS },
        topic: { acks: 'all' },
        connectTimeoutMs: 5_000,
        logLevel: 'warn',
      },
      pino({ level: 'warn' }),
    );
    await runner.ready();
    assert.equal(runner.isConnected, true, 'premise: connected');
    const native = (runner as unknown as { producer: { _client: NativeClient } }).producer._client;
    let disconnecting = false;
    let polls = 0;
    const during: string[] = [];
    const poll = native.poll.bind(native);
    native.poll = () => {
      polls++;
      if (disconnecting) during.push('poll');
      return poll();
    };
    const produce = native.produce.bind(native);
    native.produce = (...args: unknown[]) => {
      if (disconnecting) during.push('produce');
      return produce(...args);
    };
    const disconnect = native.disconnect.bind(native);
    native.disconnect = (cb) => {
      disconnecting = true;
      return disconnect((...args: unknown[]) => {
        disconnecting = false;
        cb(...args);
      });
    };

    const records = Array.from({ length: 200 }, (_, i) => ({
      kafkaTopic: topic,
      key: Buffer.from('k'),
      value: Buffer.from(`v-${i}`),
    }));
    // Records still in librdkafka's queue when shutdown starts: shutdown must deliver them and
    // hand every delivery report over before the binding closes its report channel.
    const batch = runner.handleBatch(packBatch(records));
    // Premise: the runner polls while records await their reports (a condition, not a delay:
    // on a loaded machine the first poll can come later than any fixed wait).
    await until(`a poll before shutdown (cycle ${cycle})`, () => polls > 0, { intervalMs: 1 });
    await runner.shutdown(5_000);
    assert.deepEqual(during, [], `native calls during disconnect (cycle ${cycle})`);
    assert.equal(runner.unconfirmed, 0, `every delivery report arrived (cycle ${cycle})`);
    assert.deepEqual(await batch, { kind: 'batch', delivered: 200, failures: [] });
  }
});
