/**
 * Kafka topic and key templates built from the MQTT topic (docs/CONFIG.md, "Templates").
 *
 *   mqtt.topic:  plant/+{site}/sensors/+/#     a `+` level may carry a name: `+{site}`
 *   kafka.topic: sensors.{site}                 `{site}`: the level captured by that name
 *   kafka.key:   "{site}/{4}"                   `{4}`: the topic's 4th level; `{topic}`: all of it
 *
 * A named level is subscribed as a plain `+`, so the broker sees an ordinary filter. `+{x}` is
 * not a legal MQTT filter level and Kafka topic names cannot contain braces, so no config that
 * was valid before templates existed changes meaning. `{{` and `}}` write literal braces.
 */

export type TemplatePart =
  | { readonly kind: 'text'; readonly text: string }
  | { readonly kind: 'topic' }
  /** 0-based index into the MQTT topic's levels. */
  | { readonly kind: 'level'; readonly index: number };

export type Template = readonly TemplatePart[];

export interface FilterCaptures {
  /** The filter as subscribed: every `+{name}` written as `+`. */
  readonly subscribe: string;
  /** Capture name → 0-based level index in the topic (past any `$share/<group>/`). */
  readonly names: ReadonlyMap<string, number>;
  /** Levels every matching topic has: those before a trailing `#` (which matches zero levels too). */
  readonly guaranteedLevels: number;
}

const NAMED_LEVEL = /^\+\{([A-Za-z_][A-Za-z0-9_]*)\}$/u;
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/u;
const POSITION = /^[1-9][0-9]{0,3}$/u;
/** `{topic}` is the whole topic; a level cannot be named so. */
const WHOLE_TOPIC = 'topic';

/** The filter's captures, or the reason its names are wrong. Wildcard rules are checked elsewhere. */
export function parseFilter(filter: string): FilterCaptures | { problem: string } {
  const levels = filter.split('/');
  const prefix = levels[0] === '$share' ? levels.splice(0, 2) : [];
  const names = new Map<string, number>();
  const subscribed: string[] = [];
  for (const [i, level] of levels.entries()) {
    const m = NAMED_LEVEL.exec(level);
    if (m === null) {
      if (level.startsWith('+{'))
        return {
          problem: `level ${JSON.stringify(level)} is not a named level: write +{name}, the name a letter or '_' followed by letters, digits or '_'`,
        };
      subscribed.push(level);
      continue;
    }
    const name = m[1]!;
    if (name === WHOLE_TOPIC)
      return { problem: `a level cannot be named "${WHOLE_TOPIC}": {topic} is the whole topic` };
    if (names.has(name)) return { problem: `the level name "${name}" is used twice` };
    names.set(name, i);
    subscribed.push('+');
  }
  const hashAt = levels.indexOf('#');
  return {
    subscribe: [...prefix, ...subscribed].join('/'),
    names,
    guaranteedLevels: hashAt < 0 ? levels.length : hashAt,
  };
}

/**
 * Parses `template` against the filter's captures. A placeholder may only name a level every
 * matching topic has, so rendering can never meet a missing level.
 */
export function parseTemplate(
  template: string,
  captures: FilterCaptures,
  filter: string,
): Template | { problem: string } {
  const parts: TemplatePart[] = [];
  let text = '';
  for (let i = 0; i < template.length; i++) {
    const c = template[i]!;
    if (c === '}') {
      if (template[i + 1] !== '}')
        return { problem: `unmatched '}' at position ${i + 1} (write '}}' for a literal '}')` };
      text += '}';
      i++;
      continue;
    }
    if (c !== '{') {
      text += c;
      continue;
    }
    if (template[i + 1] === '{') {
      text += '{';
      i++;
      continue;
    }
    const end = template.indexOf('}', i);
    if (end < 0)
      return { problem: `unclosed '{' at position ${i + 1} (write '{{' for a literal '{')` };
    const ref = template.slice(i + 1, end);
    const part = placeholder(ref, captures, filter);
    if ('problem' in part) return part;
    if (text !== '') parts.push({ kind: 'text', text });
    text = '';
    parts.push(part);
    i = end;
  }
  if (text !== '') parts.push({ kind: 'text', text });
  return parts;
}

function placeholder(
  ref: string,
  captures: FilterCaptures,
  filter: string,
): TemplatePart | { problem: string } {
  if (ref === WHOLE_TOPIC) return { kind: 'topic' };
  const of = `the filter ${JSON.stringify(filter)}`;
  if (POSITION.test(ref)) {
    const n = Number(ref);
    if (n > captures.guaranteedLevels)
      return {
        problem:
          `{${n}} needs a topic of at least ${n} levels, but ${of} also matches topics of ` +
          `${captures.guaranteedLevels} (a '#' matches zero levels too)`,
      };
    return { kind: 'level', index: n - 1 };
  }
  if (NAME.test(ref)) {
    const index = captures.names.get(ref);
    if (index === undefined) {
      const known = [...captures.names.keys()];
      return {
        problem:
          `{${ref}} names no level of ${of}` +
          (known.length > 0 ? ` (its named levels: ${known.join(', ')})` : '') +
          `; name a level with +{${ref}}, or use {topic} or a level number such as {1}`,
      };
    }
    return { kind: 'level', index };
  }
  return {
    problem: `{${ref}} is not a placeholder: use {topic}, a level number such as {2}, or a name given in the filter with +{name}`,
  };
}

export function isStatic(t: Template): boolean {
  return t.every((p) => p.kind === 'text');
}

/** The text parts only, joined: what a topic template contributes whatever the topic. */
export function literalText(t: Template): string {
  return t.map((p) => (p.kind === 'text' ? p.text : '')).join('');
}

/**
 * Kafka topic names allow `[A-Za-z0-9._-]` only. A substituted value keeps those characters,
 * turns `/` (inside `{topic}`) into `.`, and every other character (space, `:`, non-ASCII, ...)
 * into `_`, one per code point. Text written in the template is never changed.
 */
export function kafkaTopicSafe(value: string): string {
  return value.replace(/\//gu, '.').replace(/[^A-Za-z0-9._-]/gu, '_');
}

/** Renders `t` for `topic` (split into `levels`); `escape` applies to substituted values only. */
export function render(
  t: Template,
  topic: string,
  levels: readonly string[],
  escape?: (value: string) => string,
): string {
  let out = '';
  for (const p of t) {
    if (p.kind === 'text') out += p.text;
    else {
      const v = p.kind === 'topic' ? topic : levels[p.index]!;
      out += escape ? escape(v) : v;
    }
  }
  return out;
}
