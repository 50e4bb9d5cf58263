/**
 * Batch wire format: one ArrayBuffer per batch, transferred (not copied) to the worker.
 *
 *   u32 count
 *   count × { u16 topicIndex, u32 keyLength, u32 valueLength, key bytes, value bytes }
 *
 * Little-endian. Keys and values are raw bytes; the worker hands librdkafka views into the
 * buffer, and librdkafka copies them into its own queue on produce().
 */

export interface PackedRecord {
  readonly topicIndex: number;
  readonly key: Uint8Array;
  readonly value: Uint8Array;
}

const HEADER = 4;
const RECORD_HEADER = 10;

export function packedSize(records: readonly PackedRecord[]): number {
  let size = HEADER;
  for (const r of records) size += RECORD_HEADER + r.key.byteLength + r.value.byteLength;
  return size;
}

export function packBatch(records: readonly PackedRecord[]): ArrayBuffer {
  const buffer = new ArrayBuffer(packedSize(records));
  const view = new DataView(buffer);
  const bytes = new Uint8Array(buffer);
  view.setUint32(0, records.length, true);
  let off = HEADER;
  for (const r of records) {
    view.setUint16(off, r.topicIndex, true);
    view.setUint32(off + 2, r.key.byteLength, true);
    view.setUint32(off + 6, r.value.byteLength, true);
    off += RECORD_HEADER;
    bytes.set(r.key, off);
    off += r.key.byteLength;
    bytes.set(r.value, off);
    off += r.value.byteLength;
  }
  return buffer;
}

/** Calls `visit` once per record, with Buffer views into `buffer` (no copies). */
export function forEachRecord(
  buffer: ArrayBuffer,
  visit: (index: number, topicIndex: number, key: Buffer, value: Buffer) => void,
): number {
  const view = new DataView(buffer);
  const count = view.getUint32(0, true);
  let off = HEADER;
  for (let i = 0; i < count; i++) {
    const topicIndex = view.getUint16(off, true);
    const keyLength = view.getUint32(off + 2, true);
    const valueLength = view.getUint32(off + 6, true);
    off += RECORD_HEADER;
    const key = Buffer.from(buffer, off, keyLength);
    off += keyLength;
    const value = Buffer.from(buffer, off, valueLength);
    off += valueLength;
    visit(i, topicIndex, key, value);
  }
  if (off !== buffer.byteLength) {
    throw new RangeError(`batch buffer has ${buffer.byteLength - off} trailing bytes`);
  }
  return count;
}
