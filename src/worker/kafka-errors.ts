/**
 * The one place that decides whether a Kafka delivery failure is worth retrying. Everything
 * not listed as permanent is retried: a transient error wrongly treated as permanent would
 * turn an outage into data loss, the reverse only into a stall that the logs name.
 */
import { CODES } from 'node-rdkafka';
// The binding itself (node-rdkafka/librdkafka.js) exposes librdkafka's err2str.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { err2str } = require('node-rdkafka/librdkafka') as { err2str(code: number): string };

const E = CODES.ERRORS;

const PERMANENT = new Set<number>([
  E.ERR_MSG_SIZE_TOO_LARGE,
  E.ERR_RECORD_LIST_TOO_LARGE,
  E.ERR_INVALID_RECORD,
  E.ERR_TOPIC_AUTHORIZATION_FAILED,
  E.ERR_CLUSTER_AUTHORIZATION_FAILED,
  E.ERR_TOPIC_EXCEPTION,
  E.ERR_POLICY_VIOLATION,
  E.ERR__UNKNOWN_TOPIC,
  E.ERR__INVALID_ARG,
]);

export function isRetriableKafkaError(code: number): boolean {
  return !PERMANENT.has(code);
}

export const QUEUE_FULL = E.ERR__QUEUE_FULL;

/** Size refusals the broker applies to a whole record batch, not to one record. */
export function isBatchSizeError(code: number): boolean {
  return code === E.ERR_MSG_SIZE_TOO_LARGE || code === E.ERR_RECORD_LIST_TOO_LARGE;
}

/**
 * Delivery reports lose the error code: node-rdkafka passes only librdkafka's error string
 * ("Broker: Message size too large"), which its LibrdKafkaError splits into origin and a
 * lower-cased message with code -1. Every code's string is known (err2str), so map it back.
 */
let byText: Map<string, number> | undefined;

export function errorCodeOf(err: { code?: unknown; message?: string; origin?: string }): number {
  if (typeof err.code === 'number' && err.code !== E.ERR_UNKNOWN) return err.code;
  byText ??= new Map(
    Object.values(E).map((code) => [err2str(code).toLowerCase(), code] as [string, number]),
  );
  const text = `${err.origin ?? ''}: ${err.message ?? ''}`.toLowerCase();
  return byText.get(text) ?? byText.get((err.message ?? '').toLowerCase()) ?? E.ERR_UNKNOWN;
}

/** Readable name of a librdkafka error code, for logs and failure reports. */
export function kafkaErrorName(code: number): string {
  for (const [name, value] of Object.entries(E)) if (value === code) return name;
  return `ERR_${code}`;
}
