/**
 * The one place that decides whether a Kafka delivery failure is worth retrying. Everything
 * not listed as permanent is retried: a transient error wrongly treated as permanent would
 * turn an outage into data loss, the reverse only into a stall that the logs name.
 */
import { CODES } from 'node-rdkafka';

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

/** Readable name of a librdkafka error code, for logs and failure reports. */
export function kafkaErrorName(code: number): string {
  for (const [name, value] of Object.entries(E)) if (value === code) return name;
  return `ERR_${code}`;
}
