// Runs in a worker_threads Worker (see test/integration/harness.test.ts): produces one message
// with node-rdkafka and reports each step to the parent. It proves the Kafka binding works
// off the main thread, which is where the forwarder's producers live.
//
// The last message is always 'done', sent only after producer.disconnect() has completed (or
// after connecting failed): terminating a thread while a native producer call is still running
// segfaults the process (measured with this binding), so the parent waits for 'done' first.
import { parentPort, workerData } from 'node:worker_threads';
import { Producer } from 'node-rdkafka';

export interface ProduceJob {
  brokers: string;
  topic: string;
  key: string;
  value: string;
}

export type ProduceWorkerMessage =
  | { type: 'delivered'; topic: string; partition: number; offset: number }
  | { type: 'error'; step: 'connect' | 'produce' | 'delivery' | 'disconnect'; message: string }
  | { type: 'done' };

const job = workerData as ProduceJob;
const post = (msg: ProduceWorkerMessage): void => parentPort?.postMessage(msg);

const producer = new Producer(
  {
    'metadata.broker.list': job.brokers,
    'client.id': 'harness-produce-worker',
    dr_cb: true,
    // Bounded, so that a missing broker ends in an error report instead of a hang.
    'socket.connection.setup.timeout.ms': 5000,
  },
  // Topic-level settings belong in the second argument (ignored in the first).
  { acks: -1 /* all */, 'message.timeout.ms': 15000 },
);
producer.setPollInterval(20);

function disconnectThenDone(): void {
  try {
    producer.disconnect(5000, (err: unknown) => {
      if (err) post({ type: 'error', step: 'disconnect', message: String(err) });
      post({ type: 'done' });
    });
  } catch (err) {
    // "Producer not connected" after a failed connect: nothing native is pending any more.
    post({ type: 'error', step: 'disconnect', message: String(err) });
    post({ type: 'done' });
  }
}

producer.on('delivery-report', (err, report) => {
  if (err) {
    post({ type: 'error', step: 'delivery', message: String(err) });
  } else {
    post({
      type: 'delivered',
      topic: report.topic,
      partition: report.partition,
      offset: report.offset,
    });
  }
  disconnectThenDone();
});

producer.connect({ timeout: 10000 }, (err) => {
  if (err) {
    post({ type: 'error', step: 'connect', message: String(err) });
    disconnectThenDone();
    return;
  }
  try {
    producer.produce(job.topic, null, Buffer.from(job.value), Buffer.from(job.key));
  } catch (e) {
    post({ type: 'error', step: 'produce', message: String(e) });
    disconnectThenDone();
  }
});
