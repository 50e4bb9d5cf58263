/**
 * The config's `forwarding` list as the route stage reads it. Built once at start and again on
 * every reload, from the same function, so a reloaded mapping routes exactly as a started one.
 */
import { compileTemplates } from '../../config/mapping-rules';
import type { Mapping } from '../../config/schema';
import type { RouteMapping } from './router';

export function routeMappingsOf(forwarding: readonly Mapping[]): RouteMapping[] {
  return forwarding.map((m) => {
    const compiled = compileTemplates(m.mqtt.topic, m.kafka.topic, m.kafka.key);
    // The schema refused every config for which this fails.
    if (!compiled.ok)
      throw new Error(`mapping ${m.name}: ${compiled.problems.map((p) => p.message).join('; ')}`);
    return {
      filter: compiled.captures.subscribe,
      qos: m.mqtt.qos,
      kafkaTopic: compiled.topic,
      key: compiled.key,
      wrap: m.wrap_as_json,
      ...(m.kafka.headers === undefined ? {} : { headers: m.kafka.headers }),
    };
  });
}
