/**
 * The config file: which one, read it, parse the YAML, substitute `${VAR}`s (env.ts), validate
 * (schema.ts; problems worded by problems.ts), then the checks that need a valid config
 * (checks.ts). Every failure is ConfigFileError or ConfigInvalidError, one line per problem.
 */
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { parseDocument } from 'yaml';
import { ConfigFileError, ConfigInvalidError } from '../errors';
import {
  kafkaPropertyProblems,
  referencedFileProblems,
  saslMechanismProblems,
  unsupportedKafkaPropertyProblems,
} from './checks';
import type { Problem } from './checks';
import { coerceSubstituted, substituteTree } from './env';
import type { Env, Substitution } from './env';
import type { ConfigPath } from './paths';
import { formatPath } from './paths';
import { issuesToProblems } from './problems';
import { configSchema } from './schema';
import type { Config } from './schema';

export type { Env } from './env';

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
