/** Where in the config a value is, and how to name that place in a problem line. */
import { isSecretKafkaKey } from './kafka-properties';

export type ConfigPath = readonly PropertyKey[];

/** `forwarding[2].mqtt.topic`; keys that are not plain words are quoted: `config."sasl.password"`. */
export function formatPath(p: ConfigPath): string {
  let out = '';
  for (const key of p) {
    if (typeof key === 'number') {
      out += `[${key}]`;
    } else {
      const s = String(key);
      const segment = /^[A-Za-z0-9_-]+$/u.test(s) ? s : JSON.stringify(s);
      out += out === '' ? segment : `.${segment}`;
    }
  }
  return out === '' ? '(top level)' : out;
}

/** A value under this path is a secret: problem lines never show it. */
export function isSecretPath(at: ConfigPath): boolean {
  const last = at[at.length - 1];
  return typeof last === 'string' && isSecretKafkaKey(last);
}
