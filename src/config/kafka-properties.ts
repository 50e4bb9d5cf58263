/** What the forwarder knows about single librdkafka properties, independent of any config. */

export type KafkaConfigValue = string | number | boolean;
export type KafkaProps = Record<string, KafkaConfigValue>;

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
