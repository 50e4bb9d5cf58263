/**
 * Piscina worker for the dispatch round-trip bench: touches every record (as the producer
 * worker would before produce()) and answers with the count, so only the crossing is measured.
 * The facade loads more of the engine than the codec (about 0.1 s at the thread's start): that
 * is over before the warm-up batches end, and no measured batch pays for it.
 */
import { forEachRecord } from '../engine';
import type { DispatchTask } from '../types';

export default function run(task: DispatchTask): number {
  if (task.kind === 'packed') {
    let bytes = 0;
    forEachRecord(task.buffer, (_i, _t, key, value) => {
      bytes += (key?.length ?? 0) + value.length;
    });
    return bytes;
  }
  let bytes = 0;
  for (const r of task.records) bytes += r.key.byteLength + r.value.byteLength;
  return bytes;
}
