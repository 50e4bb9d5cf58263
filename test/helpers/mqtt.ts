import mqtt from 'mqtt';
import type { MqttClient } from 'mqtt';
import { MQTT_HOST, MQTT_PORT } from './env';

export interface PublishOptions {
  readonly count: number;
  readonly qos: 0 | 1 | 2;
  /** Topic of message i. */
  readonly topic: (i: number) => string;
  /** Payload of message i. */
  readonly payload: (i: number) => Buffer | string;
  readonly protocolVersion?: 4 | 5;
  /** Publishes not yet acknowledged by the broker (QoS 1/2) at any time. */
  readonly maxInflight?: number;
  readonly timeoutMs?: number;
}

export function connectClient(opts: mqtt.IClientOptions = {}): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect({
      host: MQTT_HOST,
      port: MQTT_PORT,
      reconnectPeriod: 0,
      connectTimeout: 5_000,
      ...opts,
    });
    client.once('connect', () => resolve(client));
    client.once('error', reject);
  });
}

/**
 * Publishes `count` messages in order and resolves once the broker acknowledged all of them
 * (QoS 1/2) or all were written (QoS 0). Bounded in time.
 */
export async function publishMany(opts: PublishOptions): Promise<void> {
  const client = await connectClient({ protocolVersion: opts.protocolVersion ?? 5 });
  const maxInflight = opts.maxInflight ?? 500;
  const timeoutMs = opts.timeoutMs ?? 120_000;
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(
              `publishMany: timed out after ${timeoutMs} ms (sent ${next} of ${opts.count})`,
            ),
          ),
        timeoutMs,
      );
      let next = 0;
      let inflight = 0;
      let done = 0;
      const finish = (err?: Error): void => {
        clearTimeout(timer);
        if (err) reject(err);
        else resolve();
      };
      const pump = (): void => {
        while (inflight < maxInflight && next < opts.count) {
          const i = next++;
          inflight++;
          client.publish(opts.topic(i), opts.payload(i), { qos: opts.qos }, (err) => {
            if (err) return finish(err);
            inflight--;
            if (++done === opts.count) return finish();
            // Refill from a fresh tick so a long run never grows the stack.
            if (inflight === maxInflight - 1) setImmediate(pump);
          });
        }
      };
      if (opts.count === 0) finish();
      else pump();
    });
  } finally {
    await client.endAsync();
  }
}

/** Ends a persistent session (MQTT 5 clean start, session expiry 0) so the broker frees it. */
export async function dropSession(clientId: string): Promise<void> {
  try {
    const c = await connectClient({
      clientId,
      clean: true,
      protocolVersion: 5,
      properties: { sessionExpiryInterval: 0 },
    });
    await c.endAsync();
  } catch {
    // best effort: a leftover session only costs broker memory
  }
}

/** A numbered QoS 1 stream, paced so that it lasts a while; `handed` = ids given to mqtt.js. */
export interface Stream {
  handed(): number;
  readonly done: Promise<void>;
}

/**
 * Publishes ids 0..count-1 at about `rate` per second (at most 200 unacknowledged by the broker).
 * The pacing only stretches the stream so that reloads fall inside it; no result depends on it.
 */
export function stream(opts: {
  count: number;
  rate: number;
  topic: (i: number) => string;
  timeoutMs?: number;
}): Stream {
  let next = 0;
  const done = (async () => {
    const client = await connectClient({ protocolVersion: 5 });
    try {
      await new Promise<void>((resolve, reject) => {
        const timeoutMs = opts.timeoutMs ?? 120_000;
        const timer = setTimeout(
          () => reject(new Error(`stream: ${next} of ${opts.count} sent after ${timeoutMs} ms`)),
          timeoutMs,
        );
        const t0 = performance.now();
        let inflight = 0;
        let acked = 0;
        let waiting = false;
        const pump = (): void => {
          const due = Math.min(
            opts.count,
            Math.floor(((performance.now() - t0) * opts.rate) / 1000) + 1,
          );
          while (next < due && inflight < 200) {
            const i = next++;
            inflight++;
            client.publish(opts.topic(i), String(i), { qos: 1 }, (err) => {
              inflight--;
              if (err) {
                clearTimeout(timer);
                reject(err);
              } else if (++acked === opts.count) {
                clearTimeout(timer);
                resolve();
              }
            });
          }
          if (next < opts.count && !waiting) {
            waiting = true;
            setTimeout(() => {
              waiting = false;
              pump();
            }, 5);
          }
        };
        pump();
      });
    } finally {
      await client.endAsync();
    }
  })();
  return { handed: () => next, done };
}
