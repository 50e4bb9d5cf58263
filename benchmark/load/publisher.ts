/**
 * The load generator, run in a worker thread so that consuming, progress output and /proc
 * sampling on the main thread never delay a publish (and so never skew its timestamps).
 * Shared by the benchmark and the MQTT-only ceiling: the ceiling is measured with the very same
 * publisher. Two clients, same behaviour and result: `raw` (default) and `mqttjs`.
 */
import path from 'node:path';
import { Worker } from 'node:worker_threads';

/**
 * `raw`: the lean client in raw-mqtt.ts (batched writes, no per-message allocation), so that the
 * load generator takes as little CPU as possible from the system under test on a shared machine.
 * `mqttjs`: mqtt.js, the client the forwarder itself uses.
 */
export type PublisherClient = 'raw' | 'mqttjs';
export const PUBLISHER_CLIENTS: readonly PublisherClient[] = ['raw', 'mqttjs'];

export interface PublisherConfig {
  /** Default 'raw'. */
  readonly client?: PublisherClient;
  readonly host: string;
  readonly port: number;
  readonly protocolVersion: 4 | 5;
  readonly qos: 0 | 1 | 2;
  readonly messages: number;
  /** Messages go round robin to `${topicPrefix}/0` … `${topicPrefix}/${topics - 1}`. */
  readonly topics: number;
  readonly topicPrefix: string;
  readonly payloadSize: number;
  /** Messages per second over all connections; 0 = as fast as the window allows. */
  readonly rate: number;
  /** Publishes not yet completed (QoS 1/2: acknowledged; QoS 0: written) per connection. */
  readonly window: number;
  /** Each topic always uses the same connection, so per-topic order is defined. */
  readonly connections: number;
  readonly runId: number;
  /** The whole publish phase ends after this, whatever is left unsent. */
  readonly timeoutMs: number;
}

export interface PublisherProgress {
  /** Handed to the MQTT client (timestamped and queued). */
  sent: number;
  /** Completed: acknowledged by the broker (QoS 1: PUBACK, QoS 2: PUBCOMP) or written (QoS 0). */
  acked: number;
}

export interface PublisherResult extends PublisherProgress {
  readonly timedOut: boolean;
  readonly error?: string;
  /** Epoch ms of the first publish and of the last completion. */
  readonly startedAt: number;
  readonly endedAt: number;
  /**
   * Fraction of the publish phase the publisher thread's event loop was busy (0..1). Counts time
   * the thread was runnable but waiting for a core, so on a crowded machine see cpuPct too.
   */
  readonly busy: number;
  /** CPU the publisher thread itself used, % of one core (from /proc/thread-self). */
  readonly cpuPct: number;
  /** Publish time (epoch ms) per sequence id; NaN for ids never sent. */
  readonly publishTimes: Float64Array;
}

export type PublisherMessage =
  | ({ readonly type: 'progress' } & PublisherProgress)
  | ({ readonly type: 'done'; readonly publishTimes: ArrayBuffer } & Omit<
      PublisherResult,
      'publishTimes'
    >);

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
