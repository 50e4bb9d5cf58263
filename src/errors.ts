/**
 * The forwarder's error model. Every failure it reports carries one of these codes, in the log
 * field `code` (a Kafka or MQTT library's own error name goes into its own field, `kafkaError`
 * or `reasonCode`), and docs/ERRORS.md documents each (a unit test keeps them in step).
 * Codes are part of the public surface: alerts and log queries match them. Never rename or
 * reuse one; add a new one.
 */
export const ERROR_CODES = {
  configFile: 'ERR_CONFIG_FILE',
  configInvalid: 'ERR_CONFIG_INVALID',
  configReloadRefused: 'ERR_CONFIG_RELOAD_REFUSED',
  configNeedsRestart: 'ERR_CONFIG_NEEDS_RESTART',
  kafkaConnect: 'ERR_KAFKA_CONNECT',
  kafkaAuth: 'ERR_KAFKA_AUTH',
  kafkaClient: 'ERR_KAFKA_CLIENT',
  kafkaUnreachable: 'ERR_KAFKA_UNREACHABLE',
  kafkaClientLost: 'ERR_KAFKA_CLIENT_LOST',
  kafkaRetry: 'ERR_KAFKA_RETRY',
  kafkaDuplicateReport: 'ERR_KAFKA_DUPLICATE_REPORT',
  kafkaDelivery: 'ERR_KAFKA_DELIVERY',
  mappingHalted: 'ERR_MAPPING_HALTED',
  mqttConnect: 'ERR_MQTT_CONNECT',
  mqttConnectionLost: 'ERR_MQTT_CONNECTION_LOST',
  mqttSubscribe: 'ERR_MQTT_SUBSCRIBE',
  mqttInternals: 'ERR_MQTT_INTERNALS',
  producerThread: 'ERR_PRODUCER_THREAD',
  dependencyDrift: 'ERR_DEPENDENCY_DRIFT',
  metrics: 'ERR_METRICS',
  startFailed: 'ERR_START_FAILED',
  shutdownTimeout: 'ERR_SHUTDOWN_TIMEOUT',
  shutdownFailed: 'ERR_SHUTDOWN_FAILED',
  shutdownForced: 'ERR_SHUTDOWN_FORCED',
  ingestProcessDied: 'ERR_INGEST_PROCESS_DIED',
  orphanSession: 'ERR_ORPHAN_SESSION',
} as const;

export type ErrorCode = (typeof ERROR_CODES)[keyof typeof ERROR_CODES];

/** A failure thrown (rather than only logged) carries its code on the error object. */
export class ForwarderError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** The config file could not be read (missing, unreadable) or is not valid YAML. */
export class ConfigFileError extends ForwarderError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ERROR_CODES.configFile, message, options);
  }
}

/** The config parsed but breaks one or more rules; `problems` holds one line per rule broken. */
export class ConfigInvalidError extends ForwarderError {
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super(ERROR_CODES.configInvalid, `invalid configuration:\n  ${problems.join('\n  ')}`);
    this.problems = problems;
  }
}

/** A dependency does not behave as a seam in src/seams/ relies on (version drift). */
export class DependencyDriftError extends ForwarderError {
  constructor(
    code: typeof ERROR_CODES.mqttInternals | typeof ERROR_CODES.dependencyDrift,
    message: string,
  ) {
    super(code, message);
  }
}
