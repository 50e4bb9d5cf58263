/**
 * Benchmark payload: a fixed 24-byte header, then padding up to `--payload-size`.
 *
 *   u32 magic 'MKFB' | u32 run id | u32 sequence id | u16 topic index | u16 reserved |
 *   f64 publish time (epoch ms, sub-ms precision)
 *
 * Big-endian, so a hex dump of a record reads naturally. The run id lets a consumer ignore
 * records of earlier runs sharing the topic; the topic index lets it check order per MQTT topic
 * without parsing the record key.
 */
import type { DecodedPayload } from '../types';

export const PAYLOAD_MAGIC = 0x4d4b4642;
export const PAYLOAD_HEADER_BYTES = 24;

/** A reusable buffer whose padding is already filled; encodePayload copies it per message. */
export function payloadTemplate(size: number): Buffer {
  if (!Number.isInteger(size) || size < PAYLOAD_HEADER_BYTES) {
    throw new RangeError(`payload size must be an integer of at least ${PAYLOAD_HEADER_BYTES}`);
  }
  const t = Buffer.alloc(size, '.');
  t.writeUInt32BE(PAYLOAD_MAGIC, 0);
  return t;
}

export function encodePayload(
  template: Buffer,
  runId: number,
  seq: number,
  topicIndex: number,
  publishedAt: number,
): Buffer {
  // A fresh buffer per message: mqtt.js keeps a reference until the broker acknowledged it.
  const b = Buffer.allocUnsafe(template.length);
  writePayload(b, 0, template, runId, seq, topicIndex, publishedAt);
  return b;
}

/**
 * The same payload written in place, `template.length` bytes at `offset`: the raw publisher
 * builds it straight into the PUBLISH packet instead of allocating one buffer per message.
 */
export function writePayload(
  target: Buffer,
  offset: number,
  template: Buffer,
  runId: number,
  seq: number,
  topicIndex: number,
  publishedAt: number,
): void {
  template.copy(target, offset);
  target.writeUInt32BE(runId >>> 0, offset + 4);
  target.writeUInt32BE(seq >>> 0, offset + 8);
  target.writeUInt16BE(topicIndex, offset + 12);
  target.writeDoubleBE(publishedAt, offset + 16);
}

/** The header of a benchmark payload, or undefined for anything else (e.g. a topic marker). */
export function decodePayload(b: Buffer): DecodedPayload | undefined {
  if (b.length < PAYLOAD_HEADER_BYTES || b.readUInt32BE(0) !== PAYLOAD_MAGIC) return undefined;
  return {
    runId: b.readUInt32BE(4),
    seq: b.readUInt32BE(8),
    topicIndex: b.readUInt16BE(12),
    publishedAt: b.readDoubleBE(16),
  };
}

/**
 * The raw payload inside a `wrap_as_json` record (`{"topic":...,"payload":"<base64>"}`), or
 * undefined when the record is not such a wrapper. Parsed as JSON rather than sliced, so a
 * malformed wrapper counts as a foreign record instead of passing unnoticed.
 */
export function unwrapJson(value: Buffer): Buffer | undefined {
  try {
    const obj = JSON.parse(value.toString('utf8')) as unknown;
    if (typeof obj !== 'object' || obj === null) return undefined;
    const payload = (obj as { payload?: unknown }).payload;
    const topic = (obj as { topic?: unknown }).topic;
    if (typeof payload !== 'string' || typeof topic !== 'string') return undefined;
    return Buffer.from(payload, 'base64');
  } catch {
    return undefined;
  }
}

/** Epoch milliseconds with sub-millisecond precision, comparable across threads. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}
