/**
 * Checks of a schema-valid config against the world outside the file: the files it names, and
 * librdkafka's own view of the producer properties. Both would otherwise fail only at run time,
 * after the forwarder connected to MQTT (an ENOENT stack trace, or a binding error on every
 * producer connect attempt); here they become config problems, one line each, at load.
 */
import { accessSync, closeSync, constants, openSync, statSync } from 'node:fs';
import path from 'node:path';
import { Producer } from 'node-rdkafka';
import { buildProducerConfig } from './kafka';
import { isSecretKafkaKey } from './kafka-properties';
import type { KafkaProps } from './kafka-properties';
import type { Config } from './schema';

export interface Problem {
  path: readonly PropertyKey[];
  message: string;
}

/** `file` as the user wrote it, and where it resolved to if that differs. */
export function showPath(file: string): { resolved: string; shown: string } {
  const resolved = path.resolve(file);
  return { resolved, shown: resolved === file ? file : `${file} (${resolved})` };
}

/** Why a file cannot be read, in words (errno codes mean little to a new user). */
export function fileFailure(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT':
      return 'no such file';
    case 'ENOTDIR':
      return 'a part of the path is not a directory';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'it is a directory';
    case 'ELOOP':
      return 'too many symbolic links';
    default:
      return err instanceof Error ? err.message : String(err);
  }
}

/**
 * Why `file` cannot be read by the forwarder or librdkafka, or undefined. Opening it (and closing
 * it at once) is the only test that agrees with what the reader will see: permission bits, ACLs
 * and read-only mounts all show there. A relative path is relative to the working directory,
 * like every reader of these files (Node's fs, librdkafka) resolves it.
 */
export function unreadableFile(file: string, allowDirectory = false): string | undefined {
  const { resolved, shown } = showPath(file);
  try {
    // stat follows symlinks: Kubernetes mounts each Secret key as a link into a ..data folder.
    const stat = statSync(resolved);
    if (stat.isDirectory() && !allowDirectory) return `cannot read ${shown}: it is a directory`;
    if (!stat.isDirectory() && !stat.isFile()) {
      return `cannot read ${shown}: not a regular file`;
    }
    if (stat.isDirectory()) accessSync(resolved, constants.R_OK | constants.X_OK);
    else closeSync(openSync(resolved, 'r'));
  } catch (err) {
    return `cannot read ${shown}: ${fileFailure(err)}`;
  }
  return undefined;
}

/** librdkafka properties that name a file, by the `security.protocol` family that reads them. */
export const KAFKA_FILE_PROPERTIES: Readonly<Record<string, 'ssl' | 'sasl'>> = {
  'ssl.ca.location': 'ssl',
  'ssl.certificate.location': 'ssl',
  'ssl.key.location': 'ssl',
  'ssl.crl.location': 'ssl',
  'ssl.keystore.location': 'ssl',
  'ssl.engine.location': 'ssl',
  'sasl.kerberos.keytab': 'sasl',
  'sasl.oauthbearer.assertion.file': 'sasl',
  'sasl.oauthbearer.assertion.private.key.file': 'sasl',
  'sasl.oauthbearer.assertion.jwt.template.file': 'sasl',
};

/** `ssl.ca.location` may also name a directory of certificates, or ask librdkafka to probe. */
const CA_PROBE = 'probe';

/**
 * Every file the config names that cannot be read: `mqtt.tls.*` always (they are read when the
 * MQTT connection starts), librdkafka's file properties only when `security.protocol` makes
 * librdkafka read them, so a reference config with a stale `ssl.ca.location` under PLAINTEXT
 * keeps working as it did there. (`mqtt.credentials.password_file` and `kafka.config_files` are
 * read at load already and report their own problems.)
 */
export function referencedFileProblems(cfg: Config): Problem[] {
  const problems: Problem[] = [];
  const tls = cfg.mqtt.tls;
  if (tls !== undefined) {
    for (const key of ['ca_cert', 'client_cert', 'client_key'] as const) {
      const file = tls[key];
      const why = file === undefined ? undefined : unreadableFile(file);
      if (why !== undefined) problems.push({ path: ['mqtt', 'tls', key], message: why });
    }
  }
  const props = cfg.kafka.config;
  const protocol = String(props['security.protocol'] ?? 'plaintext').toLowerCase();
  const uses = { ssl: protocol.endsWith('ssl'), sasl: protocol.startsWith('sasl') };
  for (const [key, family] of Object.entries(KAFKA_FILE_PROPERTIES)) {
    const value = props[key];
    if (value === undefined || !uses[family]) continue;
    const file = String(value);
    if (file === '' || (key === 'ssl.ca.location' && file === CA_PROBE)) continue;
    const why = unreadableFile(file, key === 'ssl.ca.location');
    if (why !== undefined) problems.push({ path: ['kafka', 'config', key], message: why });
  }
  return problems;
}

/**
 * Producers made only to validate properties. They are never connected, so they hold no thread
 * or socket, only librdkafka's configuration objects; but they must never be collected: the
 * binding's destructor of such a client aborts the process when a garbage collection runs it
 * ("Assertion failed: (env) != nullptr" in RemoveEnvironmentCleanupHook, from a collection
 * that allocation triggers; seen in loops of 1,000 such clients, as docs/DESIGN.md saw it for a
 * disconnected AdminClient). So they live as long as the process (the process exit destroys
 * them without trouble), and `verdicts` makes at most one per distinct input.
 */
const validationClients: Producer[] = [];
const verdicts = new Map<string, string | undefined>();

/** librdkafka's complaint about these constructor arguments, or undefined if it takes them. */
function librdkafkaRejects(global: KafkaProps, topic: KafkaProps): string | undefined {
  const key = JSON.stringify([global, topic]);
  if (verdicts.has(key)) return verdicts.get(key);
  let verdict: string | undefined;
  try {
    // Copies: the binding's wrapper deletes the keys it handles itself from what it is given.
    validationClients.push(
      new Producer(
        { ...global } as ConstructorParameters<typeof Producer>[0],
        { ...topic } as ConstructorParameters<typeof Producer>[1],
      ),
    );
  } catch (err) {
    verdict = (err instanceof Error ? err.message : String(err)).trim();
  }
  verdicts.set(key, verdict);
  return verdict;
}

/**
 * What librdkafka says about the producer configuration the forwarder would build from `cfg`
 * (kafka.config, kafka.config_files and the forwarder's defaults, global and topic level). The
 * binding checks each property when a client is constructed, which involves no connection; it
 * stops at the first bad one, so on failure each property is tried alone to name every one.
 */
export function kafkaPropertyProblems(cfg: Config): Problem[] {
  const { global, topic } = buildProducerConfig(cfg);
  const whole = librdkafkaRejects(global, topic);
  if (whole === undefined) return [];
  const fromFile = new Set(Object.keys(cfg.kafka.config_files ?? {}));
  const isSecret = (key: string): boolean => fromFile.has(key) || isSecretKafkaKey(key);
  const problems: Problem[] = [];
  // In the order the user wrote them, whatever level each goes to; the defaults first.
  const written = [...Object.keys(cfg.kafka.config)];
  const entries = [
    ...Object.entries(global).map(([key, value]) => ({ key, value, topicLevel: false })),
    ...Object.entries(topic).map(([key, value]) => ({ key, value, topicLevel: true })),
  ].sort((a, b) => written.indexOf(a.key) - written.indexOf(b.key));
  for (const { key, value, topicLevel } of entries) {
    const one = { [key]: value };
    const why = topicLevel ? librdkafkaRejects({}, one) : librdkafkaRejects(one, {});
    if (why === undefined) continue;
    const at = fromFile.has(key)
      ? ['kafka', 'config_files', key]
      : cfg.kafka.config[key] !== undefined
        ? ['kafka', 'config', key]
        : ['kafka'];
    // librdkafka names the property by its canonical name (linger.ms is queue.buffering.max.ms)
    // and does not always quote the value; the path names the key as written.
    const quotesValue = why.includes(String(value));
    const aboutValue = !why.startsWith('No such configuration property');
    const shown = isSecret(key)
      ? quotesValue
        ? `invalid value for configuration property "${key}" (value hidden)`
        : why
      : quotesValue || !aboutValue
        ? why
        : `${why} (got ${JSON.stringify(value)})`;
    problems.push({ path: at, message: `librdkafka: ${shown}` });
  }
  // Only a combination was refused; the binding does not say which part, so name the section.
  if (problems.length === 0) {
    const leaks = Object.entries({ ...global, ...topic }).some(
      ([key, value]) => isSecret(key) && whole.includes(String(value)),
    );
    const shown = leaks
      ? 'the configuration was refused (message hidden: it quotes a secret)'
      : whole;
    problems.push({ path: ['kafka', 'config'], message: `librdkafka: ${shown}` });
  }
  return problems;
}

/** The SASL mechanisms librdkafka 2.12 implements (with the SASL library the build found). */
const SASL_MECHANISMS = ['GSSAPI', 'PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512', 'OAUTHBEARER'];

/**
 * librdkafka takes any `sasl.mechanism` when the property is set and refuses an unknown one only
 * when a client starts, on every connect attempt; named here so that `check-config` catches it.
 */
export function saslMechanismProblems(cfg: Config): Problem[] {
  const props = cfg.kafka.config;
  const protocol = String(props['security.protocol'] ?? 'plaintext').toLowerCase();
  if (!protocol.startsWith('sasl')) return [];
  const problems: Problem[] = [];
  for (const key of ['sasl.mechanism', 'sasl.mechanisms']) {
    const value = props[key];
    if (value === undefined || SASL_MECHANISMS.includes(String(value))) continue;
    problems.push({
      path: ['kafka', 'config', key],
      message: `unsupported SASL mechanism ${JSON.stringify(String(value))}; librdkafka supports ${SASL_MECHANISMS.join(', ')}`,
    });
  }
  return problems;
}

/**
 * librdkafka properties the forwarder cannot honour. librdkafka calls its log callback from its
 * own threads, and the binding's handler can run before its setup finished (a crash, DESIGN.md),
 * so the producers log nothing; `debug` would log regardless of `log_level`.
 */
const UNSUPPORTED_KAFKA_PROPERTIES: Readonly<Record<string, string>> = {
  debug:
    "not supported: librdkafka's debug lines are not printed by the forwarder, and its log callback is off because it can crash the Kafka binding; Kafka errors are logged as the forwarder's own lines",
  log_level:
    "not supported: librdkafka's log callback is off because it can crash the Kafka binding; use the top-level log_level for the forwarder's own lines",
};

export function unsupportedKafkaPropertyProblems(cfg: Config): Problem[] {
  return Object.keys(cfg.kafka.config)
    .filter((key) => UNSUPPORTED_KAFKA_PROPERTIES[key] !== undefined)
    .map((key) => ({
      path: ['kafka', 'config', key],
      message: UNSUPPORTED_KAFKA_PROPERTIES[key]!,
    }));
}
