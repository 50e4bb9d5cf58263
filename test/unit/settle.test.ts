/**
 * The way back (src/pipeline/5-settle/settle.ts → src/pipeline/6-mqtt-ack/window.ts): Kafka's
 * answer per record becomes acks in receive order, counters per mapping, and for a refusal the
 * mapping's on_error policy. Kafka is the scripted lane of test/helpers/fake-pipeline.ts; timers
 * (the stop policy's offers, the log's rate limit) are node:test's mocked ones.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { STOP_RETRY_MS } from '../../src/pipeline/5-settle/settle';
import type { MappingPolicy } from '../../src/pipeline/5-settle/settle';
import { KAFKA_ERRORS } from '../../src/seams/rdkafka';
import { capturedLogger, fakePipeline, refuse } from '../helpers/fake-pipeline';
import type { FakePipeline } from '../helpers/fake-pipeline';

const DENIED = KAFKA_ERRORS.ERR_TOPIC_AUTHORIZATION_FAILED;
const DENIED_TEXT = 'Broker: Topic authorization failed';
const denied = (value?: string) =>
  refuse(DENIED, DENIED_TEXT, value === undefined ? undefined : (r) => r.value === value);

const FORWARDED = 'mkf_messages_forwarded_total';
const FAILED = 'mkf_messages_failed_total';
const SKIPPED = 'mkf_messages_skipped_total';
const DEAD_LETTERED = 'mkf_messages_dead_lettered_total';

/** Lets a refusal's dead-letter copy (an added record, lingering one turn) go out and settle. */
async function turns(p: FakePipeline, n = 3): Promise<void> {
  for (let i = 0; i < n; i++) await p.turn();
}

const policy = (onError: MappingPolicy['onError'], name = 'm'): MappingPolicy =>
  onError === 'dead_letter' ? { name, onError, deadLetterTopic: 'dlq' } : { name, onError };

describe('every record confirmed', () => {
  test('acks are released in receive order, all of one batch result in one release', async () => {
    const p = fakePipeline({ batchSize: 3 });
    for (let id = 1; id <= 3; id++) p.send(id);
    await p.turn();
    assert.deepEqual(p.releases, [[1, 2, 3]], 'one socket write for the whole result');
  });

  test('batches of different lanes answered out of order: acks still in receive order', async () => {
    const p = fakePipeline({ lanes: 3, batchSize: 1 });
    p.hold = true;
    p.send(1, 0);
    p.send(2, 1);
    p.send(3, 2);
    p.send(4, 1);
    await p.answer(2);
    await p.answer(1);
    await p.answer(1);
    assert.deepEqual(p.released, [], 'nothing while the oldest message is unconfirmed');
    assert.equal(p.window.size, 4);
    await p.answer(0);
    assert.deepEqual(p.releases, [[1, 2, 3, 4]]);
    assert.equal(p.window.size, 0);
  });

  test('a message fanned out to two mappings is released once both records are confirmed', async () => {
    const p = fakePipeline({ lanes: 2, policies: [policy('stop', 'a'), policy('stop', 'b')] });
    p.hold = true;
    const fanned = p.admit(1, 2);
    p.batcher.add(0, p.record(fanned, 0));
    p.batcher.add(1, p.record(fanned, 1));
    p.send(2, 0);
    await turns(p);
    await p.answer(0);
    await p.answer(0);
    assert.deepEqual(p.released, [], 'one of two deliveries confirmed: not yet');
    assert.equal(fanned.pending, 1);
    await p.answer(1);
    assert.deepEqual(p.released, [1, 2]);
  });

  test('counters per mapping: forwarded, failed, skipped, dead-lettered, latency', async () => {
    const p = fakePipeline({
      lanes: 2,
      batchSize: 2,
      policies: [policy('skip', 'a'), policy('dead_letter', 'b')],
    });
    for (const name of [FORWARDED, FAILED, SKIPPED, DEAD_LETTERED])
      for (const m of ['a', 'b']) assert.equal(await p.counter(name, m), 0, `${name}{${m}} at 0`);
    p.answers.push(denied('v2'), denied('v4'));
    p.send(1, 0, 0);
    p.send(2, 0, 0);
    p.send(3, 1, 1);
    p.send(4, 1, 1);
    await turns(p);
    assert.deepEqual(p.released, [1, 2, 3, 4]);
    const counts: Record<string, number[]> = {};
    for (const name of [FORWARDED, FAILED, SKIPPED, DEAD_LETTERED])
      counts[name] = [await p.counter(name, 'a'), await p.counter(name, 'b')];
    assert.deepEqual(counts, {
      [FORWARDED]: [1, 1],
      [FAILED]: [1, 1],
      [SKIPPED]: [1, 0],
      [DEAD_LETTERED]: [0, 1],
    });
    const latency = await p.metrics.registry.getSingleMetricAsString(
      'mkf_delivery_latency_seconds',
    );
    assert.match(latency, /^mkf_delivery_latency_seconds_count\{mapping="a"\} 1$/m);
    assert.match(latency, /^mkf_delivery_latency_seconds_count\{mapping="b"\} 1$/m);
  });
});

describe('on_error: skip', () => {
  test('the refused record is logged, counted and acknowledged; nothing halts', async () => {
    const { log, lines } = capturedLogger();
    const p = fakePipeline({ batchSize: 2, policies: [policy('skip')], log });
    p.answers.push(denied('v1'));
    p.send(1);
    p.send(2);
    await p.turn();
    assert.deepEqual(p.released, [1, 2]);
    assert.deepEqual(p.halts, []);
    assert.equal(p.window.hasRoom, true);
    assert.equal(await p.counter(SKIPPED), 1);
    assert.equal(await p.counter(FAILED), 1);
    assert.equal(await p.counter(FORWARDED), 1);
    const refusal = lines.find((l) => l['code'] === 'ERR_KAFKA_DELIVERY');
    assert.deepEqual(
      refusal && [refusal['kafkaError'], refusal['action'], refusal['mapping'], refusal['origin']],
      ['ERR_TOPIC_AUTHORIZATION_FAILED', 'skip', 'm', 'kafka'],
    );
  });
});

describe('on_error: dead_letter', () => {
  test('the original payload and where it failed go to the dead-letter topic, then the ack', async () => {
    const p = fakePipeline({ policies: [policy('dead_letter')] });
    p.hold = true;
    const entry = p.window.admit(2, 9, 1, 8, 1, true);
    // As with wrap_as_json: the record's value is not the payload received.
    p.batcher.add(0, { ...p.record(entry, 0, 'payload'), value: Buffer.from('{"wrapped":1}') });
    await p.turn();
    p.answers.push(denied());
    await p.answer();
    await p.turn();
    assert.deepEqual(p.released, [], 'not before the dead-letter copy is confirmed');
    assert.deepEqual(p.batches[1], [
      {
        lane: 0,
        kafkaTopic: 'dlq',
        key: 'a/b',
        value: 'payload',
        headers: {
          mqtt_topic: 'a/b',
          mqtt_qos: '2',
          mqtt_retain: 'true',
          mapping: 'm',
          error: DENIED_TEXT,
        },
      },
    ]);
    await p.answer();
    assert.deepEqual(p.released, [9]);
    assert.deepEqual(p.halts, []);
    assert.equal(await p.counter(DEAD_LETTERED), 1);
    assert.equal(await p.counter(FORWARDED), 0, 'the copy is not counted as forwarded');
  });

  test('a dead-letter topic that refuses too falls back to stop', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const p = fakePipeline({ policies: [policy('dead_letter')] });
    p.answers.push(denied(), denied());
    p.send(1);
    await turns(p);
    assert.equal(p.batches.length, 2);
    assert.deepEqual(p.halts, [true]);
    assert.deepEqual(p.released, []);
    assert.match(p.settler.haltReason ?? '', /dead-letter record.*on_error: stop/);
    t.mock.timers.tick(STOP_RETRY_MS);
    await turns(p);
    assert.deepEqual(
      p.batches.map((b) => b.map((r) => r.kafkaTopic)),
      [['out'], ['dlq'], ['dlq']],
      'the dead-letter copy is what is offered again',
    );
    assert.deepEqual(p.halts, [true, false]);
    assert.deepEqual(p.released, [1]);
    assert.equal(p.settler.haltReason, undefined);
    assert.equal(await p.counter(FAILED), 2);
    assert.equal(await p.counter(DEAD_LETTERED), 1);
  });
});

describe('on_error: stop', () => {
  test('a Kafka refusal holds reading; offered every STOP_RETRY_MS; resumes once taken', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const p = fakePipeline({ batchSize: 1, batchesPerLane: 2 });
    p.answers.push(denied('v1'), () => [], denied('v1'));
    p.send(1);
    p.send(2);
    await p.turn();
    assert.deepEqual(p.halts, [true]);
    assert.equal(p.window.hasRoom, false, 'reading paused');
    let reading = false;
    p.window.whenRoom(() => (reading = true));
    assert.deepEqual(p.released, [], 'message 2 is confirmed but behind the held one');
    t.mock.timers.tick(STOP_RETRY_MS - 1);
    await p.turn();
    assert.equal(p.batches.length, 2, 'not offered before the period');
    t.mock.timers.tick(1);
    await p.turn();
    assert.equal(p.batches.length, 3, 'offered again, refused again');
    assert.deepEqual(p.halts, [true], 'still one hold');
    t.mock.timers.tick(STOP_RETRY_MS);
    await p.turn();
    assert.deepEqual(
      p.batches.map((b) => b.map((r) => r.value)),
      [['v1'], ['v2'], ['v1'], ['v1']],
    );
    assert.deepEqual(p.halts, [true, false]);
    assert.deepEqual(p.releases, [[1, 2]]);
    assert.equal(reading, true, 'reading resumed');
    assert.equal(await p.counter(FAILED), 2);
    assert.equal(await p.counter(FORWARDED), 2);
  });

  test('stopRetries() cancels the pending offers: the held message stays unacknowledged', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const p = fakePipeline();
    p.answers.push(denied());
    p.send(1);
    await p.turn();
    p.settler.stopRetries();
    t.mock.timers.tick(STOP_RETRY_MS * 3);
    await p.turn();
    assert.equal(p.batches.length, 1);
    assert.deepEqual(p.released, []);
    assert.deepEqual(p.halts, [true]);
  });
});

describe('over mqtt.max_payload_bytes (settler.reject): the same policies', () => {
  test('stop: held for good, never offered to Kafka, nothing behind it acknowledged', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const p = fakePipeline();
    p.settler.reject(0, p.record(p.admit(1)), 'payload 5000 bytes over the limit');
    p.send(2);
    await p.turn();
    for (let i = 0; i < 3; i++) {
      t.mock.timers.tick(STOP_RETRY_MS);
      await p.turn();
    }
    assert.deepEqual(p.batches, [
      [{ lane: 0, kafkaTopic: 'out', key: 'a/b', value: 'v2', headers: {} }],
    ]);
    assert.deepEqual(p.halts, [true]);
    assert.deepEqual(p.released, []);
    assert.match(p.settler.haltReason ?? '', /message not sent \(payload 5000 bytes/);
  });

  test('skip: acknowledged without being sent', async () => {
    const p = fakePipeline({ policies: [policy('skip')] });
    p.settler.reject(0, p.record(p.admit(1)), 'too big');
    assert.deepEqual(p.released, [1]);
    assert.deepEqual(p.batches, []);
    assert.equal(await p.counter(SKIPPED), 1);
  });

  test('dead_letter: the copy goes to the dead-letter topic, saying why', async () => {
    const p = fakePipeline({ policies: [policy('dead_letter')] });
    p.settler.reject(0, p.record(p.admit(1)), 'too big');
    await turns(p);
    assert.deepEqual(
      p.batches.map((b) => b.map((r) => [r.kafkaTopic, r.headers['error']])),
      [[['dlq', 'too big']]],
    );
    assert.deepEqual(p.released, [1]);
  });
});

describe('the log of refusals is rate limited, the counters are not', () => {
  const deliveryLines = (lines: Record<string, unknown>[]) =>
    lines.filter((l) => l['code'] === 'ERR_KAFKA_DELIVERY');

  test('1,000 refusals in a burst (skip): one line, 1,000 counted; the next line says how many were folded', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_000_000 });
    const { log, lines } = capturedLogger();
    const p = fakePipeline({ batchSize: 1000, policies: [policy('skip')], log });
    p.answers.push(denied());
    for (let id = 1; id <= 1000; id++) p.send(id);
    await p.turn();
    assert.equal(p.released.length, 1000);
    assert.ok(lines.length <= 2, `${lines.length} log lines for 1,000 refusals`);
    assert.equal(deliveryLines(lines).length, 1);
    assert.equal(await p.counter(FAILED), 1000);
    assert.equal(await p.counter(SKIPPED), 1000);
    t.mock.timers.tick(5_000);
    p.answers.push(denied());
    p.send(1001);
    await turns(p);
    assert.deepEqual(
      deliveryLines(lines).map((l) => l['suppressed']),
      [0, 999],
    );
    assert.equal(await p.counter(FAILED), 1001);
  });

  test('1,000 refusals in a burst (stop): a couple of lines, one hold, every record offered again', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const { log, lines } = capturedLogger();
    const p = fakePipeline({ batchSize: 1000, log });
    p.answers.push(denied());
    for (let id = 1; id <= 1000; id++) p.send(id);
    await p.turn();
    assert.ok(lines.length <= 2, `${lines.length} log lines for 1,000 refusals`);
    assert.equal(deliveryLines(lines).length, 1);
    assert.deepEqual(p.halts, [true]);
    assert.equal(await p.counter(FAILED), 1000);
    t.mock.timers.tick(STOP_RETRY_MS);
    await turns(p);
    assert.deepEqual(p.halts, [true, false]);
    assert.equal(p.released.length, 1000);
    assert.deepEqual(p.released.slice(0, 3), [1, 2, 3]);
    assert.equal(await p.counter(FORWARDED), 1000);
  });
});
