/**
 * Seam: what the forwarder relies on in the Kafka binding (node-rdkafka as published by
 * @platformatic/rdkafka) beyond its typed API. Pinned to PINNED_RDKAFKA_VERSION;
 * test/unit/seam-rdkafka.test.ts checks the installed version and each behaviour below.
 *
 * - Delivery reports lose librdkafka's error code: the binding passes only librdkafka's error
 *   string ("Broker: Message size too large"), which its LibrdKafkaError splits into `origin`
 *   and a lower-cased `message`, with code -1 (ERR_UNKNOWN). The code is recovered by matching
 *   that text against librdkafka's own err2str() of every code.
 * - err2str is reachable only through the binding's internal module `node-rdkafka/librdkafka`.
 * - CODES.ERRORS names every librdkafka error code.
 * - The bundled librdkafka carries native/librdkafka's patches (applied at install, before
 *   node-rdkafka compiles it): an idempotent producer whose partition is at its in-flight limit
 *   no longer polls its socket with a zero timeout until Kafka answers; and it knows the
 *   producer property `linger.adaptive` (config/kafka.ts sets it).
 * - The binding carries native/node-rdkafka's patches: with `dr_compact: true` produce() takes an
 *   integer opaque and the producer emits 'delivery-reports' (ids, codes) once per event-loop
 *   turn instead of one object per record (a fraction of the CPU per record, and exact codes);
 *   with `dr_wakeup: true` a connected producer serves its reports when librdkafka queues them,
 *   so no poll timer stands between Kafka's answer and the record's settlement.
 */
import { CODES, Producer } from 'node-rdkafka';
import { DependencyDriftError, ERROR_CODES } from '../errors';

export const PINNED_RDKAFKA_VERSION = '4.1.2';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const binding = require('node-rdkafka/librdkafka') as {
  err2str(code: number): string;
  librdkafkaVersion: string;
};

/** librdkafka's error codes by name (negative: client-side, positive: broker). */
export const KAFKA_ERRORS = CODES.ERRORS;

/** The librdkafka version the binding was built with. */
export const LIBRDKAFKA_VERSION: string = binding.librdkafkaVersion;

let byText: Map<string, number> | undefined;

/** The librdkafka code of an error the binding handed over, by code or, failing that, by text. */
export function errorCodeOf(err: { code?: unknown; message?: string; origin?: string }): number {
  if (typeof err.code === 'number' && err.code !== KAFKA_ERRORS.ERR_UNKNOWN) return err.code;
  byText ??= new Map(
    Object.values(KAFKA_ERRORS).map(
      (code) => [binding.err2str(code).toLowerCase(), code] as [string, number],
    ),
  );
  const text = `${err.origin ?? ''}: ${err.message ?? ''}`.toLowerCase();
  return (
    byText.get(text) ?? byText.get((err.message ?? '').toLowerCase()) ?? KAFKA_ERRORS.ERR_UNKNOWN
  );
}

let byCode: Map<number, string> | undefined;

/** Readable name of a librdkafka error code, for logs and failure reports. */
export function kafkaErrorName(code: number): string {
  if (byCode === undefined) {
    byCode = new Map();
    // Some codes have two names (aliases); the first listed is librdkafka's own.
    for (const [name, value] of Object.entries(KAFKA_ERRORS))
      if (!byCode.has(value)) byCode.set(value, name);
  }
  return byCode.get(code) ?? `ERR_${code}`;
}

/** The largest opaque a compact delivery report carries (produce() takes 1 to this). */
export const MAX_REPORT_ID = 0xffff_ffff;

/**
 * One 'delivery-reports' event: the opaques given to produce() and librdkafka's error code for
 * each (0: delivered), index for index.
 */
export type CompactReportsListener = (ids: Uint32Array, codes: Int32Array) => void;

/**
 * Producer config for compact delivery reports, served when librdkafka queues them; throws if
 * the binding lacks either patch.
 */
export function deliveryReportsConfig(): { dr_compact: true; dr_wakeup: true } {
  const patched = Producer as unknown as {
    COMPACT_DELIVERY_REPORTS?: boolean;
    REPORT_WAKEUP?: boolean;
  };
  if (patched.COMPACT_DELIVERY_REPORTS !== true || patched.REPORT_WAKEUP !== true) {
    throw new DependencyDriftError(
      ERROR_CODES.dependencyDrift,
      "node-rdkafka lacks compact delivery reports or their wakeup (native/node-rdkafka's patches): install with native/install or npm ci",
    );
  }
  return { dr_compact: true, dr_wakeup: true };
}

/** Subscribes to a compact-report producer's reports (the binding's typings do not know them). */
export function onCompactReports(producer: Producer, listener: CompactReportsListener): void {
  (producer as unknown as NodeJS.EventEmitter).on('delivery-reports', listener);
}

/** librdkafka's own description of an error code. */
export function kafkaErrorText(code: number): string {
  return binding.err2str(code);
}
