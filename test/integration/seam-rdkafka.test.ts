/**
 * Seam test for src/seams/rdkafka.ts: what the forwarder relies on in the Kafka binding beyond
 * its typed API, checked against the installed binding and the real Kafka. An upgrade of the
 * binding that changes any of it fails here, by name, before it can turn a permanent refusal
 * into an endless retry (or the reverse).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { Producer } from 'node-rdkafka';
import type { LibrdKafkaError } from 'node-rdkafka';
import {
  KAFKA_ERRORS,
  LIBRDKAFKA_VERSION,
  PINNED_RDKAFKA_VERSION,
  deliveryReportsConfig,
  errorCodeOf,
  kafkaErrorName,
  onCompactReports,
} from '../../src/seams/rdkafka';
import { KAFKA_BROKERS, REPO_ROOT, uniqueName } from '../helpers/env';
import { createTopic, markTopic } from '../helpers/kafka';
import { threadStats } from '../../benchmark/measure/proc-tree';
import { freezeKafka, thawKafka } from '../helpers/stack';

/** CPU time (ms) of this process's librdkafka broker threads, from /proc. */
function brokerThreadsCpuMs(): number {
  let cpuS = 0;
  for (const t of threadStats(process.pid).values())
    if (t.comm.startsWith('rdk:broker')) cpuS += t.cpuS;
  return Math.round(cpuS * 1_000);
}

function connect(producer: Producer): Promise<void> {
  return new Promise<void>((resolve, reject) =>
    producer.connect({ timeout: 20_000 }, (err) => (err ? reject(err) : resolve())),
  );
}

function disconnect(producer: Producer): Promise<void> {
  return new Promise<void>((resolve) => producer.disconnect(5_000, () => resolve()));
}

describe('seam: node-rdkafka', () => {
  test(`installed binding is ${PINNED_RDKAFKA_VERSION} and package.json pins it exactly`, (t) => {
    const installed = (
      JSON.parse(
        readFileSync(path.join(REPO_ROOT, 'node_modules/node-rdkafka/package.json'), 'utf8'),
      ) as { version: string }
    ).version;
    assert.equal(installed, PINNED_RDKAFKA_VERSION, 're-check src/seams/rdkafka.ts, then re-pin');
    const pkg = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    assert.match(pkg.dependencies['node-rdkafka']!, new RegExp(`@${PINNED_RDKAFKA_VERSION}$`));
    t.diagnostic(`librdkafka ${LIBRDKAFKA_VERSION}`);
  });

  test('every code has a name, and an unknown code a readable one', () => {
    for (const [name, code] of Object.entries(KAFKA_ERRORS)) {
      if (code === KAFKA_ERRORS.ERR_UNKNOWN) continue;
      // Aliases share a code; the name given back must at least be one of the code's names.
      assert.equal(KAFKA_ERRORS[kafkaErrorName(code) as keyof typeof KAFKA_ERRORS], code, name);
    }
    assert.equal(kafkaErrorName(10), 'ERR_MSG_SIZE_TOO_LARGE');
    assert.equal(kafkaErrorName(123456), 'ERR_123456');
  });

  test('a real delivery failure reaches JS as text only, and the seam gives its code back', async () => {
    const topic = uniqueName('seam-rdkafka');
    // The broker refuses records over 2,000 bytes; librdkafka does not know that limit.
    await createTopic(topic, { 'max.message.bytes': '2000' });
    const producer = new Producer(
      { 'bootstrap.servers': KAFKA_BROKERS, dr_cb: true, log_level: 0 },
      { 'message.timeout.ms': 5_000 },
    );
    await connect(producer);
    producer.setPollInterval(10);
    try {
      const report = new Promise<LibrdKafkaError | null>((resolve) =>
        producer.once('delivery-report', (err) => resolve(err)),
      );
      producer.produce(topic, null, Buffer.alloc(5_000), null);
      const err = await report;
      assert.ok(err, 'a delivery error');
      // What the seam works around: the binding hands over no usable code, only the text.
      assert.equal(err.code, KAFKA_ERRORS.ERR_UNKNOWN, `code ${String(err.code)}`);
      assert.equal(errorCodeOf(err), KAFKA_ERRORS.ERR_MSG_SIZE_TOO_LARGE, err.message);
    } finally {
      producer.setPollInterval(0);
      await disconnect(producer);
    }
  });

  // native/node-rdkafka/0001-compact-delivery-reports.patch. Unpatched, Producer lacks the flag
  // and librdkafka refuses `dr_compact` as an unknown property.
  test('compact delivery reports: every id once with its exact code, many per event', async () => {
    const topic = uniqueName('seam-rdkafka-compact');
    await markTopic(topic);
    // The broker refuses record batches over 2,000 bytes there; librdkafka does not know that.
    const refusing = uniqueName('seam-rdkafka-compact-small');
    await createTopic(refusing, { 'max.message.bytes': '2000' });
    const producer = new Producer(
      { 'bootstrap.servers': KAFKA_BROKERS, log_level: 0, ...deliveryReportsConfig() },
      { 'message.timeout.ms': 10_000 },
    );
    await connect(producer);
    producer.setPollInterval(1);
    const codes = new Map<number, number>();
    let events = 0;
    let duplicates = 0;
    onCompactReports(producer, (ids, errs) => {
      events++;
      assert.equal(ids.length, errs.length);
      for (let i = 0; i < ids.length; i++) {
        if (codes.has(ids[i]!)) duplicates++;
        codes.set(ids[i]!, errs[i]!);
      }
    });
    const until = async (n: number) => {
      const deadline = Date.now() + 20_000;
      while (codes.size < n && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 20));
    };
    try {
      assert.throws(
        () => producer.produce(topic, null, Buffer.alloc(10), null, Date.now(), {}),
        /opaque must be an integer/,
      );
      const n = 2_000;
      // The largest id as well: ids are uint32 end to end, not int32.
      const ids = [...Array.from({ length: n - 1 }, (_, i) => i + 1), 0xffff_ffff];
      for (const id of ids) producer.produce(topic, null, Buffer.alloc(100), null, Date.now(), id);
      await until(n);
      assert.equal(codes.size, n);
      for (const id of ids) assert.equal(codes.get(id), 0, `id ${id}`);
      assert.ok(events < n / 10, `${events} events for ${n} reports`);
      // A broker refusal arrives with its code (the object reports carry only text).
      producer.produce(refusing, null, Buffer.alloc(5_000), null, Date.now(), 7_777_777);
      await until(n + 1);
      assert.equal(codes.get(7_777_777), KAFKA_ERRORS.ERR_MSG_SIZE_TOO_LARGE);
      assert.equal(duplicates, 0);
    } finally {
      producer.setPollInterval(0);
      await disconnect(producer);
    }
  });

  // native/node-rdkafka/0002-report-wakeup.patch. Unpatched, Producer lacks REPORT_WAKEUP (and
  // deliveryReportsConfig throws); a wakeup that never came would leave every count at 0.
  test('report wakeup: reports arrive with no poll at all, and disconnect() under them is safe', async () => {
    const topic = uniqueName('seam-rdkafka-wakeup');
    await markTopic(topic);
    const records = 500;
    /** Reports that arrive within `waitMs`, with nothing calling poll() or setPollInterval(). */
    const reportsWithoutPoll = async (wakeup: boolean, waitMs: number): Promise<number> => {
      const producer = new Producer(
        {
          'bootstrap.servers': KAFKA_BROKERS,
          log_level: 0,
          'linger.ms': 0,
          ...deliveryReportsConfig(),
          dr_wakeup: wakeup,
        } as ConstructorParameters<typeof Producer>[0],
        { 'message.timeout.ms': 10_000 },
      );
      await connect(producer);
      let reported = 0;
      onCompactReports(producer, (ids, codes) => {
        assert.ok(codes.every((c) => c === 0));
        reported += ids.length;
      });
      try {
        for (let id = 1; id <= records; id++)
          producer.produce(topic, null, Buffer.alloc(100), null, Date.now(), id);
        const deadline = Date.now() + waitMs;
        while (reported < records && Date.now() < deadline)
          await new Promise((resolve) => setTimeout(resolve, 10));
        return reported;
      } finally {
        await disconnect(producer);
      }
    };
    assert.equal(await reportsWithoutPoll(true, 20_000), records);
    // The control: nothing else serves librdkafka's queue here, so without the wakeup nothing
    // arrives (Kafka confirms a local batch in milliseconds; the wait is a hundred times that).
    assert.equal(await reportsWithoutPoll(false, 1_000), 0);

    // disconnect() while reports are being queued and served: the wakeup must be off before
    // the client is deleted on a libuv thread. Two producers at a time, as two lanes would be.
    const cycle = async (n: number): Promise<void> => {
      const producer = new Producer(
        {
          'bootstrap.servers': KAFKA_BROKERS,
          log_level: 0,
          'linger.ms': 0,
          ...deliveryReportsConfig(),
        },
        { 'message.timeout.ms': 10_000 },
      );
      await connect(producer);
      onCompactReports(producer, () => undefined);
      for (let id = 1; id <= 200; id++)
        producer.produce(topic, null, Buffer.alloc(100), null, Date.now(), n * 1_000 + id);
      await new Promise<void>((resolve) => producer.disconnect(0, () => resolve()));
    };
    for (let n = 1; n <= 20; n++) await Promise.all([cycle(2 * n), cycle(2 * n + 1)]);
  });

  // native/librdkafka/0002-linger-adaptive.patch. Unpatched, librdkafka refuses the property.
  // The linger is 2 s so that every bound below has a margin of a hundred times what it measures
  // (a few milliseconds on this machine): the test checks which rule applies, not how fast.
  test('linger.adaptive: a partition with nothing in flight sends at once, once per linger period', async () => {
    const lingerMs = 2_000;
    const topic = uniqueName('seam-rdkafka-linger');
    await markTopic(topic);
    /** Milliseconds from produce() to the delivery report of each record given, one by one. */
    const deliveryTimes = async (adaptive: boolean, records: number): Promise<number[]> => {
      const producer = new Producer(
        {
          'bootstrap.servers': KAFKA_BROKERS,
          log_level: 0,
          'linger.ms': lingerMs,
          'linger.adaptive': adaptive,
          ...deliveryReportsConfig(),
        } as ConstructorParameters<typeof Producer>[0],
        { 'message.timeout.ms': 30_000 },
      );
      await connect(producer);
      producer.setPollInterval(1);
      let reported: (() => void) | undefined;
      onCompactReports(producer, (_ids, codes) => {
        assert.deepEqual([...codes], [0]);
        reported?.();
      });
      const times: number[] = [];
      try {
        for (let id = 1; id <= records; id++) {
          const start = performance.now();
          await new Promise<void>((resolve) => {
            reported = resolve;
            producer.produce(topic, null, Buffer.alloc(10), null, Date.now(), id);
          });
          times.push(performance.now() - start);
        }
      } finally {
        producer.setPollInterval(0);
        await disconnect(producer);
      }
      return times;
    };
    const [first, second] = await deliveryTimes(true, 2);
    // The first record finds nothing in flight and goes at once; the second, produced right
    // after the first was confirmed, waits out the linger period the first request began.
    assert.ok(first! < lingerMs / 4, `first record confirmed after ${first} ms`);
    assert.ok(first! + second! > (lingerMs * 3) / 4, `second record after ${second} ms`);
    const [classic] = await deliveryTimes(false, 1);
    assert.ok(classic! > (lingerMs * 3) / 4, `without linger.adaptive: ${classic} ms`);
  });

  // native/librdkafka/0001-idempotent-wakeup-at-inflight-limit.patch. Unpatched, the broker
  // thread spins for as long as Kafka does not answer: measured 1,490 ms of CPU in a 1,500 ms
  // freeze, against 0 ms patched (twice each).
  test('the installed librdkafka is patched: an idempotent producer waiting on Kafka does not spin', async (t) => {
    const producer = new Producer(
      { 'bootstrap.servers': KAFKA_BROKERS, dr_cb: true, log_level: 0, 'enable.idempotence': true },
      { acks: -1 },
    );
    await connect(producer);
    producer.setPollInterval(10);
    let delivered = 0;
    let failed = 0;
    producer.on('delivery-report', (err) => (err ? failed++ : delivered++));
    const topic = uniqueName('seam-rdkafka-spin');
    await markTopic(topic);
    let sent = 0;
    // 1,000 msg/s: more than the 5 messages librdkafka lets an idempotent partition have in
    // flight pile up within the freeze, each past linger.ms.
    const load = setInterval(() => {
      for (let i = 0; i < 10; i++, sent++) producer.produce(topic, null, Buffer.alloc(100), null);
    }, 10);
    const freezeMs = 1_500;
    try {
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      const before = brokerThreadsCpuMs();
      freezeKafka();
      try {
        await new Promise((resolve) => setTimeout(resolve, freezeMs));
      } finally {
        thawKafka();
      }
      const spent = brokerThreadsCpuMs() - before;
      clearInterval(load);
      t.diagnostic(`broker threads: ${spent} ms CPU while Kafka was frozen for ${freezeMs} ms`);
      assert.ok(spent < freezeMs / 4, `broker threads spent ${spent} ms CPU in ${freezeMs} ms`);
      const deadline = Date.now() + 30_000;
      while (delivered + failed < sent && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(failed, 0);
      assert.equal(delivered, sent, 'every record confirmed after the thaw');
    } finally {
      clearInterval(load);
      thawKafka();
      producer.setPollInterval(0);
      await disconnect(producer);
    }
  });

  test('a local refusal at produce() is thrown with its numeric code', async () => {
    const producer = new Producer({
      'bootstrap.servers': KAFKA_BROKERS,
      log_level: 0,
      'message.max.bytes': 1_000,
    });
    await connect(producer);
    try {
      let thrown: unknown;
      try {
        producer.produce(uniqueName('seam-rdkafka-big'), null, Buffer.alloc(5_000), null);
      } catch (err) {
        thrown = err;
      }
      assert.ok(thrown, 'produce() threw');
      assert.equal(errorCodeOf(thrown as LibrdKafkaError), KAFKA_ERRORS.ERR_MSG_SIZE_TOO_LARGE);
    } finally {
      await disconnect(producer);
    }
  });
});
