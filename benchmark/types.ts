/**
 * The benchmark's shared types: options, results (the JSON written to `result.json` and
 * `matrix.json`) and the interfaces between its parts. Kept in one module that imports nothing,
 * so that no part has to import another just for a type, and the result shapes can be read in
 * one place.
 */

// ---------------------------------------------------------------------------------------------
// MQTT

/** 4 = MQTT 3.1.1, 5 = MQTT 5. */
export type ProtocolVersion = 4 | 5;
export type QoS = 0 | 1 | 2;

// ---------------------------------------------------------------------------------------------
// The forwarder under test with `processes: N` (system/forwarder-process.ts)

/**
 * How the load's mapping is laid out over N ingest processes. `split`: one mapping per MQTT
 * topic of the load (`<prefix>/<t>`), all to the one Kafka topic, so mapping t is owned by
 * process t mod N and per-topic order holds. `share`: the one `<prefix>/#` mapping with
 * `share: {}`, subscribed by all N as `$share/<group>/<prefix>/#`: the broker splits the messages,
 * and per-topic order then depends on the broker.
 */
export type ProcessLayout = 'split' | 'share';
export const PROCESS_LAYOUTS: readonly ProcessLayout[] = ['split', 'share'];

// ---------------------------------------------------------------------------------------------
// The load generator (load/)

/**
 * `raw`: the lean client in load/raw-mqtt.ts (batched writes, no per-message allocation), so
 * that the load generator takes as little CPU as possible from the system under test on a
 * shared machine. `mqttjs`: mqtt.js, the client the forwarder itself uses.
 */
export type PublisherClient = 'raw' | 'mqttjs';
export const PUBLISHER_CLIENTS: readonly PublisherClient[] = ['raw', 'mqttjs'];

export interface PublisherConfig {
  /** Default 'raw'. */
  readonly client?: PublisherClient;
  readonly host: string;
  readonly port: number;
  readonly protocolVersion: ProtocolVersion;
  readonly qos: QoS;
  readonly messages: number;
  /** Messages go round robin to `${topicPrefix}/0` … `${topicPrefix}/${topics - 1}`. */
  readonly topics: number;
  readonly topicPrefix: string;
  readonly payloadSize: number;
  /** Messages per second over all connections; 0 = as fast as the window allows. */
  readonly rate: number;
  /** Publishes not yet completed (QoS 1/2: acknowledged; QoS 0: written) per connection. */
  readonly window: number;
  /** Each topic always uses the same connection, so per-topic order is defined. */
  readonly connections: number;
  readonly runId: number;
  /** The whole publish phase ends after this, whatever is left unsent. */
  readonly timeoutMs: number;
}

export interface PublisherProgress {
  /** Handed to the MQTT client (timestamped and queued). */
  sent: number;
  /** Completed: acknowledged by the broker (QoS 1: PUBACK, QoS 2: PUBCOMP) or written (QoS 0). */
  acked: number;
}

export interface PublisherResult extends PublisherProgress {
  readonly timedOut: boolean;
  readonly error?: string;
  /** Epoch ms of the first publish and of the last completion. */
  readonly startedAt: number;
  readonly endedAt: number;
  /**
   * Fraction of the publish phase the publisher thread's event loop was busy (0..1). Counts time
   * the thread was runnable but waiting for a core, so on a crowded machine see cpuPct too.
   */
  readonly busy: number;
  /** CPU the publisher thread itself used, % of one core (from /proc/thread-self). */
  readonly cpuPct: number;
  /** Publish time (epoch ms) per sequence id; NaN for ids never sent. */
  readonly publishTimes: Float64Array;
}

/** What the publisher thread posts to the main thread. */
export type PublisherMessage =
  | ({ readonly type: 'progress' } & PublisherProgress)
  | ({ readonly type: 'done'; readonly publishTimes: ArrayBuffer } & Omit<
      PublisherResult,
      'publishTimes'
    >);

/** The header of a benchmark payload (load/payload.ts). */
export interface DecodedPayload {
  readonly runId: number;
  readonly seq: number;
  readonly topicIndex: number;
  readonly publishedAt: number;
}

// ---------------------------------------------------------------------------------------------
// Where a run's messages are counted: the Kafka topic (benchmark) or an MQTT subscriber (ceiling)

export interface SinkInfo {
  /** What a message's arrival time means, for the report. */
  readonly arrival: string;
  readonly [key: string]: unknown;
}

export interface Sink {
  readonly name: string;
  /** Resolves once the sink receives everything published from now on. */
  start(onPayload: (value: Buffer, arrivedAt: number) => void): Promise<void>;
  /** Hands over anything buffered; called when arrivals stall before the end. */
  flush(): Promise<void>;
  stop(): Promise<SinkInfo>;
}

// ---------------------------------------------------------------------------------------------
// One run (run.ts) and its figures (measure/)

export interface RunOptions {
  readonly label: string;
  readonly messages: number;
  readonly qos: QoS;
  readonly rate: number;
  /** Kafka values are `wrap_as_json` wrappers: unwrap before checking. */
  readonly wrapped: boolean;
  readonly payloadSize: number;
  readonly topics: number;
  readonly protocolVersion: ProtocolVersion;
  readonly connections: number;
  readonly window: number;
  /** The load generator's MQTT client; default 'raw'. */
  readonly publisherClient?: PublisherClient;
  readonly mqttHost: string;
  readonly mqttPort: number;
  readonly topicPrefix: string;
  /**
   * Messages published (and awaited in the sink) before the measured run, under another run id:
   * the first records pay for topic metadata and connection set-up, which is not throughput.
   */
  readonly warmup?: number;
  /** Sampled for RSS and CPU while the run lasts, with all its descendants. */
  readonly forwarderPid?: number;
  /**
   * The forwarder's `processes` (ingest processes under a supervisor); with forwarderPid, the
   * run waits until that many are children of it before it starts. Absent: 1.
   */
  readonly processes?: number;
  /** Other processes whose CPU is reported (brokers); this process is always included. */
  readonly watchPids?: Readonly<Record<string, number>>;
  readonly idleTimeoutMs: number;
  readonly timeoutMs: number;
  /** SVG written here when set. */
  readonly plotFile?: string;
  readonly quiet?: boolean;
}

export type EndReason = 'complete' | 'idle-timeout' | 'timeout' | 'publish-error';

export interface ReceiptCounts {
  /** Records of this run, duplicates included. */
  readonly received: number;
  readonly unique: number;
  readonly duplicates: number;
  /** First copies that arrived after a higher sequence id of the same topic. */
  readonly outOfOrder: number;
  /** Topics with at least one out-of-order message. */
  readonly outOfOrderTopics: number;
  /** Records that are not benchmark payloads of this run (markers, earlier runs, bad wrappers). */
  readonly foreign: number;
}

export interface LatencySummary {
  readonly count: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
}

export interface Throughput {
  /** Unique messages / (last arrival − first publish). */
  readonly endToEndMsgS: number;
  /** Rate between the arrivals of the 10th and the 90th percentile message: no ramp-up/tail. */
  readonly steadyMsgS: number;
  readonly firstPublishAt: number;
  readonly lastArrivalAt: number;
  readonly durationS: number;
}

export interface Series {
  readonly bucketMs: number;
  /** Epoch ms of bucket 0 (the first publish). */
  readonly startAt: number;
  /** msg/s per bucket. */
  readonly published: number[];
  readonly delivered: number[];
  /** Latency (ms) of the messages that arrived in the bucket; null where none did. */
  readonly latP50: (number | null)[];
  readonly latP99: (number | null)[];
  readonly latMax: (number | null)[];
}

export interface ThreadCpu {
  readonly tid: number;
  readonly comm: string;
  readonly cpuS: number;
  /** The process the thread belongs to, when it is not the sampled root (a child process). */
  readonly pid?: number;
}

/** One process of the sampled tree (the root, or a descendant seen at a sample). */
export interface ProcMember {
  readonly pid: number;
  readonly ppid: number;
  readonly comm: string;
  /** CPU over the sampled period (a process that exited: as last sampled). */
  readonly cpuS: number;
  readonly mainThreadCpuS: number;
  readonly rssMaxMb: number;
  /** Seconds after the sampler's start when it was first seen (0: already there). */
  readonly firstSeenS: number;
  /** Seconds after the start when it was first missing; absent: alive at the end. */
  readonly goneS?: number;
}

/**
 * CPU and RSS of the sampled process and all its descendants (the forwarder's supervisor and its
 * ingest processes): figures are sums over the tree.
 */
export interface ProcSummary {
  /** The root: the pid that was given. */
  readonly pid: number;
  /** Highest sum of the tree's RSS at one sample. */
  readonly rssMaxMb: number;
  readonly rssEndMb: number;
  /** Average CPU over the sampled period, in % of one core (200 = both cores of two). */
  readonly cpuPct: number;
  readonly cpuS: number;
  /** Sum of each process's main thread. */
  readonly mainThreadCpuS: number;
  readonly kafkaThreadsCpuS: number;
  readonly otherThreadsCpuS: number;
  /** Busiest threads of the tree, most CPU first. */
  readonly threads: ThreadCpu[];
  /** Every process seen (the root first); optional only for results written before trees. */
  readonly processes?: ProcMember[];
  /**
   * Samples: ms since start, the tree's RSS MB, CPU % since the previous sample, processes
   * alive (absent in results written before trees).
   */
  readonly samples: { t: number; rssMb: number; cpuPct: number; processes?: number }[];
}

export interface MachineSummary {
  /** Share of all CPUs busy during the run, 0–100. */
  readonly busyPct: number;
  readonly cores: number;
  /** CPU of the named processes, % of one core. */
  readonly processes: { name: string; pid: number; cpuPct: number }[];
}

export interface RunResult {
  readonly label: string;
  readonly sink: string;
  readonly startedAt: string;
  readonly params: Omit<RunOptions, 'quiet' | 'plotFile' | 'label'>;
  readonly publisher: Omit<PublisherResult, 'publishTimes'> & {
    readonly msgS: number;
    readonly notSent: number;
  };
  readonly counts: ReceiptCounts & { readonly lost: number; readonly missingSample: number[] };
  readonly warmup: { readonly messages: number; readonly arrived: number };
  readonly throughput: Throughput | undefined;
  readonly latencyMs: LatencySummary;
  readonly sinkInfo: SinkInfo;
  readonly forwarder?: Omit<ProcSummary, 'samples'>;
  readonly machine: MachineSummary;
  readonly endReason: EndReason;
  readonly drainS: number;
  readonly plotFile?: string;
  readonly series: Series;
  readonly procSamples?: ProcSummary['samples'];
}

// ---------------------------------------------------------------------------------------------
// The ceilings (ceilings/, `npm run native-bench`)

/** The MQTT-only ceiling's subscriber: `mqttjs` (a bare mqtt.js client) or `raw` (ceilings/). */
export type SubscriberClient = 'mqttjs' | 'raw';
export const SUBSCRIBER_CLIENTS: readonly SubscriberClient[] = ['mqttjs', 'raw'];

/** An MQTT-only ceiling run, with the subscriber that measured it. */
export type MqttCeiling = RunResult & { readonly subscriber: SubscriberClient };

export interface PublisherCeiling {
  readonly client: PublisherClient;
  readonly qos: QoS;
  readonly messages: number;
  readonly acked: number;
  readonly msgS: number;
  /** Fraction of the time the publisher thread was busy. */
  readonly busy: number;
  /** CPU of the publisher thread, % of one core. */
  readonly cpuPct: number;
  readonly timedOut: boolean;
  readonly error?: string;
}

export interface KafkaCeilingResult {
  readonly workers: number;
  readonly mode: string;
  readonly messages: number;
  readonly delivered: number;
  readonly failed: number;
  readonly msgS: number;
  readonly durationS: number;
  /** Submit → result of one batch, ms. */
  readonly batchP50Ms: number;
  readonly batchP99Ms: number;
  /** Main thread busy fraction while producing (packing, dispatch, results). */
  readonly mainBusy: number;
  readonly timedOut: boolean;
}

export type DispatchMode = 'transfer' | 'clone-copies' | 'clone-views';

/** What the dispatch round-trip bench hands its Piscina worker. */
export type DispatchTask =
  | { readonly kind: 'packed'; readonly buffer: ArrayBuffer }
  | {
      readonly kind: 'records';
      readonly records: readonly { key: Uint8Array; value: Uint8Array }[];
    };

export interface DispatchResult {
  readonly mode: DispatchMode;
  readonly batchSize: number;
  readonly batches: number;
  readonly records: number;
  /** Wall time per batch with `inflight` batches outstanding (so: the throughput cost). */
  readonly usPerBatch: number;
  readonly usPerRecord: number;
  readonly recordsPerS: number;
  /** Main thread busy fraction (packing or cloning happens there). */
  readonly mainBusy: number;
}

// ---------------------------------------------------------------------------------------------
// The matrix (run-matrix.ts, `npm run bench`) and what it was measured on

/** What a result was measured on: recorded with every matrix run and printed in the docs. */
export interface Environment {
  readonly cpuModel: string;
  readonly cores: number;
  readonly memoryGb: number;
  readonly kernel: string;
  readonly node: string;
  readonly mosquitto: string;
  readonly kafka: string;
  readonly librdkafka: string;
  readonly kcat: string;
  readonly mqttJs: string;
  readonly piscina: string;
  readonly gitCommit: string;
  /** Files changed but not committed when the run started. */
  readonly gitDirty: number;
  /** 1-minute load average at start: the machine may be shared. */
  readonly loadAvgAtStart: number;
}

export interface Cell {
  readonly name: string;
  readonly qos: QoS;
  readonly wrapped: boolean;
  /** undefined: the engine's default worker count. */
  readonly workers?: number;
  readonly rate: number;
  /** Forwarder config overrides, dotted path → value. */
  readonly set: Record<string, unknown>;
  readonly note?: string;
}

export interface CellResult {
  readonly cell: Cell;
  readonly result?: RunResult;
  readonly error?: string;
  readonly forwarderExit?: { code: number | null; signal: string | null; ms: number };
  readonly forwarderLog?: string;
}

export interface Ceilings {
  publisher?: PublisherCeiling[];
  /** MQTT-only with the bare mqtt.js subscriber (one PUBACK write per message). */
  mqtt?: MqttCeiling[];
  /** MQTT-only with the raw subscriber (one ack write per read). */
  mqttRaw?: MqttCeiling[];
  kafka?: KafkaCeilingResult[];
  dispatch?: DispatchResult[];
  readonly errors: string[];
}

export interface MatrixResult {
  readonly tool: 'mkf-bench-matrix';
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly wallS: number;
  readonly command: string;
  readonly environment: Environment;
  readonly settings: {
    readonly messages: number;
    readonly ceilingMessages: number;
    readonly payloadSize: number;
    readonly topics: number;
    readonly protocol: string;
    readonly connections: number;
    readonly window: number;
    /** The load generator's MQTT client, for the ceilings and every cell. */
    readonly publisher: PublisherClient;
    /** The forwarder's `processes` and the mappings' layout over them (absent: 1). */
    readonly processes?: number;
    readonly processLayout?: ProcessLayout;
    readonly set: Record<string, unknown>;
    readonly mqtt: string;
    readonly kafka: string;
    readonly brokerNotes: readonly string[];
  };
  readonly ceilings: Ceilings;
  readonly cells: CellResult[];
  readonly resultsDir: string;
}

// ---------------------------------------------------------------------------------------------
// Side by side with the reference service (compare.ts, `npm run bench:compare`)

/** `forwarder`: this project's bin/forwarder.js; `reference`: the reference service's binary. */
export type SubjectName = 'forwarder' | 'reference';
export const SUBJECT_NAMES: readonly SubjectName[] = ['forwarder', 'reference'];

/** A process under measurement: this forwarder or the reference service. */
export interface SubjectProcess {
  readonly pid: number;
  readonly logFile: string;
  /** The last lines it printed, for an error message. */
  lastLines(): string;
  stop(timeoutMs?: number): Promise<SubjectExit>;
}

export interface SubjectExit {
  readonly code: number | null;
  readonly signal: string | null;
  readonly ms: number;
}

/** What a case runs: a load through the subject, or the subject idle and connected. */
export type CompareCaseKind = 'load' | 'idle';

export interface CompareCase {
  readonly name: string;
  readonly kind: CompareCaseKind;
  readonly qos: QoS;
  /** msg/s; 0 = unlimited. */
  readonly rate: number;
  /** The broker's max_inflight_messages for this case (a second mosquitto); absent: the stack's. */
  readonly maxInflight?: number;
  readonly description: string;
}

/** Which broker carries the capped cases. */
export type CappedBrokerKind = 'mosquitto' | 'hivemq';
export const CAPPED_BROKER_KINDS: readonly CappedBrokerKind[] = ['mosquitto', 'hivemq'];

/**
 * What a capped broker let through: a subscriber that never acks (`ackDelayMs` undefined) gets
 * the cap and no more; one that acks each message `ackDelayMs` after it arrived, with a backlog
 * of `published`, has at most `maxUnacked` unacknowledged at once (the cap, if it holds).
 */
export interface InflightProbe {
  readonly client: string;
  readonly published: number;
  readonly received: number;
  readonly ackDelayMs?: number;
  readonly maxUnacked: number;
}

export interface CappedBrokerInfo {
  readonly kind: CappedBrokerKind;
  readonly port: number;
  readonly maxInflight: number;
  readonly pid: number;
  /** Measured at its start: which clients the cap applies to, and whether it holds under acks. */
  readonly probes: readonly InflightProbe[];
  /** The cap held with acks flowing (the steady probe's maxUnacked ≤ the cap). */
  readonly holds: boolean;
}

/** The figures of one idle case: CPU and RSS of the subject connected, with no load. */
export interface IdleResult {
  readonly seconds: number;
  readonly settleSeconds: number;
  readonly forwarder: Omit<ProcSummary, 'samples'>;
}

export interface CompareRun {
  readonly case: string;
  readonly subject: SubjectName;
  /** 1-based repetition. */
  readonly repeat: number;
  readonly startedAt: string;
  readonly dir: string;
  readonly result?: RunResult;
  readonly idle?: IdleResult;
  readonly error?: string;
  readonly subjectExit?: SubjectExit;
  readonly subjectLog?: string;
}

/** The MQTT-only ceiling of a capped case: publisher → capped mosquitto → a bare subscriber. */
export interface CompareCeilingRun {
  readonly case: string;
  readonly repeat: number;
  readonly result?: MqttCeiling;
  readonly error?: string;
}

export interface CompareResult {
  readonly tool: 'mkf-bench-compare';
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly wallS: number;
  readonly command: string;
  readonly environment: Environment;
  readonly settings: {
    readonly messages: number;
    readonly payloadSize: number;
    readonly topics: number;
    readonly protocol: string;
    readonly window: number;
    readonly publisher: PublisherClient;
    readonly warmup: number;
    /** This forwarder's `processes` and the mappings' layout over them (absent: 1). */
    readonly processes?: number;
    readonly processLayout?: ProcessLayout;
    readonly repeat: number;
    readonly subjects: readonly SubjectName[];
    readonly ceilingSubscriber: SubscriberClient;
    readonly cappedBroker: CappedBrokerKind;
    readonly mqtt: string;
    readonly kafka: string;
    readonly referenceBinary?: { path: string; bytes: number; sha256: string; mtime: string };
    readonly notes: readonly string[];
  };
  readonly cases: readonly CompareCase[];
  readonly cappedBrokers: readonly CappedBrokerInfo[];
  readonly runs: readonly CompareRun[];
  readonly ceilings: readonly CompareCeilingRun[];
  readonly resultsDir: string;
}
