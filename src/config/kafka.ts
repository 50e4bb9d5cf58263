/**
 * The producer's librdkafka properties built from a valid config, and the config made safe to
 * log. What is known about single properties (levels, aliases, secrets) is in
 * kafka-properties.ts, which the schema uses too.
 */
import {
  REDACTED,
  TOPIC_LEVEL_PRODUCER_KEYS,
  isAcksAll,
  redactKafkaProps,
  userAcks,
} from './kafka-properties';
import type { KafkaProps } from './kafka-properties';
import type { Config } from './schema';

export interface ProducerConfig {
  /** First constructor argument of the node-rdkafka Producer. */
  global: KafkaProps;
  /** Second constructor argument: properties librdkafka only honours per topic. */
  topic: KafkaProps;
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
  // A property of the bundled librdkafka's patch (native/librdkafka/0002): a partition with
  // nothing in flight skips linger.ms when its last request is a linger period old (or the
  // messages are the rest of that request's burst). Behind a broker that caps unacknowledged
  // messages, linger was most of each round trip (docs/DESIGN.md).
  if (user['linger.adaptive'] === undefined) global['linger.adaptive'] = true;

  for (const [key, value] of Object.entries(user)) {
    (TOPIC_LEVEL_PRODUCER_KEYS.has(key) ? topic : global)[key] = value;
  }
  return { global, topic };
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
