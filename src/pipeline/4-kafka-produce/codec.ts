/**
 * Batch wire format: one ArrayBuffer per batch, transferred (not copied) to the worker.
 *
 *   u32 count, u16 nameCount, nameCount × { u16 length, name }
 *   count × { u16 topic, u16 headerCount, u32 keyLength, u32 valueLength, key, value,
 *             headerCount × { u16 name, u32 valueLength, value } }
 *
 * Little-endian. `topic` and a header's `name` index the batch's own name table, so a record's
 * Kafka topic can be any name (rendered from the MQTT topic, added by a reload) while the worker
 * decodes each topic and header name once per batch, not once per record (per record, header
 * names cost more than the rest of the record). Keys and values are raw bytes: the worker hands
 * librdkafka views into the buffer, and librdkafka copies them on produce(). Header values are
 * UTF-8 text and reach the binding as strings: node-rdkafka converts every header value with
 * String() (a Buffer would be decoded, and broken if not UTF-8, by a call back into JS per
 * header), so binary data must be encoded before it becomes a header (2-route/headers.ts).
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
const NAME_HEADER = 2;
/** A batch holds at most this many distinct topic and header names: its indices are u16. */
const MAX_NAMES = 0xffff;
const RECORD_HEADER = 12;
const FIELD_HEADER = 6;

/** Each distinct topic and header name once, in first-use order, with its UTF-8 length. */
class NameTable {
  readonly index = new Map<string, number>();
  bytes = 0;

  add(name: string): void {
    if (this.index.has(name)) return;
    if (this.index.size === MAX_NAMES)
      throw new RangeError(`a batch may hold at most ${MAX_NAMES} distinct topic and header names`);
    this.index.set(name, this.index.size);
    this.bytes += NAME_HEADER + Buffer.byteLength(name);
  }
}

export function packBatch(records: readonly PackedRecord[]): ArrayBuffer {
  const names = new NameTable();
  let size = HEADER;
  for (const r of records) {
    names.add(r.kafkaTopic);
    size += RECORD_HEADER + (r.key?.byteLength ?? 0) + r.value.byteLength;
    const headers = r.headers;
    if (headers !== undefined) {
      for (const h of headers) {
        names.add(h.key);
        size += FIELD_HEADER + h.value.byteLength;
      }
    }
  }
  const buffer = new ArrayBuffer(size + names.bytes);
  const view = new DataView(buffer);
  const bytes = new Uint8Array(buffer);
  view.setUint32(0, records.length, true);
  view.setUint16(4, names.index.size, true);
  let off = HEADER;
  for (const name of names.index.keys()) {
    const written = Buffer.from(buffer, off + NAME_HEADER).write(name);
    view.setUint16(off, written, true);
    off += NAME_HEADER + written;
  }
  const index = names.index;
  for (const r of records) {
    const headers = r.headers;
    view.setUint16(off, index.get(r.kafkaTopic)!, true);
    view.setUint16(off + 2, headers?.length ?? 0, true);
    view.setUint32(off + 4, r.key === null ? NO_KEY : r.key.byteLength, true);
    view.setUint32(off + 8, r.value.byteLength, true);
    off += RECORD_HEADER;
    if (r.key !== null) {
      bytes.set(r.key, off);
      off += r.key.byteLength;
    }
    bytes.set(r.value, off);
    off += r.value.byteLength;
    if (headers !== undefined) {
      for (const h of headers) {
        view.setUint16(off, index.get(h.key)!, true);
        view.setUint32(off + 2, h.value.byteLength, true);
        off += FIELD_HEADER;
        bytes.set(h.value, off);
        off += h.value.byteLength;
      }
    }
  }
  return buffer;
}

/** node-rdkafka's header shape: one single-key object per header. */
export type KafkaHeaders = { [name: string]: string }[];

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
  const whole = Buffer.from(buffer);
  const count = view.getUint32(0, true);
  const names: string[] = new Array<string>(view.getUint16(4, true));
  let off = HEADER;
  for (let n = 0; n < names.length; n++) {
    const length = view.getUint16(off, true);
    off += NAME_HEADER;
    names[n] = Buffer.from(buffer, off, length).toString();
    off += length;
  }
  const nameAt = (i: number): string => {
    const name = names[i];
    if (name === undefined) throw new RangeError(`no name at index ${i} in the batch`);
    return name;
  };
  for (let i = 0; i < count; i++) {
    const topic = nameAt(view.getUint16(off, true));
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
        const name = nameAt(view.getUint16(off, true));
        const valLength = view.getUint32(off + 2, true);
        off += FIELD_HEADER;
        headers.push({ [name]: whole.toString('utf8', off, off + valLength) });
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
