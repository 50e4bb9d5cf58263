/**
 * Piscina worker for the dispatch round-trip bench: touches every record (as the producer
 * worker would before produce()) and answers with the count, so only the crossing is measured.
 */
import { forEachRecord } from '../../src/worker/codec';
import type { DispatchTask } from '../types';

export default function run(task: DispatchTask): number {
  if (task.kind === 'packed') {
    let bytes = 0;
    forEachRecord(task.buffer, (_i, _t, key, value) => {
      bytes += key.length + value.length;
    });
    return bytes;
  }
  let bytes = 0;
  for (const r of task.records) bytes += r.key.byteLength + r.value.byteLength;
  return bytes;
}
