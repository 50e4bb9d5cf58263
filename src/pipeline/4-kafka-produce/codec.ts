/**
 * Batch wire format: one ArrayBuffer per batch, transferred (not copied) to the worker.
 *
 *   u32 count, u16 topicCount, topicCount × { u16 nameLength, name }
 *   count × { u16 topic, u16 headerCount, u32 keyLength, u32 valueLength, key, value,
 *             headerCount × { u16 nameLength, u32 valueLength, name, value } }
 *
 * Little-endian. `topic` indexes the batch's own topic table, so a record's Kafka topic can be
 * any name (rendered from the MQTT topic, added by a reload) while the worker still decodes each
 * name once per batch, not once per record. Keys, values and header values are raw bytes; the
 * worker hands librdkafka views into the buffer, and librdkafka copies them on produce().
 */

export interface RecordHeader {
  readonly key: string;
  readonly value: Buffer;
}

export interface PackedRecord {
  readonly kafkaTopic: string;
  /** null: a record without a key (written as length NO_KEY). */
  readonly key: Uint8Array | null;
  readonly value: Uint8Array;
  readonly headers?: readonly RecordHeader[] | undefined;
}

const HEADER = 6;
/** Key length of a record without a key; a real key cannot be 4 GiB. */
const NO_KEY = 0xffffffff;
const TOPIC_HEADER = 2;
/** A batch names at most this many topics: its indices are u16. */
const MAX_TOPICS = 0xffff;
const RECORD_HEADER = 12;
const FIELD_HEADER = 6;

/** The batch's topic table: each distinct topic once, in first-use order. */
function topicTable(records: readonly PackedRecord[]): Map<string, number> {
  const table = new Map<string, number>();
  for (const r of records) {
    if (!table.has(r.kafkaTopic)) {
      if (table.size === MAX_TOPICS)
        throw new RangeError(`a batch may name at most ${MAX_TOPICS} Kafka topics`);
      table.set(r.kafkaTopic, table.size);
    }
  }
  return table;
}

function packedSize(records: readonly PackedRecord[], topics: Map<string, number>): number {
  let size = HEADER;
  for (const t of topics.keys()) size += TOPIC_HEADER + Buffer.byteLength(t);
  for (const r of records) {
    size += RECORD_HEADER + (r.key?.byteLength ?? 0) + r.value.byteLength;
    for (const h of r.headers ?? [])
      size += FIELD_HEADER + Buffer.byteLength(h.key) + h.value.byteLength;
  }
  return size;
}

export function packBatch(records: readonly PackedRecord[]): ArrayBuffer {
  const topics = topicTable(records);
  const buffer = new ArrayBuffer(packedSize(records, topics));
  const view = new DataView(buffer);
  const bytes = new Uint8Array(buffer);
  view.setUint32(0, records.length, true);
  view.setUint16(4, topics.size, true);
  let off = HEADER;
  for (const t of topics.keys()) {
    const written = Buffer.from(buffer, off + TOPIC_HEADER).write(t);
    view.setUint16(off, written, true);
    off += TOPIC_HEADER + written;
  }
  for (const r of records) {
    const headers = r.headers ?? [];
    view.setUint16(off, topics.get(r.kafkaTopic)!, true);
    view.setUint16(off + 2, headers.length, true);
    view.setUint32(off + 4, r.key === null ? NO_KEY : r.key.byteLength, true);
    view.setUint32(off + 8, r.value.byteLength, true);
    off += RECORD_HEADER;
    if (r.key !== null) {
      bytes.set(r.key, off);
      off += r.key.byteLength;
    }
    bytes.set(r.value, off);
    off += r.value.byteLength;
    for (const h of headers) {
      const name = Buffer.from(h.key);
      view.setUint16(off, name.byteLength, true);
      view.setUint32(off + 2, h.value.byteLength, true);
      off += FIELD_HEADER;
      bytes.set(name, off);
      off += name.byteLength;
      bytes.set(h.value, off);
      off += h.value.byteLength;
    }
  }
  return buffer;
}

/** node-rdkafka's header shape: one single-key object per header. */
export type KafkaHeaders = { [name: string]: Buffer }[];

/** Calls `visit` once per record, with Buffer views into `buffer` (no copies). */
export function forEachRecord(
  buffer: ArrayBuffer,
  visit: (
    index: number,
    topic: string,
    key: Buffer | null,
    value: Buffer,
    headers: KafkaHeaders | undefined,
  ) => void,
): number {
  const view = new DataView(buffer);
  const count = view.getUint32(0, true);
  const topics: string[] = new Array<string>(view.getUint16(4, true));
  let off = HEADER;
  for (let t = 0; t < topics.length; t++) {
    const length = view.getUint16(off, true);
    off += TOPIC_HEADER;
    topics[t] = Buffer.from(buffer, off, length).toString();
    off += length;
  }
  for (let i = 0; i < count; i++) {
    const topicIndex = view.getUint16(off, true);
    const topic = topics[topicIndex];
    if (topic === undefined) throw new RangeError(`no kafka topic at index ${topicIndex}`);
    const headerCount = view.getUint16(off + 2, true);
    const keyLength = view.getUint32(off + 4, true);
    const valueLength = view.getUint32(off + 8, true);
    off += RECORD_HEADER;
    let key: Buffer | null = null;
    if (keyLength !== NO_KEY) {
      key = Buffer.from(buffer, off, keyLength);
      off += keyLength;
    }
    const value = Buffer.from(buffer, off, valueLength);
    off += valueLength;
    let headers: KafkaHeaders | undefined;
    if (headerCount > 0) {
      headers = [];
      for (let h = 0; h < headerCount; h++) {
        const nameLength = view.getUint16(off, true);
        const valLength = view.getUint32(off + 2, true);
        off += FIELD_HEADER;
        const name = Buffer.from(buffer, off, nameLength).toString();
        off += nameLength;
        headers.push({ [name]: Buffer.from(buffer, off, valLength) });
        off += valLength;
      }
    }
    visit(i, topic, key, value, headers);
  }
  if (off !== buffer.byteLength) {
    throw new RangeError(`batch buffer has ${buffer.byteLength - off} trailing bytes`);
  }
  return count;
}
