/**
 * MQTT topic → mappings. Filters follow MQTT semantics: `+` matches one level, `#` the rest
 * (including the parent level itself), and topics starting with `$` are not matched by a filter
 * whose first level is a wildcard.
 */
import type { HeaderRule } from '../../config/mapping-rules';
import type { Template } from '../../config/templates';
import { isStatic, kafkaTopicSafe, literalText, render } from '../../config/templates';
import { kafkaTopicProblem } from '../../config/topic-rules';

export interface RouteMapping {
  /** The filter as subscribed (named levels written as `+`). */
  readonly filter: string;
  readonly qos: 0 | 1 | 2;
  readonly kafkaTopic: Template;
  /** null: records without a key. */
  readonly key: Template | null;
  readonly wrap: boolean;
  readonly headers?: HeaderRule;
}

/** Where one mapping sends the messages of one MQTT topic. */
export interface RouteTarget {
  readonly kafkaTopic: string;
  /** Set when the rendered name is no legal Kafka topic: the record goes to on_error. */
  readonly topicProblem?: string;
  readonly key: Buffer | null;
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
  /** By mapping index, for the mappings above (the others are holes). */
  readonly targets: readonly RouteTarget[];
  /** The MQTT topic as UTF-8 (headers, dead-letter copies). */
  readonly topicBytes: Buffer;
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
      // Both lists are in config order: equal lists (the common case) need no new array. Equal
      // lengths alone are not enough: a stale id of an earlier process's session may name as
      // many mappings as match this topic, but others.
      return sameList(own, route.mappings) ? own : own.filter((m) => route.mappings.includes(m));
    }
    const wanted = new Set<number>();
    for (const id of subscriptionIds) for (const m of this.bySubscription[id] ?? []) wanted.add(m);
    return route.mappings.filter((m) => wanted.has(m));
  }

  route(topic: string): Route {
    let r = this.cache.get(topic);
    if (r) return r;
    const mappings: number[] = [];
    const targets: RouteTarget[] = [];
    const levels = topic.split('/');
    // Mappings that render the same key share its Buffer (the default, the topic, most often).
    const topicBytes = Buffer.from(topic, 'utf8');
    const keys = new Map<string, Buffer>([[topic, topicBytes]]);
    for (let i = 0; i < this.mappings.length; i++) {
      const m = this.mappings[i]!;
      if (!matchesFilter(m.filter, topic)) continue;
      mappings.push(i);
      let key: Buffer | null = null;
      if (m.key !== null) {
        const k = render(m.key, topic, levels);
        key = keys.get(k) ?? Buffer.from(k, 'utf8');
        keys.set(k, key);
      }
      targets[i] = kafkaTarget(m.kafkaTopic, topic, levels, key);
    }
    r = { mappings, targets, topicBytes, lane: topicHash(topic) % this.lanes };
    if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
    this.cache.set(topic, r);
    return r;
  }
}

function sameList(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function kafkaTarget(
  t: Template,
  topic: string,
  levels: readonly string[],
  key: Buffer | null,
): RouteTarget {
  // A name without placeholders was checked at load.
  if (isStatic(t)) return { kafkaTopic: literalText(t), key };
  const kafkaTopic = render(t, topic, levels, kafkaTopicSafe);
  const problem = kafkaTopicProblem(kafkaTopic);
  if (problem === undefined) return { kafkaTopic, key };
  return {
    kafkaTopic,
    key,
    topicProblem: `the Kafka topic rendered from MQTT topic ${JSON.stringify(topic)} is not a legal name: ${problem}`,
  };
}
