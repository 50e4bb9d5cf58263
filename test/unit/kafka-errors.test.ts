/**
 * The one retriable/permanent classification of Kafka errors
 * (src/pipeline/4-kafka-produce/kafka-errors.ts) as a table, and the recovery of a code from
 * the text a delivery report carries. A transient code classified permanent turns an outage into
 * data loss (skip) or a needless stop, so the permanent set is pinned in both directions: the
 * codes listed here and no other. What the real binding hands over is checked against Kafka in
 * test/integration/seam-rdkafka.test.ts; this is the pure logic.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  QUEUE_FULL,
  errorCodeOf,
  isAuthenticationError,
  isBatchSizeError,
  isRetriableKafkaError,
  isTlsError,
} from '../../src/pipeline/4-kafka-produce/kafka-errors';
import { KAFKA_ERRORS } from '../../src/seams/rdkafka';

type Name = keyof typeof KAFKA_ERRORS;

const PERMANENT: readonly Name[] = [
  'ERR_MSG_SIZE_TOO_LARGE',
  'ERR_RECORD_LIST_TOO_LARGE',
  'ERR_INVALID_RECORD',
  'ERR_TOPIC_AUTHORIZATION_FAILED',
  'ERR_CLUSTER_AUTHORIZATION_FAILED',
  'ERR_TOPIC_EXCEPTION',
  'ERR_POLICY_VIOLATION',
  'ERR__UNKNOWN_TOPIC',
  'ERR__INVALID_ARG',
];

/** Outages and broker moves: a refusal of these must never reach the on_error policy. */
const TRANSIENT: readonly Name[] = [
  'ERR__TRANSPORT',
  'ERR__MSG_TIMED_OUT',
  'ERR__ALL_BROKERS_DOWN',
  'ERR__TIMED_OUT',
  'ERR__QUEUE_FULL',
  'ERR__RESOLVE',
  'ERR_NOT_LEADER_FOR_PARTITION',
  'ERR_LEADER_NOT_AVAILABLE',
  'ERR_REQUEST_TIMED_OUT',
  'ERR_NOT_ENOUGH_REPLICAS',
  'ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND',
  'ERR_NETWORK_EXCEPTION',
  'ERR_UNKNOWN',
];

const AUTHENTICATION: readonly Name[] = [
  'ERR__AUTHENTICATION',
  'ERR_SASL_AUTHENTICATION_FAILED',
  'ERR_UNSUPPORTED_SASL_MECHANISM',
  'ERR_ILLEGAL_SASL_STATE',
  'ERR__SSL',
];

const codes = (names: readonly Name[]): Set<number> => new Set(names.map((n) => KAFKA_ERRORS[n]));
const ALL = Object.entries(KAFKA_ERRORS) as [Name, number][];

/**
 * What a delivery report's error looks like: node-rdkafka's LibrdKafkaError (lib/error.js) built
 * from a plain Error carrying librdkafka's text only. It splits the text at ': ' into `origin`
 * and `message`, both lower-cased, and sets code -1 (ERR_UNKNOWN).
 */
function deliveryError(text: string): { code: number; origin: string; message: string } {
  const parts = text.split(': ');
  return parts.length > 1
    ? { code: -1, origin: parts[0]!.toLowerCase(), message: parts[1]!.toLowerCase() }
    : { code: -1, origin: 'unknown', message: text.toLowerCase() };
}

/** librdkafka's own text of `code` (err2str), as the binding hands it over. */
function err2str(code: number): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const binding = require('node-rdkafka/librdkafka') as { err2str(code: number): string };
  return binding.err2str(code);
}

describe('isRetriableKafkaError', () => {
  test('the permanent codes, and only they, are not retried', () => {
    const permanent = codes(PERMANENT);
    for (const [name, code] of ALL)
      assert.equal(isRetriableKafkaError(code), !permanent.has(code), name);
  });

  test('outages, leader moves, timeouts and a full queue are retried', () => {
    for (const name of TRANSIENT)
      assert.equal(isRetriableKafkaError(KAFKA_ERRORS[name]), true, name);
    assert.equal(QUEUE_FULL, KAFKA_ERRORS.ERR__QUEUE_FULL);
  });

  test('a code the binding does not know is retried', () => {
    for (const code of [123456, -123456, 0.5]) assert.equal(isRetriableKafkaError(code), true);
  });
});

describe('the other classifications', () => {
  test('isBatchSizeError: the two size refusals the broker applies to a whole record batch', () => {
    const size = codes(['ERR_MSG_SIZE_TOO_LARGE', 'ERR_RECORD_LIST_TOO_LARGE']);
    for (const [name, code] of ALL) assert.equal(isBatchSizeError(code), size.has(code), name);
  });

  test('isAuthenticationError: SASL and TLS failures; isTlsError: TLS only', () => {
    const auth = codes(AUTHENTICATION);
    for (const [name, code] of ALL) {
      assert.equal(isAuthenticationError(code), auth.has(code), name);
      assert.equal(isTlsError(code), code === KAFKA_ERRORS.ERR__SSL, name);
    }
  });
});

describe('errorCodeOf', () => {
  test('the delivery-error shape above is the one node-rdkafka builds', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const LibrdKafkaError = require('node-rdkafka/lib/error') as new (e: Error) => object;
    const text = err2str(KAFKA_ERRORS.ERR_MSG_SIZE_TOO_LARGE);
    const built = new LibrdKafkaError(new Error(text)) as Record<string, unknown>;
    assert.deepEqual(
      { code: built['code'], origin: built['origin'], message: built['message'] },
      deliveryError(text),
    );
  });

  test('recovers the code from the text of a delivery report', () => {
    const table: [Name, string][] = [
      ['ERR_MSG_SIZE_TOO_LARGE', 'Broker: Message size too large'],
      ['ERR_TOPIC_AUTHORIZATION_FAILED', 'Broker: Topic authorization failed'],
      ['ERR__UNKNOWN_TOPIC', 'Local: Unknown topic'],
      ['ERR__MSG_TIMED_OUT', 'Local: Message timed out'],
      ['ERR__TRANSPORT', 'Local: Broker transport failure'],
      ['ERR_NOT_LEADER_FOR_PARTITION', 'Broker: Not leader for partition'],
    ];
    for (const [name, text] of table) {
      assert.equal(err2str(KAFKA_ERRORS[name]), text, `librdkafka's text of ${name}`);
      assert.equal(errorCodeOf(deliveryError(text)), KAFKA_ERRORS[name], name);
    }
  });

  test('recovers every code librdkafka names from its own text', () => {
    for (const [name, code] of ALL)
      assert.equal(errorCodeOf(deliveryError(err2str(code))), code, name);
  });

  test('a number other than ERR_UNKNOWN is taken as the code, whatever the text', () => {
    assert.equal(errorCodeOf({ code: 10, message: 'anything' }), 10);
    assert.equal(errorCodeOf({ code: KAFKA_ERRORS.ERR__TRANSPORT }), KAFKA_ERRORS.ERR__TRANSPORT);
  });

  test('a plain Error with the whole text, no origin, is recovered too', () => {
    const err = new Error('Broker: Message size too large');
    assert.equal(errorCodeOf(err), KAFKA_ERRORS.ERR_MSG_SIZE_TOO_LARGE);
  });

  test('text that is no librdkafka error stays ERR_UNKNOWN: retriable', () => {
    for (const err of [deliveryError('Broker: Something new'), {}, { code: 'EPIPE' }]) {
      assert.equal(errorCodeOf(err), KAFKA_ERRORS.ERR_UNKNOWN, JSON.stringify(err));
      assert.equal(isRetriableKafkaError(errorCodeOf(err)), true);
    }
  });
});
