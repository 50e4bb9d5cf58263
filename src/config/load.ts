import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { ConfigFileError, ConfigInvalidError } from '../errors';
import { isIntegerSchema, objectKeys, scalarKind, schemaAt } from './introspect';
import {
  kafkaPropertyProblems,
  referencedFileProblems,
  saslMechanismProblems,
  unsupportedKafkaPropertyProblems,
} from './checks';
import type { Problem } from './checks';
import { isSecretKafkaKey } from './kafka';
import { configSchema } from './schema';
import type { Config } from './schema';

export type Env = Readonly<Record<string, string | undefined>>;
export type ConfigPath = readonly PropertyKey[];

export const DEFAULT_CONFIG_FILE = './config.yaml';
export const CONFIG_FILE_ENV = 'CONFIG_FILE';

/** Which file to load: the `--config` flag, else $CONFIG_FILE, else ./config.yaml. */
export function resolveConfigPath(flag?: string, env: Env = process.env): string {
  if (flag !== undefined && flag !== '') return flag;
  const fromEnv = env[CONFIG_FILE_ENV];
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  return DEFAULT_CONFIG_FILE;
}

export interface ParseOptions {
  /**
   * Also check that every file the config names (TLS certificates and keys, librdkafka's file
   * properties) can be read. loadConfig does; off by default so the rules can be tested on text
   * with made-up paths. (password_file and config_files are always read: they hold values.)
   */
  checkFiles?: boolean;
}

/**
 * Reads, substitutes and validates the config file, including the files it names (unless
 * `options.checkFiles` is false: a config checked away from where it runs, e.g. a Helm chart's
 * rendered config whose certificates are mounted only in the pod) and librdkafka's verdict on the
 * producer properties; throws ConfigFileError/ConfigInvalidError.
 */
export function loadConfig(
  file: string,
  env: Env = process.env,
  options: ParseOptions = { checkFiles: true },
): Config {
  const resolved = path.resolve(file);
  const shown = resolved === file ? file : `${file} (${resolved})`;
  let text: string;
  try {
    text = readFileSync(resolved, 'utf8');
  } catch (err) {
    throw new ConfigFileError(`cannot read config file ${shown}: ${readFailure(err)}`, {
      cause: err,
    });
  }
  return parseConfigText(text, shown, env, options);
}

function readFailure(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT':
      return `no such file (set --config or ${CONFIG_FILE_ENV} to use another file)`;
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'it is a directory';
    default:
      return err instanceof Error ? err.message : String(err);
  }
}

/** loadConfig for text already read; `sourceName` names the text in error messages. */
export function parseConfigText(
  text: string,
  sourceName: string,
  env: Env = process.env,
  options: ParseOptions = {},
): Config {
  const raw = parseYaml(text, sourceName);
  if (raw === null || raw === undefined) {
    throw new ConfigInvalidError([
      `(top level): config ${sourceName} is empty; it needs at least a forwarding list`,
    ]);
  }
  const problems: Problem[] = [];
  const substitutions: Substitution[] = [];
  const data = substituteTree(raw, [], env, problems, substitutions);
  coerceSubstituted(data, substitutions);

  const failedPaths = new Set(problems.map((p) => formatPath(p.path)));
  const result = configSchema.safeParse(data, { reportInput: true });
  if (!result.success) {
    const fromTemplate = new Map(substitutions.map((s) => [formatPath(s.path), s.template]));
    for (const problem of issuesToProblems(result.error.issues, fromTemplate)) {
      // A value whose substitution failed is still the raw "${...}" text; its schema error
      // would only repeat the substitution problem in a more confusing way.
      if (!failedPaths.has(formatPath(problem.path))) problems.push(problem);
    }
  }
  // A failed parse always left at least one problem above; the second test is for the types.
  if (problems.length > 0 || !result.success) {
    throw new ConfigInvalidError(problems.map((p) => `${formatPath(p.path)}: ${p.message}`));
  }
  const cfg = resolveSecretFiles(result.data, problems);
  if (options.checkFiles === true) problems.push(...referencedFileProblems(cfg));
  // Needs a schema-valid config (buildProducerConfig); a property is checked as the worker's
  // producer will receive it, including values read from config_files.
  problems.push(...kafkaPropertyProblems(cfg));
  problems.push(...saslMechanismProblems(cfg));
  problems.push(...unsupportedKafkaPropertyProblems(cfg));
  if (problems.length > 0) {
    throw new ConfigInvalidError(problems.map((p) => `${formatPath(p.path)}: ${p.message}`));
  }
  return cfg;
}

/** A password or a PEM key is far smaller; a device or a wrong path (a log file) may not be. */
const MAX_SECRET_FILE_BYTES = 64 * 1024;

/**
 * Reads `mqtt.credentials.password_file` and `kafka.config_files` into the values they stand
 * for, so the rest of the forwarder handles a secret from a file exactly like one written in the
 * config (and redacts it the same way). Read once, at load time: a missing or unreadable file is
 * a config error at start rather than an authentication failure later. Problems name the path,
 * never the content.
 */
function resolveSecretFiles(cfg: Config, problems: Problem[]): Config {
  let mqtt = cfg.mqtt;
  const credentials = cfg.mqtt.credentials;
  if (credentials?.password_file !== undefined) {
    const at = ['mqtt', 'credentials', 'password_file'];
    const password = readSecretFile(credentials.password_file, at, problems);
    if (password !== undefined) mqtt = { ...mqtt, credentials: { ...credentials, password } };
  }
  let kafka = cfg.kafka;
  const files = cfg.kafka.config_files;
  if (files !== undefined) {
    const config = { ...kafka.config };
    for (const [key, file] of Object.entries(files)) {
      const value = readSecretFile(file, ['kafka', 'config_files', key], problems);
      if (value !== undefined) config[key] = value;
    }
    kafka = { ...kafka, config };
  }
  return { ...cfg, mqtt, kafka };
}

function readSecretFile(file: string, at: ConfigPath, problems: Problem[]): string | undefined {
  const resolved = path.resolve(file);
  const shown = resolved === file ? file : `${file} (${resolved})`;
  let text: string;
  try {
    // stat follows symlinks: Kubernetes mounts each Secret key as a link into a ..data folder.
    const stat = statSync(resolved);
    if (!stat.isFile()) {
      problems.push({ path: at, message: `cannot read ${shown}: not a regular file` });
      return undefined;
    }
    if (stat.size > MAX_SECRET_FILE_BYTES) {
      problems.push({
        path: at,
        message: `${shown} is larger than ${MAX_SECRET_FILE_BYTES} bytes; is it the right file?`,
      });
      return undefined;
    }
    text = readFileSync(resolved, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    const why = code === 'ENOENT' ? 'no such file' : readFailure(err);
    problems.push({ path: at, message: `cannot read ${shown}: ${why}` });
    return undefined;
  }
  // `echo secret > file` and `kubectl create secret --from-file` leave one line break at the end.
  const value = text.endsWith('\r\n')
    ? text.slice(0, -2)
    : text.endsWith('\n')
      ? text.slice(0, -1)
      : text;
  if (value === '') {
    problems.push({ path: at, message: `${shown} is empty` });
    return undefined;
  }
  return value;
}

function parseYaml(text: string, sourceName: string): unknown {
  // uniqueKeys (the default) turns a repeated key into an error instead of last-one-wins;
  // merge accepts the `<<: *anchor` idiom that YAML 1.1 users expect.
  const doc = parseDocument(text, { prettyErrors: true, merge: true });
  if (doc.errors.length > 0) {
    const details = doc.errors.map((e) => {
      const pos = e.linePos?.[0];
      const [first = '', ...context] = e.message.split('\n');
      const reason = first.replace(/ at line \d+, column \d+:$/u, '');
      const where = pos ? `line ${pos.line}, column ${pos.col}: ` : '';
      const snippet = context.filter((l) => l.trim() !== '').map((l) => `    ${l}`);
      return [`  ${where}${reason}`, ...snippet].join('\n');
    });
    throw new ConfigFileError(
      `config file ${sourceName} is not valid YAML:\n${details.join('\n')}`,
      {
        cause: doc.errors[0],
      },
    );
  }
  // Bounds alias expansion, so a small file cannot expand into gigabytes ("billion laughs").
  return doc.toJS({ maxAliasCount: 100 });
}

interface Substitution {
  path: ConfigPath;
  /** The scalar as written in the file, before substitution. */
  template: string;
}

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

const VARIABLE_REFERENCE = /^([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?$/su;

/**
 * Environment substitution on one parsed scalar. Working on values rather than on the file text
 * means a variable's content can never add keys, close quotes or start comments.
 */
export function substituteString(
  s: string,
  env: Env,
  options: { hideValue?: boolean } = {},
): { value: string; substituted: boolean; errors: string[] } {
  let value = '';
  let substituted = false;
  const errors: string[] = [];
  let i = 0;
  while (i < s.length) {
    if (s.startsWith('$${', i)) {
      value += '${';
      i += 3;
      continue;
    }
    if (!s.startsWith('${', i)) {
      value += s[i];
      i += 1;
      continue;
    }
    const end = s.indexOf('}', i + 2);
    if (end === -1) {
      const where = options.hideValue ? '' : ` in ${JSON.stringify(s)}`;
      errors.push(`unterminated "\${"${where} (write "$\${" for a literal "\${")`);
      value += s.slice(i);
      break;
    }
    const body = s.slice(i + 2, end);
    const match = VARIABLE_REFERENCE.exec(body);
    if (!match) {
      const shown = options.hideValue ? '' : ` "\${${body}}"`;
      errors.push(
        `invalid variable reference${shown}: expected \${NAME} or \${NAME:-default} ` +
          `with NAME made of letters, digits and '_' (write "$\${" for a literal "\${")`,
      );
    } else {
      const name = match[1] as string;
      const fallback = match[2];
      const set = env[name];
      substituted = true;
      // Like the shell's ${NAME:-default}: an empty variable also takes the default.
      if (fallback !== undefined && (set === undefined || set === '')) value += fallback;
      else if (set !== undefined) value += set;
      else errors.push(`environment variable ${name} is not set`);
    }
    i = end + 1;
  }
  return { value, substituted, errors };
}

function substituteTree(
  node: unknown,
  at: ConfigPath,
  env: Env,
  problems: Problem[],
  substitutions: Substitution[],
): unknown {
  if (typeof node === 'string') {
    if (!node.includes('$')) return node;
    const r = substituteString(node, env, { hideValue: isSecretPath(at) });
    for (const message of r.errors) problems.push({ path: at, message });
    if (r.errors.length > 0) return node;
    if (r.substituted) substitutions.push({ path: at, template: node });
    return r.value;
  }
  if (Array.isArray(node)) {
    return node.map((item, i) => substituteTree(item, [...at, i], env, problems, substitutions));
  }
  if (typeof node === 'object' && node !== null) {
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(node)) {
      // defineProperty, because assigning a YAML key "__proto__" would replace the prototype
      // instead of creating a key the schema then reports as unknown.
      Object.defineProperty(out, key, {
        value: substituteTree(value, [...at, key], env, problems, substitutions),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  }
  return node;
}

const DECIMAL = /^-?\d+(?:\.\d+)?$/u;

/**
 * `port: ${MQTT_PORT}` is a string after substitution; the reference service substituted text
 * before parsing, so there it was a number. Convert where the schema expects one, and only
 * for whole decimal numbers and the exact words true/false, so no value changes meaning.
 */
function coerceSubstituted(data: unknown, substitutions: readonly Substitution[]): void {
  for (const { path: at } of substitutions) {
    const parent = valueAt(data, at.slice(0, -1));
    const key = at[at.length - 1];
    if (key === undefined || typeof parent !== 'object' || parent === null) continue;
    const container = parent as Record<PropertyKey, unknown>;
    const value = container[key];
    if (typeof value !== 'string') continue;
    const kind = scalarKind(schemaAt(configSchema, at));
    if (kind === 'number' && DECIMAL.test(value)) container[key] = Number(value);
    else if (kind === 'boolean' && (value === 'true' || value === 'false')) {
      container[key] = value === 'true';
    }
  }
}

function valueAt(data: unknown, at: ConfigPath): unknown {
  let node = data;
  for (const key of at) {
    if (typeof node !== 'object' || node === null) return undefined;
    node = (node as Record<PropertyKey, unknown>)[key];
  }
  return node;
}

// ---------------------------------------------------------------------------------------------
// zod issues → one human line each

type Issue = z.core.$ZodIssue;

function isSecretPath(at: ConfigPath): boolean {
  const last = at[at.length - 1];
  return typeof last === 'string' && isSecretKafkaKey(last);
}

function describeValue(value: unknown, secret: boolean): string {
  if (value === null) return 'an empty value';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (secret) return `a ${typeof value} (value hidden)`;
  if (typeof value === 'string') {
    const shown = value.length > 80 ? `${value.slice(0, 77)}...` : value;
    return JSON.stringify(shown);
  }
  return String(value);
}

const EXPECTED: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
  object: 'a mapping',
  record: 'a mapping',
  array: 'a list',
};

function joinOr(items: readonly string[]): string {
  return items.length <= 1
    ? (items[0] ?? '')
    : `${items.slice(0, -1).join(', ')} or ${items[items.length - 1]}`;
}

function levenshtein(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur[j] = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost);
    }
    prev = cur;
  }
  return prev[b.length] ?? 0;
}

/** The closest candidate within 3 edits (and closer than a full rewrite), if any. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = levenshtein(word.toLowerCase(), c.toLowerCase());
    if (d <= 3 && d < Math.max(word.length, c.length) && d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}

function isDefaultMessage(issue: Issue): boolean {
  const locale = z.config().localeError;
  const m = locale?.(issue as never);
  return (typeof m === 'string' ? m : m?.message) === issue.message;
}

function describeIssue(issue: Issue, fromTemplate: ReadonlyMap<string, string>): string {
  const secret = isSecretPath(issue.path);
  const input: unknown = issue.input;
  const template = fromTemplate.get(formatPath(issue.path));
  const got = `got ${describeValue(input, secret)}`;
  const origin = template === undefined ? '' : ` (substituted from ${JSON.stringify(template)})`;

  switch (issue.code) {
    case 'invalid_type': {
      if (input === undefined) return 'required key is missing';
      const target = schemaAt(configSchema, issue.path);
      const wantsInt = target !== undefined && isIntegerSchema(target);
      const expected = wantsInt ? 'an integer' : (EXPECTED[issue.expected] ?? issue.expected);
      let hint = '';
      if (input === null && (issue.expected === 'object' || issue.expected === 'record')) {
        hint = '; write {} for an empty mapping';
      } else if (
        typeof input === 'string' &&
        template === undefined &&
        ((issue.expected !== 'string' && DECIMAL.test(input)) ||
          (issue.expected === 'boolean' && (input === 'true' || input === 'false')))
      ) {
        hint = '; remove the quotes';
      }
      return `expected ${expected}, ${got}${origin}${hint}`;
    }
    case 'too_small':
    case 'too_big': {
      const small = issue.code === 'too_small';
      const bound = small ? issue.minimum : issue.maximum;
      if (issue.origin === 'string') {
        if (small && Number(bound) === 1) return 'must not be empty';
        return `must be at ${small ? 'least' : 'most'} ${bound} characters long`;
      }
      if (issue.origin === 'array') {
        return `must have at ${small ? 'least' : 'most'} ${bound} ${Number(bound) === 1 ? 'entry' : 'entries'}`;
      }
      const relation = small
        ? issue.inclusive
          ? 'at least'
          : 'greater than'
        : issue.inclusive
          ? 'at most'
          : 'less than';
      return `must be ${relation} ${bound} (${got})${origin}`;
    }
    case 'invalid_value': {
      const options = issue.values.map((v) => JSON.stringify(v));
      const suggestion =
        typeof input === 'string'
          ? closest(
              input,
              issue.values.filter((v): v is string => typeof v === 'string'),
            )
          : undefined;
      const didYouMean =
        suggestion === undefined ? '' : `; did you mean ${JSON.stringify(suggestion)}?`;
      return `must be one of ${joinOr(options)} (${got}${didYouMean})${origin}`;
    }
    case 'invalid_union': {
      const expected = issue.errors.map((branch) => {
        const only = branch.length === 1 ? branch[0] : undefined;
        if (only?.code !== 'invalid_type' || only.path.length !== 0) return undefined;
        return only.expected === 'boolean'
          ? 'a boolean'
          : (EXPECTED[only.expected] ?? only.expected);
      });
      if (expected.every((e): e is string => e !== undefined)) {
        return `expected ${joinOr([...new Set(expected)])}, ${got}${origin}`;
      }
      return `${issue.message} (${got})${origin}`;
    }
    default:
      return `${issue.message}${origin}`;
  }
}

function issuesToProblems(
  issues: readonly Issue[],
  fromTemplate: ReadonlyMap<string, string>,
): Problem[] {
  const kept: Issue[] = [];
  // z.int() reports its own safe-integer bound next to the field's real bound; keep the tighter.
  const boundIndex = new Map<string, number>();
  for (const issue of issues) {
    if (issue.code !== 'too_big' && issue.code !== 'too_small') {
      kept.push(issue);
      continue;
    }
    const key = `${formatPath(issue.path)}\u0000${issue.code}`;
    const index = boundIndex.get(key);
    const seen = index === undefined ? undefined : kept[index];
    if (index === undefined || seen === undefined || seen.code !== issue.code) {
      boundIndex.set(key, kept.length);
      kept.push(issue);
    } else if (
      issue.code === 'too_big'
        ? Number(issue.maximum) < Number((seen as typeof issue).maximum)
        : Number(issue.minimum) > Number((seen as typeof issue).minimum)
    ) {
      kept[index] = issue;
    }
  }
  return kept.flatMap((issue) => issueToProblems(issue, fromTemplate));
}

function issueToProblems(issue: Issue, fromTemplate: ReadonlyMap<string, string>): Problem[] {
  if (issue.code === 'unrecognized_keys') {
    const known = objectKeys(schemaAt(configSchema, issue.path));
    return issue.keys.map((key) => {
      const suggestion = closest(key, known);
      const message =
        suggestion !== undefined
          ? `unknown key (did you mean ${JSON.stringify(suggestion)}?)`
          : `unknown key (expected one of: ${known.join(', ')})`;
      return { path: [...issue.path, key], message };
    });
  }
  // Messages the schema itself chose (custom rules, per-field error texts) already say it best.
  if (issue.code === 'custom' || !isDefaultMessage(issue)) {
    return [{ path: issue.path, message: issue.message }];
  }
  return [{ path: issue.path, message: describeIssue(issue, fromTemplate) }];
}
