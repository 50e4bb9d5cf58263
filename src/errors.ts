/**
 * Every failure the forwarder reports on purpose is a ForwarderError with a stable `code`.
 * Codes are part of the public surface (docs/ERRORS.md, logs, exit paths): never rename one,
 * add a new class instead.
 */
export class ForwarderError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** The config file could not be read (missing, unreadable) or is not valid YAML. */
export class ConfigFileError extends ForwarderError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_CONFIG_FILE', message, options);
  }
}

/** The config parsed but breaks one or more rules; `problems` holds one line per rule broken. */
export class ConfigInvalidError extends ForwarderError {
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super('ERR_CONFIG_INVALID', `invalid configuration:\n  ${problems.join('\n  ')}`);
    this.problems = problems;
  }
}

/** A worker's Kafka producer could not be created or connected. */
export class KafkaConnectError extends ForwarderError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_KAFKA_CONNECT', message, options);
  }
}

/** Kafka refused a record for a reason retrying will not fix (size, authorisation, ...). */
export class KafkaDeliveryError extends ForwarderError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_KAFKA_DELIVERY', message, options);
  }
}

/** The MQTT broker refused the connection or a subscription. */
export class MqttConnectError extends ForwarderError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_MQTT_CONNECT', message, options);
  }
}

/** mqtt.js does not behave as the ack gate relies on (version drift of its internals). */
export class MqttInternalsError extends ForwarderError {
  constructor(message: string) {
    super('ERR_MQTT_INTERNALS', message);
  }
}

/** Shutdown did not complete inside its configured bound. */
export class ShutdownTimeoutError extends ForwarderError {
  constructor(message: string) {
    super('ERR_SHUTDOWN_TIMEOUT', message);
  }
}

/** A stop reached its hard deadline and the process left without waiting for Kafka clients. */
export class ShutdownForcedError extends ForwarderError {
  constructor(message: string) {
    super('ERR_SHUTDOWN_FORCED', message);
  }
}
