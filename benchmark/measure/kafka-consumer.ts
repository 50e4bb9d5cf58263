/**
 * The benchmark's Kafka consumer: kcat, one process per partition. A client independent of the
 * forwarder's binding, so a bug shared by producer and consumer cannot hide a loss.
 *
 * kcat buffers its stdout (4 KB) when it is a pipe, and `-u` (a write per record) costs
 * 5.5 µs of CPU per record, measured here: a fifth of a core at 40k msg/s, taken from the
 * forwarder on a 2-core machine. So kcat runs buffered and the last few records of a run
 * (under 4 KB) are flushed by a `flush()`: SIGTERM makes kcat exit cleanly, writing its buffer,
 * and a new kcat resumes at the next offset of its partition.
 */
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import type { Sink, SinkInfo } from '../types';

export interface KafkaRecordMeta {
  readonly partition: number;
  readonly offset: number;
  /** Record timestamp (ms): the broker's append time when the topic uses LogAppendTime. */
  readonly timestamp: number;
}

export type TimestampType = 'LogAppendTime' | 'CreateTime' | 'unknown';

// "<partition> <offset> <timestamp> <value length>\n<value>": survives binary payloads.
const FORMAT = '%p %o %T %S\\n%s';
const STOP_GRACE_MS = 5_000;

export function kcatRun(args: readonly string[], timeoutMs = 15_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'kcat',
      [...args],
      { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`kcat ${args.join(' ')}: ${err.message} ${stderr}`.trim()));
        else resolve(stdout);
      },
    );
  });
}

/** Partition ids of `topic`, or [] when it does not exist. */
export async function partitionsOf(brokers: string, topic: string): Promise<number[]> {
  const meta = JSON.parse(await kcatRun(['-b', brokers, '-L', '-t', topic, '-J'])) as {
    topics?: { topic: string; error?: string; partitions?: { partition: number }[] }[];
  };
  const t = meta.topics?.find((x) => x.topic === topic);
  if (!t || t.error) return [];
  return (t.partitions ?? []).map((p) => p.partition).sort((a, b) => a - b);
}

/** End offset (next offset to be written) of each partition. */
export async function endOffsets(
  brokers: string,
  topic: string,
  partitions: readonly number[],
): Promise<Map<number, number>> {
  const out = await kcatRun([
    '-b',
    brokers,
    '-Q',
    ...partitions.flatMap((p) => ['-t', `${topic}:${p}:-1`]),
  ]);
  const ends = new Map<number, number>();
  for (const m of out.matchAll(/\[(\d+)\] offset (-?\d+)/g)) ends.set(Number(m[1]), Number(m[2]));
  return ends;
}

/**
 * Makes sure the topic exists before the run, so neither the forwarder's first produce nor the
 * consumer's start waits for auto-creation: produces one marker record (the consumer counts it
 * as foreign). Needs `auto.create.topics.enable` on the broker, as the local stack has.
 */
export async function ensureTopic(brokers: string, topic: string): Promise<void> {
  if ((await partitionsOf(brokers, topic)).length > 0) return;
  await new Promise<void>((resolve, reject) => {
    const child = spawn('kcat', ['-b', brokers, '-P', '-t', topic], {
      stdio: ['pipe', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`kcat could not create topic ${topic}: ${stderr.trim()}`));
    });
    child.stdin.end('mkf-benchmark-topic-marker');
  });
  const deadline = Date.now() + 15_000;
  while ((await partitionsOf(brokers, topic)).length === 0) {
    if (Date.now() > deadline) throw new Error(`topic ${topic} did not appear within 15 s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** How the broker stamps records of this topic, read from one record at `offset`. */
export async function timestampType(
  brokers: string,
  topic: string,
  partition: number,
  offset: number,
): Promise<TimestampType> {
  try {
    const out = await kcatRun([
      '-b',
      brokers,
      '-C',
      '-t',
      topic,
      '-p',
      String(partition),
      '-o',
      String(offset),
      '-c',
      '1',
      '-e',
      '-J',
    ]);
    const t = (JSON.parse(out.trim().split('\n')[0] ?? '{}') as { tstype?: string }).tstype;
    return t === 'logappend' ? 'LogAppendTime' : t === 'create' ? 'CreateTime' : 'unknown';
  } catch {
    return 'unknown';
  }
}

class PartitionReader {
  private child: ChildProcess | undefined;
  private buf: Buffer = Buffer.alloc(0);
  private exited: Promise<void> = Promise.resolve();
  stderr = '';

  constructor(
    private readonly brokers: string,
    private readonly topic: string,
    readonly partition: number,
    /** Next offset to read. */
    public next: number,
    private readonly onRecord: (meta: KafkaRecordMeta, value: Buffer) => void,
  ) {}

  start(): void {
    const child = spawn(
      'kcat',
      [
        '-b',
        this.brokers,
        '-C',
        '-q',
        '-t',
        this.topic,
        '-p',
        String(this.partition),
        '-o',
        String(this.next),
        '-f',
        FORMAT,
        // librdkafka waits up to 500 ms for data by default; arrivals are timed by the broker's
        // timestamps anyway, but the live progress should not trail by half a second.
        '-X',
        'fetch.wait.max.ms=50',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.child = child;
    this.buf = Buffer.alloc(0);
    child.stdout!.on('data', (c: Buffer) => this.onData(c));
    child.stderr!.on('data', (c: Buffer) => {
      this.stderr = (this.stderr + c.toString()).slice(-2000);
    });
    this.exited = new Promise((resolve) => {
      child.on('close', () => resolve());
      child.on('error', (err) => {
        this.stderr += String(err);
        resolve();
      });
    });
  }

  private onData(chunk: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    let off = 0;
    for (;;) {
      const nl = this.buf.indexOf(0x0a, off);
      if (nl < 0) break;
      const head = this.buf.toString('latin1', off, nl).split(' ');
      const len = Math.max(0, Number(head[3]));
      if (nl + 1 + len > this.buf.length) break;
      const meta: KafkaRecordMeta = {
        partition: Number(head[0]),
        offset: Number(head[1]),
        timestamp: Number(head[2]),
      };
      this.next = meta.offset + 1;
      this.onRecord(meta, this.buf.subarray(nl + 1, nl + 1 + len));
      off = nl + 1 + len;
    }
    this.buf = this.buf.subarray(off);
  }

  /** Ends kcat cleanly (it writes out its buffer), bounded: SIGKILL after a grace period. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    await this.exited;
    clearTimeout(timer);
  }
}

export class KcatConsumer {
  private readers: PartitionReader[] = [];

  constructor(
    private readonly brokers: string,
    private readonly topic: string,
    private readonly onRecord: (meta: KafkaRecordMeta, value: Buffer) => void,
  ) {}

  /** Starts reading every partition at its current end: only records written from now on. */
  async start(): Promise<void> {
    const partitions = await partitionsOf(this.brokers, this.topic);
    if (partitions.length === 0) throw new Error(`kafka topic ${this.topic} does not exist`);
    const ends = await endOffsets(this.brokers, this.topic, partitions);
    this.readers = partitions.map(
      (p) => new PartitionReader(this.brokers, this.topic, p, ends.get(p) ?? 0, this.onRecord),
    );
    for (const r of this.readers) r.start();
  }

  /** Gets the records kcat still buffers, then goes on reading where it stopped. */
  async flush(): Promise<void> {
    await Promise.all(this.readers.map((r) => r.stop()));
    for (const r of this.readers) r.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.readers.map((r) => r.stop()));
  }

  /** Next offset to read per partition. */
  positions(): { partition: number; next: number }[] {
    return this.readers.map((r) => ({ partition: r.partition, next: r.next }));
  }

  lastError(): string {
    return this.readers
      .map((r) => r.stderr.trim())
      .filter((s) => s.length > 0)
      .join('; ');
  }
}

/** The benchmark's sink: records of `topic` written after start(), timed by Kafka timestamps. */
export class KafkaSink implements Sink {
  readonly name = 'kafka (kcat)';
  private consumer: KcatConsumer | undefined;
  private first: KafkaRecordMeta | undefined;

  constructor(
    private readonly brokers: string,
    private readonly topic: string,
    private readonly createTopic: boolean,
  ) {}

  async start(onPayload: (value: Buffer, arrivedAt: number) => void): Promise<void> {
    if (this.createTopic) await ensureTopic(this.brokers, this.topic);
    this.consumer = new KcatConsumer(this.brokers, this.topic, (meta, value) => {
      this.first ??= meta;
      onPayload(value, meta.timestamp);
    });
    await this.consumer.start();
  }

  async flush(): Promise<void> {
    await this.consumer?.flush();
  }

  async stop(): Promise<SinkInfo> {
    await this.consumer?.stop();
    const tsType = this.first
      ? await timestampType(this.brokers, this.topic, this.first.partition, this.first.offset)
      : 'unknown';
    return {
      arrival:
        tsType === 'LogAppendTime'
          ? 'Kafka LogAppendTime (broker append, ms resolution)'
          : tsType === 'CreateTime'
            ? "Kafka CreateTime (the forwarder's produce() call, ms resolution): not when Kafka stored it"
            : 'Kafka record timestamp (type unknown, ms resolution)',
      kafkaTimestampType: tsType,
      consumerError: this.consumer?.lastError() ?? '',
    };
  }
}
