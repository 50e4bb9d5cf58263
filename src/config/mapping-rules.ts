/**
 * Rules of one mapping that involve more than one of its fields: templates against the filter
 * they take levels from, and header names against each other. Stated apart from schema.ts so
 * the route stage compiles templates with the very functions that validated them.
 */
import type { FilterCaptures, Template } from './templates';
import { literalText, parseFilter, parseTemplate } from './templates';
import { kafkaTopicTextProblem } from './topic-rules';

export const MQTT5_HEADER_FIELDS = [
  'content_type',
  'payload_format_indicator',
  'response_topic',
  'correlation_data',
  'message_expiry_interval',
] as const;

export const HEADER_FIELDS = ['topic', 'qos', 'retain', ...MQTT5_HEADER_FIELDS] as const;

export type HeaderField = (typeof HEADER_FIELDS)[number];

export interface HeaderRule {
  readonly include: readonly HeaderField[];
  readonly prefix: string;
  readonly user_properties: readonly string[];
  readonly user_property_prefix: string;
}

export interface MappingProblem {
  /** Path inside the mapping, e.g. ['kafka', 'key']. */
  readonly path: readonly (string | number)[];
  readonly message: string;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Compiles a mapping's templates; a problem names the field. Used at load and at routing. */
export function compileTemplates(
  filter: string,
  topic: string,
  key: string | null | undefined,
):
  | { ok: true; captures: FilterCaptures; topic: Template; key: Template | null }
  | { ok: false; problems: MappingProblem[] } {
  const captures = parseFilter(filter);
  if ('problem' in captures) return { ok: false, problems: [] }; // reported on mqtt.topic
  const problems: MappingProblem[] = [];
  const t = parseTemplate(topic, captures, filter);
  if ('problem' in t) problems.push({ path: ['kafka', 'topic'], message: t.problem });
  else {
    const text = kafkaTopicTextProblem(topic, literalText(t));
    if (text !== undefined) problems.push({ path: ['kafka', 'topic'], message: text });
  }
  // Absent: the whole topic, the reference service's key.
  const k = key === null ? null : parseTemplate(key ?? '{topic}', captures, filter);
  if (k !== null && 'problem' in k) problems.push({ path: ['kafka', 'key'], message: k.problem });
  if ('problem' in t || (k !== null && 'problem' in k) || problems.length > 0)
    return { ok: false, problems };
  return { ok: true, captures, topic: t, key: k };
}

/** Template problems of a raw (possibly invalid) mapping, for the schema's validateRules. */
export function mappingTemplateProblems(mapping: unknown): MappingProblem[] {
  if (!isRecord(mapping)) return [];
  const mqtt = mapping['mqtt'];
  const kafka = mapping['kafka'];
  if (!isRecord(mqtt) || !isRecord(kafka)) return [];
  const filter = mqtt['topic'];
  const topic = kafka['topic'];
  const key = kafka['key'];
  if (typeof filter !== 'string' || typeof topic !== 'string') return [];
  if (key !== undefined && key !== null && typeof key !== 'string') return [];
  // A plain topic name is checked by its own field rule; only templates need the filter.
  if (!/[{}]/u.test(topic) && (key === undefined || key === null || !/[{}]/u.test(key))) return [];
  const compiled = compileTemplates(filter, topic, key);
  return compiled.ok ? [] : compiled.problems;
}

/** The header name of correlation data that is not UTF-8, written as base64 under it. */
export function correlationBase64Name(prefix: string): string {
  return `${prefix}correlation_data_base64`;
}

/**
 * Two headers of one name would let a consumer read the wrong one, and an allowed user
 * property named like a metadata header would let a publisher forge it: both refused at load.
 */
export function headerNamesProblem(headers: unknown): MappingProblem | undefined {
  if (!isRecord(headers)) return undefined;
  const include = headers['include'] ?? HEADER_FIELDS;
  const prefix = headers['prefix'] ?? 'mqtt_';
  const users = headers['user_properties'] ?? [];
  const userPrefix = headers['user_property_prefix'] ?? '';
  if (
    !Array.isArray(include) ||
    !Array.isArray(users) ||
    typeof prefix !== 'string' ||
    typeof userPrefix !== 'string'
  )
    return undefined;
  const seen = new Map<string, string>();
  const entries: [string, string, string][] = [
    ...include.flatMap((f): [string, string, string][] => [
      ['include', String(f), prefix + String(f)],
      ...(f === 'correlation_data'
        ? [['include', String(f), correlationBase64Name(prefix)] as [string, string, string]]
        : []),
    ]),
    ...users.map((u): [string, string, string] => [
      'user_properties',
      String(u),
      userPrefix + String(u),
    ]),
  ];
  for (const [field, value, name] of entries) {
    const first = seen.get(name);
    if (first !== undefined) {
      return {
        path: ['kafka', 'headers', field],
        message: `${field} entry ${JSON.stringify(value)} gives the header name ${JSON.stringify(name)}, which ${first} already gives; every header name must be unique (set user_property_prefix or prefix to tell them apart)`,
      };
    }
    seen.set(name, `${field} entry ${JSON.stringify(value)}`);
  }
  return undefined;
}
