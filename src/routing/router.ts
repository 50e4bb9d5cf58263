/**
 * MQTT topic → mappings. Filters follow MQTT semantics: `+` matches one level, `#` the rest
 * (including the parent level itself), and topics starting with `$` are not matched by a filter
 * whose first level is a wildcard.
 */

export interface RouteMapping {
  readonly filter: string;
  readonly kafkaTopicIndex: number;
  readonly wrap: boolean;
}

export interface Route {
  /** Indices into the mapping list, in config order. */
  readonly mappings: readonly number[];
  /** Kafka record key: the MQTT topic as UTF-8, the reference service's default. */
  readonly key: Buffer;
  /** Producer lane; a function of the topic only, so one topic always keeps one order. */
  readonly lane: number;
}

export function matchesFilter(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  if (topic.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false;
  for (let i = 0; i < f.length; i++) {
    const level = f[i];
    if (level === '#') return true;
    if (i >= t.length) return false;
    if (level !== '+' && level !== t[i]) return false;
  }
  return f.length === t.length;
}

/** FNV-1a over the UTF-16 code units: cheap, stable across runs and threads. */
export function topicHash(topic: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < topic.length; i++) {
    h ^= topic.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * Bounded cache of routes by topic. Device fleets publish on very many distinct topics, so the
 * cache is cleared when full instead of growing with topic cardinality.
 */
const CACHE_LIMIT = 10_000;

export class Router {
  private readonly cache = new Map<string, Route>();

  constructor(
    readonly mappings: readonly RouteMapping[],
    private readonly lanes: number,
  ) {}

  route(topic: string): Route {
    let r = this.cache.get(topic);
    if (r) return r;
    const mappings: number[] = [];
    for (let i = 0; i < this.mappings.length; i++) {
      if (matchesFilter(this.mappings[i]!.filter, topic)) mappings.push(i);
    }
    r = { mappings, key: Buffer.from(topic, 'utf8'), lane: topicHash(topic) % this.lanes };
    if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
    this.cache.set(topic, r);
    return r;
  }
}

/**
 * The reference service's `wrap_as_json` value, byte for byte: serde_json of
 * `{ topic, payload: base64(payload) }` — field order topic, payload; no spaces; standard
 * base64 with padding. JSON.stringify escapes a string exactly as serde_json does for valid
 * UTF-8 (control characters as \n, \t, ... or lowercase \u00XX; `/` and non-ASCII unescaped).
 */
export function wrapPayload(topic: string, payload: Buffer): Buffer {
  return Buffer.from(`{"topic":${JSON.stringify(topic)},"payload":"${payload.toString('base64')}"}`);
}
