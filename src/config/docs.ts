import path from 'node:path';
import { z } from 'zod';
import { descriptionOf, presenceOf, unwrap } from './introspect';
import type { AnySchema } from './introspect';
import { CONFIG_RULES, configSchema } from './schema';

/** Files generated from the schema, relative to the repository root. */
export const CONFIG_DOCS = {
  markdown: 'docs/CONFIG.md',
  jsonSchema: 'docs/config.schema.json',
} as const;

export const REGENERATE_COMMAND = 'node build/scripts/gen-config-docs.js';

interface Row {
  key: string;
  type: string;
  default: string;
  description: string;
}

const code = (s: string): string => `\`${s}\``;

function cell(s: string): string {
  return s.replace(/\|/gu, '\\|').replace(/\s*\n\s*/gu, ' ');
}

function isNullable(schema: AnySchema): boolean {
  let s: AnySchema = schema;
  while (s instanceof z.ZodDefault || s instanceof z.ZodOptional || s instanceof z.ZodPrefault) {
    s = s.unwrap() as AnySchema;
  }
  return s instanceof z.ZodNullable;
}

function typeOf(schema: AnySchema): string {
  if (isNullable(schema)) return `${typeOfValue(schema)} or \`null\``;
  return typeOfValue(schema);
}

function typeOfValue(schema: AnySchema): string {
  const u = unwrap(schema);
  if (u instanceof z.ZodString) return (u.minLength ?? 0) > 0 ? 'non-empty string' : 'string';
  if (u instanceof z.ZodNumber) {
    const base = u.isInt ? 'integer' : 'number';
    const min = u.minValue;
    const max = u.maxValue;
    // z.int() carries the safe-integer range implicitly; only bounds the field chose say anything.
    const shown = (v: number | null): v is number =>
      v !== null && Number.isFinite(v) && Math.abs(v) < Number.MAX_SAFE_INTEGER;
    if (shown(min) && shown(max)) return `${base}, ${min} to ${max}`;
    if (shown(min)) return `${base}, at least ${min}`;
    if (shown(max)) return `${base}, at most ${max}`;
    return base;
  }
  if (u instanceof z.ZodBoolean) return 'boolean';
  if (u instanceof z.ZodEnum) return `one of ${u.options.map((o) => code(String(o))).join(', ')}`;
  if (u instanceof z.ZodLiteral) {
    return `one of ${[...u.values].map((v) => code(JSON.stringify(v))).join(', ')}`;
  }
  if (u instanceof z.ZodRecord) {
    return `mapping of property name to ${typeOf(u.valueType as AnySchema)}`;
  }
  if (u instanceof z.ZodUnion) {
    const options = (u.options as readonly AnySchema[]).map(typeOf);
    return `${options.slice(0, -1).join(', ')} or ${options[options.length - 1] ?? ''}`;
  }
  if (u instanceof z.ZodArray) {
    const min = (u.def.checks ?? [])
      .map((c) => (c._zod.def as { minimum?: number }).minimum)
      .find((m) => m !== undefined);
    return `list${min !== undefined ? ` (at least ${min})` : ''}`;
  }
  if (u instanceof z.ZodObject) return 'mapping';
  return 'value';
}

function defaultOf(schema: AnySchema): string {
  const presence = presenceOf(schema);
  if (presence.kind === 'required') return '**required**';
  if (presence.kind === 'optional') return '(absent)';
  if (presence.prefault) return '(all defaults)';
  return code(JSON.stringify(presence.value));
}

function rowsOf(schema: AnySchema, prefix: string): Row[] {
  const u = unwrap(schema);
  if (!(u instanceof z.ZodObject)) return [];
  const rows: Row[] = [];
  for (const [key, field] of Object.entries(u.shape as Record<string, AnySchema>)) {
    const keyPath = prefix === '' ? key : `${prefix}.${key}`;
    const inner = unwrap(field);
    rows.push({
      key: code(keyPath),
      type: typeOf(field),
      default: defaultOf(field),
      description: descriptionOf(field) ?? '',
    });
    if (inner instanceof z.ZodObject) rows.push(...rowsOf(inner, keyPath));
    if (inner instanceof z.ZodArray)
      rows.push(...rowsOf(inner.element as AnySchema, `${keyPath}[]`));
  }
  return rows;
}

function table(rows: readonly Row[]): string {
  const lines = ['| Key | Type | Default | Description |', '| --- | --- | --- | --- |'];
  for (const r of rows) {
    lines.push(`| ${[r.key, r.type, r.default, r.description].map(cell).join(' | ')} |`);
  }
  return lines.join('\n');
}

const INTRO = `# Configuration

<!-- Generated from src/config/schema.ts by \`${REGENERATE_COMMAND}\`. Do not edit by hand. -->

The forwarder reads one YAML file. A \`config.yaml\` of the reference service
(MaibornWolff/mqtt-kafka-forwarding-service) is accepted unchanged and means the same; every key
this service adds is optional.

## Which file

1. the \`--config <path>\` command-line option, else
2. the file named by the environment variable \`CONFIG_FILE\`, else
3. \`./config.yaml\` in the working directory.

## Environment variables

Any string value may refer to environment variables:

| Written          | Becomes                                                          |
| ---------------- | ---------------------------------------------------------------- |
| \`\${NAME}\`         | the value of \`NAME\`; an error if \`NAME\` is not set               |
| \`\${NAME:-text}\`   | the value of \`NAME\`, or \`text\` if \`NAME\` is unset or empty      |
| \`$\${NAME}\`        | the literal text \`\${NAME}\`                                       |

Substitution happens after the YAML is parsed, on each value separately, so a variable's content
is always exactly one value: quotes, \`#\`, \`: \` or line breaks in it cannot change the structure
of the file (the reference service substituted the raw text, which allowed that). Keys are not
substituted. Where a number or boolean is expected, a substituted value is converted if it is a
whole decimal number or exactly \`true\`/\`false\`, so \`port: \${MQTT_PORT}\` works. Every unset
variable is reported together with every other problem in the file, each naming where it is used.

Editors can validate the file with [config.schema.json](config.schema.json); it does not know
about substitution, so it flags \`\${...}\` in number and boolean fields.

## Strictness

Unknown keys are errors (with the closest known key suggested), so a misspelt optional key never
silently falls back to its default. Where the reference service silently ignored half of a client
certificate/key pair, this service reports an error.

Loading (also by \`check-config\`) looks beyond the file as well: every file the config names must
be readable (TLS certificates and keys, \`password_file\`, \`kafka.config_files\`, and librdkafka's
file properties where \`security.protocol\` uses them), and the Kafka producer properties are
handed to librdkafka itself, so an unknown property or a value it refuses is reported like any
other problem, naming the key. Only what librdkafka checks when a client starts (e.g. an
unsupported \`sasl.mechanism\`) still shows at run time, as a failed Kafka connect.
`;

function section(title: string, schema: AnySchema, prefix: string, note: string): string {
  return `## ${title}\n\n${note}\n\n${table(rowsOf(schema, prefix))}\n`;
}

const TEMPLATES = `## Templates: Kafka topic and key from the MQTT topic

\`kafka.topic\` and \`kafka.key\` may take parts of the MQTT topic. \`{topic}\` is the whole
topic, \`{1}\`, \`{2}\`, ... its levels (counted from 1, without a \`$share/<group>/\` prefix),
and \`{name}\` a \`+\` level that the filter names by writing it \`+{name}\`. \`{{\` and \`}}\`
write literal braces (in a key; a Kafka topic cannot contain them).

\`\`\`yaml
forwarding:
  - name: sensors
    mqtt:
      topic: plant/+{site}/sensors/+{device}/#   # subscribed as plant/+/sensors/+/#
    kafka:
      topic: sensors.{site}                      # plant/berlin/sensors/t-17/temp → sensors.berlin
      key: "{device}"                            # → key t-17
\`\`\`

- **Checked at load.** A placeholder may only use a level that every topic matching the filter
  has: \`{3}\` needs three levels before any \`#\` (a \`#\` also matches zero levels), \`{name}\` a
  level named in the filter. The text written in a Kafka topic template must be legal in a Kafka
  topic name.
- **Characters Kafka does not allow.** Kafka topic names take ASCII letters, digits, \`.\`, \`_\`
  and \`-\` only. In a value substituted into \`kafka.topic\`, \`/\` becomes \`.\` and every other
  character (space, \`:\`, non-ASCII, ...) becomes \`_\`, one per character. Two MQTT topics can
  so render to one Kafka topic (\`a b\` and \`a_b\`). Keys are written as they are, in UTF-8.
- **A rendered name that is still illegal** (an empty level gives an empty name; \`.\`, \`..\`, or
  longer than 249 characters) goes through the mapping's \`on_error\`, like a record Kafka
  refuses: \`skip\` counts and acknowledges it, \`dead_letter\` sends it to \`dead_letter_topic\`,
  \`stop\` holds it (retrying cannot change the name; fix the mapping and restart).
- **Order.** Records of one MQTT topic go through one producer lane in receive order, whatever
  topic and key they render to. Kafka keeps that order per partition, so per-topic order holds
  where the key is a function of the MQTT topic (the default, or any template).
- **Partitioner.** librdkafka's default partitioner is \`consistent_random\` (CRC32 of the key),
  not the Java client's murmur2: the same key lands in another partition than a Java producer
  puts it. To co-partition with Java producers set \`partitioner: murmur2_random\` under
  \`kafka.config\`.
- **Headers** (\`kafka.headers\`): \`headers: {}\` writes the MQTT topic, QoS, retain flag and the
  MQTT 5 properties present, named \`mqtt_topic\`, \`mqtt_qos\`, ...; user properties only by
  the allow-list \`user_properties\` (docs/SECURITY.md).
`;

function renderMarkdownUnformatted(): string {
  const shape = configSchema.shape;
  const topLevel = z.object({
    processes: shape.processes,
    log_level: shape.log_level,
    shutdown_timeout_ms: shape.shutdown_timeout_ms,
  });
  const parts = [
    INTRO,
    section('`mqtt`', shape.mqtt, 'mqtt', descriptionOf(shape.mqtt) ?? ''),
    section('`kafka`', shape.kafka, 'kafka', descriptionOf(shape.kafka) ?? ''),
    section(
      '`forwarding`',
      shape.forwarding.element,
      'forwarding[]',
      `${descriptionOf(shape.forwarding) ?? ''} Required, at least one entry.`,
    ),
    TEMPLATES,
    section(
      '`dispatch`',
      shape.dispatch,
      'dispatch',
      `${descriptionOf(shape.dispatch) ?? ''} The whole section is optional.`,
    ),
    section(
      '`http`',
      shape.http,
      'http',
      `${descriptionOf(shape.http) ?? ''} The whole section is optional.`,
    ),
    section('Top-level settings', topLevel, '', 'Keys at the top level of the file.'),
    `## Rules that span fields\n\n${CONFIG_RULES.map((r) => `- ${r}`).join('\n')}\n`,
  ];
  // Shape keys not placed above would silently vanish from the docs; fail the generator instead.
  const documented = new Set([
    'mqtt',
    'kafka',
    'forwarding',
    'dispatch',
    'http',
    ...Object.keys(topLevel.shape),
  ]);
  const missing = Object.keys(shape).filter((k) => !documented.has(k));
  if (missing.length > 0)
    throw new Error(`docs.ts does not place top-level keys: ${missing.join(', ')}`);
  return parts.join('\n');
}

/** docs/CONFIG.md as generated; formatted with the project's Prettier settings. */
export async function renderConfigMarkdown(repoRoot: string): Promise<string> {
  // Prettier is a dev dependency: load it only when docs are generated, never at run time.
  const prettier = await import('prettier');
  const target = path.join(repoRoot, CONFIG_DOCS.markdown);
  const options = (await prettier.resolveConfig(target)) ?? {};
  return prettier.format(renderMarkdownUnformatted(), { ...options, parser: 'markdown' });
}

/** docs/config.schema.json as generated: the JSON Schema of what may be written in the file. */
export function renderConfigJsonSchema(): string {
  const generated = z.toJSONSchema(configSchema, { io: 'input', target: 'draft-2020-12' });
  const { $schema, ...rest } = generated;
  const schema = {
    $schema,
    title: 'mqtt-kafka-forwarder configuration',
    description: `Generated from src/config/schema.ts by \`${REGENERATE_COMMAND}\`; see docs/CONFIG.md.`,
    ...rest,
  };
  return `${JSON.stringify(schema, null, 2)}\n`;
}

/** Every generated file: path relative to the repository root, and its content. */
export async function generateConfigDocs(
  repoRoot: string,
): Promise<{ path: string; content: string }[]> {
  return [
    { path: CONFIG_DOCS.markdown, content: await renderConfigMarkdown(repoRoot) },
    { path: CONFIG_DOCS.jsonSchema, content: renderConfigJsonSchema() },
  ];
}
