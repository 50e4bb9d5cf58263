import type { Config } from './schema';

export type KafkaConfigValue = string | number | boolean;
export type KafkaProps = Record<string, KafkaConfigValue>;

export interface ProducerConfig {
  /** First constructor argument of the node-rdkafka Producer. */
  global: KafkaProps;
  /** Second constructor argument: properties librdkafka only honours per topic. */
  topic: KafkaProps;
}

/**
 * librdkafka topic-level properties that matter to a producer (CONFIGURATION.md, "Topic
 * configuration properties", scope P or *). node-rdkafka silently ignores them in the global
 * argument, so a user's `acks: 1` there would quietly not apply.
 *
 * Left out on purpose:
 * - `compression.codec` / `compression.type` also exist as global properties, and the global
 *   value is what the topic-level default ("inherit") resolves to, so setting them globally
 *   applies to every topic the producer writes, which is what one `kafka.config` means here.
 * - `opaque` exists at both levels and can only be set through the C API, not as a string.
 * - consumer-only topic properties (`auto.offset.reset`, `auto.commit.*`, ...).
 */
export const TOPIC_LEVEL_PRODUCER_KEYS: ReadonlySet<string> = new Set([
  'acks',
  'request.required.acks',
  'request.timeout.ms',
  'message.timeout.ms',
  'delivery.timeout.ms',
  'queuing.strategy',
  'produce.offset.report',
  'partitioner',
  'partitioner_cb',
  'msg_order_cmp',
  'compression.level',
]);

/** librdkafka property pairs that name the same setting; setting both is ambiguous. */
export const KAFKA_PROPERTY_ALIASES: readonly (readonly [string, string])[] = [
  ['bootstrap.servers', 'metadata.broker.list'],
  ['acks', 'request.required.acks'],
  ['message.timeout.ms', 'delivery.timeout.ms'],
  ['compression.codec', 'compression.type'],
];

/** Known librdkafka properties holding secrets (exact names). */
export const SECRET_KAFKA_KEYS: ReadonlySet<string> = new Set([
  'sasl.password',
  'ssl.key.password',
  'ssl.key.pem',
  'ssl.keystore.password',
  'sasl.oauthbearer.client.secret',
  // Free-form "key=value ..." string that commonly embeds client secrets or unsecured JWTs.
  'sasl.oauthbearer.config',
]);

/** True if the value of this librdkafka property must not appear in logs or error messages. */
export function isSecretKafkaKey(key: string): boolean {
  const k = key.toLowerCase();
  return SECRET_KAFKA_KEYS.has(k) || k.includes('password') || k.includes('secret');
}

/** The user's acks setting under either of its names, if any. */
export function userAcks(props: Readonly<Record<string, unknown>>): unknown {
  return props['acks'] ?? props['request.required.acks'];
}

/** librdkafka spells "all in-sync replicas" both `all` and `-1`. */
export function isAcksAll(value: unknown): boolean {
  const v = String(value).trim().toLowerCase();
  return v === 'all' || v === '-1';
}

/** librdkafka's boolean parser accepts these spellings of true. */
export function isKafkaTrue(value: unknown): boolean {
  if (typeof value === 'boolean') return value;
  const v = String(value).trim().toLowerCase();
  return v === 'true' || v === 't' || v === '1';
}

function bootstrapHost(host: string): string {
  // A bare IPv6 literal needs brackets, or librdkafka reads its last group as the port.
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

/**
 * Producer constructor arguments for `cfg`: the user's `kafka.config` split by level, plus
 * defaults the forwarder relies on. Every default yields to an explicit user setting.
 */
export function buildProducerConfig(cfg: Config): ProducerConfig {
  const user = cfg.kafka.config;
  const global: KafkaProps = {};
  const topic: KafkaProps = {};

  if (user['bootstrap.servers'] === undefined && user['metadata.broker.list'] === undefined) {
    global['bootstrap.servers'] = `${bootstrapHost(cfg.kafka.bootstrap_server)}:${cfg.kafka.port}`;
  }
  const acks = userAcks(user);
  // Idempotence needs acks=all. A reference config that chose weaker acks must keep meaning
  // what it meant there, so the default only applies when acks is (or defaults to) all.
  if (user['enable.idempotence'] === undefined && (acks === undefined || isAcksAll(acks))) {
    global['enable.idempotence'] = true;
  }
  if (acks === undefined) topic['acks'] = 'all';

  for (const [key, value] of Object.entries(user)) {
    (TOPIC_LEVEL_PRODUCER_KEYS.has(key) ? topic : global)[key] = value;
  }
  return { global, topic };
}

export const REDACTED = '<redacted>';

/** A copy of `props` safe to log: values of secret-looking keys replaced. */
export function redactKafkaProps<T>(
  props: Readonly<Record<string, T>>,
): Record<string, T | string> {
  const out: Record<string, T | string> = {};
  for (const [key, value] of Object.entries(props)) {
    out[key] = isSecretKafkaKey(key) ? REDACTED : value;
  }
  return out;
}

/** A copy of the whole config safe to log (MQTT password and Kafka secrets replaced). */
export function redactConfig(cfg: Config): Config {
  const config = redactKafkaProps(cfg.kafka.config);
  // Whatever came from a secret file is hidden, even under a name not recognised as secret.
  for (const key of Object.keys(cfg.kafka.config_files ?? {})) {
    if (config[key] !== undefined) config[key] = REDACTED;
  }
  return {
    ...cfg,
    mqtt: {
      ...cfg.mqtt,
      ...(cfg.mqtt.credentials && {
        credentials: { ...cfg.mqtt.credentials, password: REDACTED },
      }),
    },
    kafka: { ...cfg.kafka, config },
  };
}
