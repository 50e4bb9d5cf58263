import { parseFilter } from './templates';

/**
 * Validity rules for MQTT topic filters and Kafka topic names. They live apart from the schema
 * so the router (and tests) can apply the same rules to values that do not come from a file.
 */

const MQTT_MAX_STRING_BYTES = 65535;
const KAFKA_TOPIC_MAX_LENGTH = 249;
const KAFKA_TOPIC_CHARS = /[^a-zA-Z0-9._-]/u;
// In 'u' mode a correctly paired surrogate is one code point, so this only matches lone halves,
// which have no UTF-8 encoding: the broker would reject the SUBSCRIBE and drop the connection.
const LONE_SURROGATE = /\p{Cs}/u;

/** Why `filter` is not a valid MQTT subscription topic filter, or undefined if it is valid. */
export function topicFilterProblem(filter: string): string | undefined {
  const got = `(got ${JSON.stringify(filter)})`;
  if (filter.length === 0) return 'topic filter must not be empty';
  if (filter.includes('\u0000')) return `topic filter must not contain the NUL character ${got}`;
  if (LONE_SURROGATE.test(filter)) {
    return `topic filter contains an unpaired UTF-16 surrogate, which has no UTF-8 encoding ${got}`;
  }
  const bytes = Buffer.byteLength(filter, 'utf8');
  if (bytes > MQTT_MAX_STRING_BYTES) {
    return `topic filter is ${bytes} bytes in UTF-8; MQTT allows at most ${MQTT_MAX_STRING_BYTES}`;
  }

  // Named levels (`+{site}`, see templates.ts) are subscribed as `+`: the wildcard rules below
  // apply to the filter as the broker sees it.
  const captures = parseFilter(filter);
  if ('problem' in captures) return `${captures.problem} ${got}`;
  let levels = captures.subscribe.split('/');
  if (levels[0] === '$share') {
    // $share/<group>/<filter>: replicas in one group split the messages between them (MQTT 5,
    // and mosquitto for 3.1.1 too). Opt-in: the broker hands out messages round-robin
    // regardless of topic, so per-topic order is lost across the group's members.
    const group = levels[1];
    if (levels.length < 3 || group === undefined || group === '') {
      return `a shared subscription is $share/<group>/<filter> ${got}`;
    }
    if (group.includes('+') || group.includes('#')) {
      return `the group name of a shared subscription must not contain wildcards ${got}`;
    }
    levels = levels.slice(2);
  }
  for (const [i, level] of levels.entries()) {
    if (level.includes('#')) {
      if (level !== '#') return `'#' must occupy a whole level ${got}`;
      if (i !== levels.length - 1) return `'#' must be the last level of a filter ${got}`;
    }
    if (level.includes('+') && level !== '+') return `'+' must occupy a whole level ${got}`;
  }
  return undefined;
}

/** Why `name` is not a valid Kafka topic name, or undefined if it is valid. */
export function kafkaTopicProblem(name: string): string | undefined {
  if (name.length === 0) return 'Kafka topic name must not be empty';
  if (name === '.' || name === '..') {
    return `"." and ".." are not valid Kafka topic names (got ${JSON.stringify(name)})`;
  }
  if (name.length > KAFKA_TOPIC_MAX_LENGTH) {
    return `Kafka topic name is ${name.length} characters long; Kafka allows at most ${KAFKA_TOPIC_MAX_LENGTH}`;
  }
  const bad = KAFKA_TOPIC_CHARS.exec(name);
  if (bad) {
    return (
      `Kafka topic names may only contain ASCII letters, digits, '.', '_' and '-' ` +
      `(got ${JSON.stringify(name)}, which contains ${JSON.stringify(bad[0])})`
    );
  }
  return undefined;
}

/**
 * Why the text written in a Kafka topic template (its placeholders left out) cannot be part of
 * a legal Kafka topic name, or undefined. Rendered names are checked once per MQTT topic
 * (router.ts): a substituted level may still be empty or too long.
 */
export function kafkaTopicTextProblem(template: string, text: string): string | undefined {
  const bad = KAFKA_TOPIC_CHARS.exec(text);
  if (bad) {
    return (
      `the text of a Kafka topic template may only contain ASCII letters, digits, '.', '_' and '-' ` +
      `(got ${JSON.stringify(template)}, which contains ${JSON.stringify(bad[0])})`
    );
  }
  if (text.length > KAFKA_TOPIC_MAX_LENGTH) {
    return `the text of this Kafka topic template alone is ${text.length} characters long; Kafka allows at most ${KAFKA_TOPIC_MAX_LENGTH} for the whole name`;
  }
  return undefined;
}

/** JSON Schema hints for editors; the functions above remain the authority. */
export const KAFKA_TOPIC_TEMPLATE_JSON_SCHEMA = {
  pattern: '^(?!\\.{1,2}$)([a-zA-Z0-9._-]|\\{[A-Za-z0-9_]+\\})+$',
  minLength: 1,
} as const;

/** JSON Schema hints for editors; the functions above remain the authority. */
export const KAFKA_TOPIC_JSON_SCHEMA = {
  pattern: '^(?!\\.{1,2}$)[a-zA-Z0-9._-]+$',
  minLength: 1,
  maxLength: KAFKA_TOPIC_MAX_LENGTH,
} as const;
