/**
 * The config's `forwarding` list as the route stage reads it. Built once at start and again on
 * every reload, from the same function, so a reloaded mapping routes exactly as a started one.
 */
import type { Mapping } from '../../config/schema';
import type { RouteMapping } from './router';

export function routeMappingsOf(forwarding: readonly Mapping[]): RouteMapping[] {
  return forwarding.map((m) => ({
    filter: m.mqtt.topic,
    qos: m.mqtt.qos,
    kafkaTopic: m.kafka.topic,
    wrap: m.wrap_as_json,
  }));
}
