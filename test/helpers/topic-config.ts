/**
 * Changes a topic's broker config while a test runs (e.g. raising max.message.bytes), with
 * Kafka's own ConfigCommand from the broker's jars (createTopic in kafka.ts uses it too). Not
 * node-rdkafka's AdminClient (see createTopic for why).
 */
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { KAFKA_BROKERS } from './env';

function kafkaLibs(): string {
  const cache =
    process.env['MKF_CACHE_DIR'] ?? path.join(os.homedir(), '.cache', 'mqtt-kafka-forwarder');
  const kafkaDir = readdirSync(cache).find((d) => d.startsWith('kafka-'));
  if (!kafkaDir) throw new Error(`no Kafka jars in ${cache}; run scripts/setup`);
  return path.join(cache, kafkaDir, 'libs');
}

/**
 * Runs `cmd` with `input` on its stdin; resolves with its output (stdout and stderr), rejects
 * naming `label` when it fails or exits non-zero. Bounded: SIGKILL after 60 s.
 */
export function runCommand(
  cmd: string,
  args: readonly string[],
  label: string,
  input?: Buffer,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`${label} exited ${code}: ${out.trim()}`));
    });
    child.stdin.end(input);
  });
}

/** Runs ConfigCommand with `args` for one topic; resolves with its output (bounded: 60 s). */
function configCommand(topic: string, args: readonly string[]): Promise<string> {
  const argv = [
    '-cp',
    `${kafkaLibs()}/*`,
    'kafka.admin.ConfigCommand',
    '--bootstrap-server',
    KAFKA_BROKERS,
    '--entity-type',
    'topics',
    '--entity-name',
    topic,
    ...args,
  ];
  return runCommand('java', argv, `ConfigCommand ${args.join(' ')} (${topic})`);
}

/** Sets topic-level configs (`--alter --add-config`), e.g. `{ 'max.message.bytes': '1000000' }`. */
export async function alterTopicConfig(
  topic: string,
  config: Record<string, string>,
): Promise<void> {
  const settings = Object.entries(config)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  await configCommand(topic, ['--alter', '--add-config', settings]);
}

/** The topic's dynamic (explicitly set) config, as ConfigCommand `--describe` lists it. */
export async function describeTopicConfig(topic: string): Promise<Record<string, string>> {
  const out = await configCommand(topic, ['--describe']);
  const config: Record<string, string> = {};
  // "Dynamic configs for topic t are:\n  max.message.bytes=2000 sensitive=false synonyms={...}"
  for (const m of out.matchAll(/^\s+([a-z0-9.]+)=(\S*) sensitive=/gm)) config[m[1]!] = m[2]!;
  return config;
}
