/**
 * MQTT topic → mappings. Filters follow MQTT semantics: `+` matches one level, `#` the rest
 * (including the parent level itself), and topics starting with `$` are not matched by a filter
 * whose first level is a wildcard.
 */

export interface RouteMapping {
  readonly filter: string;
  readonly qos: 0 | 1 | 2;
  readonly kafkaTopic: string;
  readonly wrap: boolean;
}

export interface Subscription {
  readonly filter: string;
  readonly qos: 0 | 1 | 2;
  /** MQTT 5 subscription identifier: tells which filter a delivered copy was sent for. */
  readonly id: number;
}

export interface Route {
  /** Indices into the mapping list, in config order. */
  readonly mappings: readonly number[];
  /** Kafka record key: the MQTT topic as UTF-8, the reference service's default. */
  readonly key: Buffer;
  /** Producer lane; a function of the topic only, so one topic always keeps one order. */
  readonly lane: number;
}

/** The filter a subscription matches topics with: `$share/<group>/` is not part of it. */
export function matchingFilter(filter: string): string {
  if (!filter.startsWith('$share/')) return filter;
  return filter.split('/').slice(2).join('/');
}

export function matchesFilter(filter: string, topic: string): boolean {
  const f = matchingFilter(filter).split('/');
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
  /**
   * One per distinct filter, at the highest QoS any mapping asks for. Ids start at 1 and are
   * never reused in a process: a filter kept by a reload keeps its id, a new one gets the next
   * unused id, so a copy delivered for a removed subscription never reaches a new mapping.
   */
  readonly subscriptions: readonly Subscription[];
  /** The highest subscription id this router or any router before it handed out. */
  readonly lastSubscriptionId: number;
  /** Mapping indices per subscription id (empty for ids not in use). */
  private readonly bySubscription: (readonly number[])[] = [[]];

  /** `previous`: the router this one replaces on a config reload (its ids carry over). */
  constructor(
    readonly mappings: readonly RouteMapping[],
    private readonly lanes: number,
    previous?: Router,
  ) {
    const kept = new Map(previous?.subscriptions.map((s) => [s.filter, s.id]));
    let lastId = previous?.lastSubscriptionId ?? 0;
    const subs: Subscription[] = [];
    const byId: number[][] = [];
    mappings.forEach((m, i) => {
      let at = subs.findIndex((s) => s.filter === m.filter);
      if (at < 0) {
        at = subs.push({ filter: m.filter, qos: m.qos, id: kept.get(m.filter) ?? ++lastId }) - 1;
        byId[at] = [];
      } else if (m.qos > subs[at]!.qos) {
        subs[at] = { ...subs[at]!, qos: m.qos };
      }
      byId[at]!.push(i);
    });
    this.subscriptions = subs;
    this.lastSubscriptionId = lastId;
    // Dense up to the highest id, so the per-message lookup stays a plain array read.
    const none: readonly number[] = [];
    for (let id = 1; id <= lastId; id++) this.bySubscription.push(none);
    subs.forEach((s, at) => (this.bySubscription[s.id] = byId[at]!));
  }

  /**
   * The mappings a delivered copy is for. A broker may send one copy per matching
   * subscription (mosquitto does for MQTT 5), so with subscription identifiers each copy goes
   * only to the mappings of the filters it names — otherwise every copy would be forwarded to
   * every matching mapping. Intersecting with the topic's own matches guards against stale
   * subscriptions left in a persistent session by an earlier config.
   * Without identifiers (MQTT 3.1.1) every copy is forwarded to all matching mappings.
   */
  mappingsFor(
    route: Route,
    subscriptionIds: number | readonly number[] | undefined,
  ): readonly number[] {
    if (subscriptionIds === undefined) return route.mappings;
    if (typeof subscriptionIds === 'number') {
      const own = this.bySubscription[subscriptionIds];
      if (own === undefined) return [];
      return own.length === route.mappings.length
        ? own
        : own.filter((m) => route.mappings.includes(m));
    }
    const wanted = new Set<number>();
    for (const id of subscriptionIds) for (const m of this.bySubscription[id] ?? []) wanted.add(m);
    return route.mappings.filter((m) => wanted.has(m));
  }

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
