/**
 * Piscina worker: one Kafka producer per thread, created when the thread starts so that it
 * connects while the pool warms up rather than on the first batch.
 */
import { BroadcastChannel, threadId } from 'node:worker_threads';
import { workerData } from 'piscina';
import { createLogger } from '../../observability/logger';
import { PRODUCER_STATUS_CHANNEL } from './protocol';
import type { ProducerStatus, WorkerInit, WorkerResult, WorkerTask } from './protocol';
import { KafkaProducerRunner } from './kafka-producer';

const init = workerData as WorkerInit;
const log = createLogger(init.logLevel, { thread: threadId });
const status = new BroadcastChannel(PRODUCER_STATUS_CHANNEL);
const runner = new KafkaProducerRunner(init, log, (ready) => {
  const msg: ProducerStatus = { threadId, ready };
  status.postMessage(msg);
});

export default async function run(task: WorkerTask): Promise<WorkerResult> {
  switch (task.kind) {
    case 'batch':
      return runner.handleBatch(task.buffer);
    case 'whoami':
      return { kind: 'whoami', threadId };
    case 'shutdown': {
      const outcome = await runner.shutdown(task.flushTimeoutMs);
      status.close();
      return { kind: 'shutdown', threadId, outcome };
    }
  }
}
