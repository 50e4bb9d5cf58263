/**
 * The load generator, run in a worker thread so that consuming, progress output and /proc
 * sampling on the main thread never delay a publish (and so never skew its timestamps).
 * Shared by the benchmark and the MQTT-only ceiling: the ceiling is measured with the very same
 * publisher. Two clients, same behaviour and result: `raw` (default) and `mqttjs`.
 */
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import type {
  PublisherConfig,
  PublisherMessage,
  PublisherProgress,
  PublisherResult,
} from '../types';

export class Publisher {
  readonly progress: PublisherProgress = { sent: 0, acked: 0 };
  readonly done: Promise<PublisherResult>;
  private readonly worker: Worker;

  constructor(cfg: PublisherConfig) {
    this.worker = new Worker(path.join(__dirname, 'publisher-worker.js'), { workerData: cfg });
    this.done = new Promise<PublisherResult>((resolve, reject) => {
      let finished = false;
      this.worker.on('message', (m: PublisherMessage) => {
        if (m.type === 'progress') {
          this.progress.sent = m.sent;
          this.progress.acked = m.acked;
          return;
        }
        finished = true;
        this.progress.sent = m.sent;
        this.progress.acked = m.acked;
        const result: PublisherResult & { type?: string } = {
          ...m,
          publishTimes: new Float64Array(m.publishTimes),
        };
        delete result.type;
        resolve(result);
        // Nothing native runs in this thread: ending it at once is safe.
        void this.worker.terminate();
      });
      this.worker.on('error', reject);
      this.worker.on('exit', (code) => {
        if (!finished) reject(new Error(`publisher thread exited (${code}) before finishing`));
      });
    });
  }
}
