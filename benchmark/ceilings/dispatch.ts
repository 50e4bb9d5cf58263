/**
 * Dispatch cost: Piscina round trip per batch size, one batch packed into one transferred
 * ArrayBuffer (what the engine does) against an array of records structured-cloned.
 *
 * Two clone variants, because what a clone copies depends on where the bytes live: mqtt.js hands
 * out payloads as views into the socket's read buffer, and cloning a view copies its whole
 * backing ArrayBuffer; `clone-copies` first copies each record into its own exact-size array,
 * which is the best a clone-based design could do.
 */
import path from 'node:path';
import { Piscina } from 'piscina';
import { packBatch } from '../engine';
import type { PackedRecord } from '../engine';
import { encodePayload, payloadTemplate } from '../load/payload';
import type { DispatchMode, DispatchResult, DispatchTask } from '../types';

type KeyedRecord = PackedRecord & { readonly key: Uint8Array };

/** Socket reads as mqtt.js sees them: records are views into 64 KB chunks. */
function recordsInChunks(n: number, payloadSize: number): KeyedRecord[] {
  const template = payloadTemplate(payloadSize);
  const out: KeyedRecord[] = [];
  let chunk = Buffer.alloc(0);
  let off = 0;
  for (let i = 0; i < n; i++) {
    const key = Buffer.from(`bench/${i % 8}`);
    const need = key.length + payloadSize;
    if (off + need > chunk.length) {
      chunk = Buffer.alloc(64 * 1024);
      off = 0;
    }
    key.copy(chunk, off);
    const k = chunk.subarray(off, off + key.length);
    off += key.length;
    encodePayload(template, 0, i, 0, 0).copy(chunk, off);
    const v = chunk.subarray(off, off + payloadSize);
    off += payloadSize;
    out.push({ kafkaTopic: 'bench', key: k, value: v });
  }
  return out;
}

export async function dispatchBench(opts: {
  readonly batchSizes: readonly number[];
  readonly modes: readonly DispatchMode[];
  readonly payloadSize: number;
  /** Records per (mode, batch size) case; at least 50 batches are sent either way. */
  readonly recordsPerCase: number;
  readonly inflight: number;
  readonly timeoutMs: number;
}): Promise<DispatchResult[]> {
  // The engine's pool settings (WorkerLanes), one worker.
  const pool = new Piscina({
    filename: path.join(__dirname, 'dispatch-worker.js'),
    minThreads: 1,
    maxThreads: 1,
    idleTimeout: Infinity,
    concurrentTasksPerWorker: opts.inflight,
    atomics: 'disabled',
  });
  const results: DispatchResult[] = [];
  try {
    for (const batchSize of opts.batchSizes) {
      const batches = Math.max(50, Math.ceil(opts.recordsPerCase / batchSize));
      const source = recordsInChunks(batchSize, opts.payloadSize);
      for (const mode of opts.modes) {
        const task = (): { task: DispatchTask; transfer: ArrayBuffer[] } => {
          if (mode === 'transfer') {
            const buffer = packBatch(source);
            return { task: { kind: 'packed', buffer }, transfer: [buffer] };
          }
          const records =
            mode === 'clone-views'
              ? source.map((r) => ({ key: r.key, value: r.value }))
              : source.map((r) => ({ key: new Uint8Array(r.key), value: new Uint8Array(r.value) }));
          return { task: { kind: 'records', records }, transfer: [] };
        };
        // Warm-up: JIT and the worker's first task are not what is measured.
        for (let i = 0; i < 5; i++) {
          const t = task();
          await pool.run(t.task, { transferList: t.transfer });
        }
        const elu0 = performance.eventLoopUtilization();
        const t0 = performance.now();
        let sent = 0;
        let done = 0;
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(
            () => reject(new Error(`dispatch ${mode} timed out`)),
            opts.timeoutMs,
          );
          const pump = (): void => {
            while (sent - done < opts.inflight && sent < batches) {
              sent++;
              const t = task();
              pool.run(t.task, { transferList: t.transfer }).then(() => {
                if (++done === batches) {
                  clearTimeout(timer);
                  resolve();
                } else pump();
              }, reject);
            }
          };
          pump();
        });
        const us = (performance.now() - t0) * 1000;
        results.push({
          mode,
          batchSize,
          batches,
          records: batches * batchSize,
          usPerBatch: us / batches,
          usPerRecord: us / (batches * batchSize),
          recordsPerS: (batches * batchSize) / (us / 1e6),
          mainBusy: performance.eventLoopUtilization(elu0).utilization,
        });
      }
    }
  } finally {
    await pool.destroy();
  }
  return results;
}
