/**
 * The one place that decides whether a Kafka delivery failure is worth retrying. Everything
 * not listed as permanent is retried: a transient error wrongly treated as permanent would
 * turn an outage into data loss, the reverse only into a stall that the logs name.
 */
import { KAFKA_ERRORS as E } from '../../seams/rdkafka';

export { errorCodeOf, kafkaErrorName } from '../../seams/rdkafka';

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
 * Client errors meaning the broker does not accept who we are (SASL credentials, mechanism) or
 * the TLS handshake failed (CA, client certificate): retrying cannot fix them.
 */
const AUTHENTICATION: ReadonlySet<number> = new Set([
  E.ERR__AUTHENTICATION,
  E.ERR_SASL_AUTHENTICATION_FAILED,
  E.ERR_UNSUPPORTED_SASL_MECHANISM,
  E.ERR_ILLEGAL_SASL_STATE,
  E.ERR__SSL,
]);

export function isAuthenticationError(code: number): boolean {
  return AUTHENTICATION.has(code);
}

/** The TLS handshake failed (CA, client certificate), as opposed to SASL. */
export function isTlsError(code: number): boolean {
  return code === E.ERR__SSL;
}
