/**
 * Reads Kafka with kcat — a client independent of the forwarder's binding, so a test can't pass
 * because both sides share a bug.
 */
import { spawn } from 'node:child_process';
import { KAFKA_BROKERS } from './env';
import { alterTopicConfig, runCommand } from './topic-config';

export interface KafkaRecord {
  readonly key: Buffer | null;
  readonly value: Buffer;
}

// Length-prefixed fields survive binary and multi-line payloads: "<keylen>\n<key><vallen>\n<value>".
const FORMAT = '%K\\n%k%S\\n%s';

function parseRecords(out: Buffer): KafkaRecord[] {
  const records: KafkaRecord[] = [];
  let off = 0;
  const readLength = (): number => {
    const nl = out.indexOf(0x0a, off);
    if (nl < 0) throw new Error('kcat output truncated');
    const n = Number(out.subarray(off, nl).toString());
    off = nl + 1;
    return n;
  };
  while (off < out.length) {
    const keyLength = readLength();
    const key = keyLength < 0 ? null : out.subarray(off, off + keyLength);
    off += Math.max(keyLength, 0);
    const valueLength = readLength();
    const value = out.subarray(off, off + Math.max(valueLength, 0));
    off += Math.max(valueLength, 0);
    records.push({ key, value });
  }
  return records;
}

function kcat(args: string[], timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn('kcat', ['-b', KAFKA_BROKERS, '-q', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const chunks: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code !== 0 && signal === null) reject(new Error(`kcat exited ${code}: ${stderr.trim()}`));
      else resolve(Buffer.concat(chunks));
    });
  });
}

/**
 * Everything currently in the topic (partition 0 onwards, all partitions), from the beginning.
 * An absent topic reads as empty.
 */
export async function readAll(topic: string, timeoutMs = 30_000): Promise<KafkaRecord[]> {
  try {
    return parseRecords(
      await kcat(['-C', '-t', topic, '-o', 'beginning', '-e', '-f', FORMAT], timeoutMs),
    );
  } catch (err) {
    if (/Unknown topic|UNKNOWN_TOPIC/i.test(String(err))) return [];
    throw err;
  }
}

/**
 * Polls the topic until `done(records)` holds or the time runs out; returns the last read.
 * Used where records are still arriving (the forwarder delivers asynchronously).
 */
export async function readUntil(
  topic: string,
  done: (records: readonly KafkaRecord[]) => boolean,
  timeoutMs = 60_000,
): Promise<KafkaRecord[]> {
  const deadline = Date.now() + timeoutMs;
  let records: KafkaRecord[] = [];
  for (;;) {
    records = await readAll(topic, Math.max(5_000, deadline - Date.now()));
    if (done(records) || Date.now() >= deadline) return records;
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Reads until at least `count` records are in the topic (bounded by `timeoutMs`). */
export function readAtLeast(
  topic: string,
  count: number,
  timeoutMs = 60_000,
): Promise<KafkaRecord[]> {
  return readUntil(topic, (r) => r.length >= count, timeoutMs);
}

/** Count of records per numeric payload id (a payload is its id in decimal). */
export function idsOf(records: readonly { value: Buffer }[]): Map<number, number> {
  const seen = new Map<number, number>();
  for (const r of records) {
    const id = Number(r.value.toString());
    seen.set(id, (seen.get(id) ?? 0) + 1);
  }
  return seen;
}

/**
 * Records whose id (the payload) is lower than an earlier one of the same key: with the MQTT
 * topic as key, the records out of that topic's order in Kafka.
 */
export function outOfOrder(records: readonly KafkaRecord[]): number {
  const last = new Map<string, number>();
  let n = 0;
  for (const r of records) {
    const key = r.key?.toString() ?? '';
    const id = Number(r.value.toString());
    if (id < (last.get(key) ?? -1)) n++;
    last.set(key, Math.max(id, last.get(key) ?? -1));
  }
  return n;
}

/** Marker record that createTopic leaves as the first record of the topic. */
export const TOPIC_MARKER = '__created__';

/**
 * Creates a topic with topic-level broker config (e.g. a small max.message.bytes): a marker
 * record auto-creates it (kcat), then Kafka's own ConfigCommand (from the broker's jars) sets the
 * config. Not node-rdkafka's AdminClient: its native destructor aborts the process when the
 * garbage collector reclaims a disconnected client. Callers ignore the TOPIC_MARKER record.
 */
export async function createTopic(topic: string, config: Record<string, string>): Promise<void> {
  await markTopic(topic);
  await alterTopicConfig(topic, config);
}

/**
 * Auto-creates a topic by producing TOPIC_MARKER to it, so a test's stream is not held by the
 * first produce's wait for a topic Kafka is still creating (seconds).
 */
export async function markTopic(topic: string): Promise<void> {
  const args = ['-b', KAFKA_BROKERS, '-P', '-t', topic];
  await runCommand('kcat', args, `kcat ${args.join(' ')}`, Buffer.from(TOPIC_MARKER));
}

/** Records with their headers as kcat prints them (`name=value,...`); values are text. */
export async function readWithHeaders(
  topic: string,
  timeoutMs = 30_000,
): Promise<{ headers: string; value: string }[]> {
  const out = await kcat(
    ['-C', '-t', topic, '-o', 'beginning', '-e', '-f', '%h\\t%s\\n'],
    timeoutMs,
  );
  return out
    .toString()
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => {
      const tab = l.indexOf('\t');
      return { headers: l.slice(0, tab), value: l.slice(tab + 1) };
    });
}
