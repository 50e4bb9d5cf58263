/**
 * Piscina worker: one Kafka producer per thread, created when the thread starts so that it
 * connects while the pool warms up rather than on the first batch.
 */
import { threadId } from 'node:worker_threads';
import { workerData } from 'piscina';
import { createLogger } from '../observability/logger';
import type { WorkerInit, WorkerResult, WorkerTask } from '../types';
import { KafkaProducerRunner } from './producer';

const init = workerData as WorkerInit;
const log = createLogger(init.logLevel, { thread: threadId });
const runner = new KafkaProducerRunner(init, log);

export default async function run(task: WorkerTask): Promise<WorkerResult> {
  switch (task.kind) {
    case 'batch':
      return runner.handleBatch(task.buffer);
    case 'shutdown': {
      const first = await runner.shutdown(task.flushTimeoutMs);
      return { kind: 'shutdown', threadId, first };
    }
  }
}
