import { Producer } from 'node-rdkafka';
import type { LibrdKafkaError } from 'node-rdkafka';
import { ERROR_CODES } from '../../errors';
import type { Logger } from '../../observability/logger';
import { RateLimitedLog } from '../../observability/logger';
import { deliveryReportsConfig, onCompactReports } from '../../seams/rdkafka';
import { Deliveries } from './deliveries';
import { errorCodeOf, isAuthenticationError, isTlsError, kafkaErrorName } from './kafka-errors';
import type { BatchResult, WorkerInit } from './protocol';

/** Backoff between connect attempts. */
const CONNECT_RETRY_MIN_MS = 100;
const CONNECT_RETRY_MAX_MS = 5_000;
const STATS_INTERVAL_MS = 5_000;
/** Default of librdkafka's reconnect.backoff.ms (100 ms); see the constructor. */
const RECONNECT_BACKOFF_MS = 1_000;
/** How often librdkafka's events are polled while connecting (see connectLoop). */
const CONNECT_POLL_MS = 100;
/**
 * How often a connected producer is polled. Its delivery reports, errors and statistics are
 * served when librdkafka queues them (`dr_wakeup`, native/node-rdkafka's patch); this bounds how
 * late they could come should a wakeup ever be missed, at four calls a second. The 1 ms poll it
 * replaced delayed every report by up to a millisecond and cost 2 % of a core on its own.
 */
const POLL_MS = 250;
/**
 * After a successful flush every delivery report is queued in the binding, which hands them to
 * JS at the next event-loop turn: bounded in case a record was re-produced meanwhile.
 */
const REPORTS_AFTER_FLUSH_MS = 1_000;
/**
 * Consecutive statistics (STATS_INTERVAL_MS apart) in which the client knows no broker at all,
 * not even a bootstrap one, before it is replaced: see replaceLostClient.
 */
const LOST_CLIENT_SAMPLES = 2;

/**
 * One Kafka producer's life: connect (a new client per attempt, with backoff), readiness,
 * client errors, and teardown. What it produces is booked in deliveries.ts. The same class runs
 * inside every producer thread and, in inline mode (`dispatch.workers: 0`), on the main thread.
 *
 * Hazard (DESIGN.md): ending the thread while a native call of the producer is pending —
 * connect, flush, disconnect — crashes the process. So every native call is tracked and
 * `shutdown()` returns only after all of them completed; the pool destroys threads only after
 * every worker's shutdown() resolved.
 */
export class KafkaProducerRunner {
  private producer: Producer;
  private readonly log: Logger;
  private readonly errorLog = new RateLimitedLog(5_000);
  /**
   * Apart from errorLog: when the first TLS failure surfaces from librdkafka's initial
   * SSL_connect() it is reported as ERR__TRANSPORT, and its warning would take errorLog's slot
   * for 5 s; librdkafka reports each identical broker error at most twice per 30 s, so the
   * ERR__SSL that follows ~0.5 s later would only be logged after the next connect attempt.
   */
  private readonly authErrorLog = new RateLimitedLog(5_000);
  private connected = false;
  private stopping = false;
  /** Set once disconnect() was called: the native client may be gone, so no call may reach it. */
  private closing = false;
  private shutdownDone: Promise<'closed' | 'abandoned'> | undefined;
  /** The connect loop; settles once connected or once stopping was requested. */
  private readonly connecting: Promise<void>;
  /** Last reported state; see reportStatus. */
  private reported: boolean | undefined;
  private brokersUp = true;
  private wakeConnectLoop: (() => void) | undefined;
  private readonly deliveries: Deliveries;
  private pollTimer: NodeJS.Timeout | undefined;
  /** Incremented for every client created; a client's events carry the value it was made with. */
  private generation = 0;
  /** Statistics in a row in which the current client knew no broker at all. */
  private lostSamples = 0;
  private replacing = false;
  /** disconnect() of replaced clients; shutdown waits for them (a pending native call). */
  private readonly retired: Promise<void>[] = [];

  constructor(
    private readonly init: WorkerInit,
    log: Logger,
    private readonly onStatus: (ready: boolean) => void = () => undefined,
  ) {
    this.log = log;
    this.deliveries = new Deliveries(
      {
        current: () => (this.closing ? undefined : this.producer),
        stopping: () => this.stopping,
        delivered: () => {
          if (this.brokersUp) return;
          this.brokersUp = true;
          this.reportStatus();
        },
        generation: () => this.generation,
      },
      log,
    );
    this.producer = this.createProducer();
    this.connecting = this.connectLoop();
  }

  /**
   * A new client for every connect attempt: node-rdkafka registers its native callbacks again on
   * each connect() and never removes those of a failed one, so a reused client would deliver
   * every later delivery report (and event) once more per failed attempt — settling records that
   * Kafka never confirmed.
   */
  private createProducer(): Producer {
    const generation = ++this.generation;
    const current = () => generation === this.generation;
    const producer = new Producer(
      {
        // librdkafka reports broker connection states only through its statistics; they tell
        // readiness whether Kafka is reachable while no message flows.
        'statistics.interval.ms': STATS_INTERVAL_MS,
        // While connect() waits for metadata, librdkafka starts a new connection every
        // reconnect.backoff.ms / 2 regardless of failures: with its default (100 ms) a broker
        // that rejects our TLS handshake got 20 handshakes a second. 1 s caps that at 2/s; the
        // backoff still doubles up to reconnect.backoff.max.ms (10 s) in an outage.
        'reconnect.backoff.ms': RECONNECT_BACKOFF_MS,
        ...this.init.global,
        // One event per event-loop turn with every report's id and error code, instead of one
        // JS object per record (native/node-rdkafka's patch): 4.5-5 us of CPU per record were
        // 1.2-1.4 (docs/BENCHMARKS.md); served as soon as librdkafka queues them.
        ...deliveryReportsConfig(),
        // librdkafka calls its log callback from its own threads, and the binding's handler
        // hands the line to a uv_async handle that connect() creates only after those threads
        // started: a "connection refused" logged in between crashed the process (SIGSEGV in
        // uv_async_send, Kafka unreachable, 1 in ~1,000 starts; DESIGN.md). The forwarder never
        // printed these lines (errors come as error events, broker states from statistics), so
        // logging is off, last so that a `debug` setting cannot turn it back on.
        log_level: 0,
      } as ConstructorParameters<typeof Producer>[0],
      this.init.topic as ConstructorParameters<typeof Producer>[1],
    );
    producer.on('event.stats', (ev: { message: string }) => {
      if (current()) this.onStats(ev.message);
    });
    onCompactReports(producer, (ids, codes) => this.deliveries.onReports(ids, codes, generation));
    producer.on('event.error', (err: LibrdKafkaError) => {
      if (!current()) return;
      const code = errorCodeOf(err);
      const auth = isAuthenticationError(code);
      if (auth) {
        // Wrong credentials or certificates: retrying cannot help until someone fixes them, so
        // say so loudly, and report not ready at once instead of at the next statistics.
        this.brokersUp = false;
        this.reportStatus();
      }
      const n = (auth ? this.authErrorLog : this.errorLog).take();
      if (n < 0) return;
      if (auth) {
        const hint = isTlsError(code)
          ? 'TLS handshake failed; check ssl.ca.location (the broker certificate must be signed by it and issued for the broker host) and, if the broker requires client certificates, ssl.certificate.location and ssl.key.location'
          : 'check sasl.mechanism, sasl.username and sasl.password';
        this.log.error(
          { code: ERROR_CODES.kafkaAuth, kafkaError: kafkaErrorName(code), suppressed: n },
          `kafka authentication failed: ${err.message}: ${hint} in kafka.config`,
        );
      } else {
        this.log.warn(
          { code: ERROR_CODES.kafkaClient, kafkaError: kafkaErrorName(code), suppressed: n },
          `kafka client error: ${err.message}`,
        );
      }
    });
    return producer;
  }

  /** Records produced whose delivery report has not arrived yet. */
  get unconfirmed(): number {
    return this.deliveries.unconfirmed;
  }

  get isConnected(): boolean {
    return this.connected;
  }

  /** Resolves once the producer is connected; never rejects (it retries until shutdown). */
  ready(): Promise<void> {
    return this.connecting;
  }

  private async connectLoop(): Promise<void> {
    // librdkafka hands out errors (e.g. SASL authentication failed) only when polled, and
    // setPollInterval starts polling only once connected: without this, wrong credentials would
    // surface only as a metadata timeout ("broker transport failure").
    const poller = setInterval(() => {
      try {
        this.producer.poll();
      } catch {
        // "Producer not connected": between attempts there is no client to poll.
      }
    }, CONNECT_POLL_MS);
    try {
      await this.connectAttempts();
    } finally {
      clearInterval(poller);
    }
  }

  private async connectAttempts(): Promise<void> {
    let delay = CONNECT_RETRY_MIN_MS;
    for (let attempt = 1; !this.stopping; attempt++) {
      try {
        await new Promise<void>((resolve, reject) => {
          this.producer.connect({ timeout: this.init.connectTimeoutMs }, (err) =>
            err ? reject(err) : resolve(),
          );
        });
        this.connected = true;
        this.brokersUp = true;
        this.reportStatus();
        this.startPolling();
        this.log.info({ attempt }, 'kafka producer connected');
        return;
      } catch (cause) {
        this.log.warn(
          { code: ERROR_CODES.kafkaConnect, attempt },
          `kafka producer connect to ${String(this.init.global['bootstrap.servers'] ?? this.init.global['metadata.broker.list'])} failed: ${errorText(cause)}; retrying in ${delay} ms`,
        );
        this.producer = this.createProducer();
      }
      // Interruptible: shutdown() waits for this loop, and must not wait out a backoff.
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, delay);
        this.wakeConnectLoop = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wakeConnectLoop = undefined;
      delay = Math.min(delay * 2, CONNECT_RETRY_MAX_MS);
    }
  }

  private onStats(json: string): void {
    try {
      const stats = JSON.parse(json) as {
        brokers?: Record<string, { state?: string; nodeid?: number }>;
      };
      const known = Object.values(stats.brokers ?? {});
      const brokers = known.filter((b) => (b.nodeid ?? -1) >= 0);
      this.brokersUp =
        known.length > 0 && (brokers.length === 0 || brokers.some((b) => b.state === 'UP'));
      this.lostSamples = known.length === 0 && this.connected ? this.lostSamples + 1 : 0;
    } catch {
      return;
    }
    this.reportStatus();
    if (this.lostSamples >= LOST_CLIENT_SAMPLES) void this.replaceLostClient();
  }

  /**
   * librdkafka (2.10+) removes every broker a Metadata response does not list. A KRaft
   * controller that fenced its only broker (missed heartbeats: a starved JVM) makes that broker
   * answer Metadata with no broker at all, so the client drops it; it then re-bootstraps when
   * its last broker goes down, but a race can cancel that re-bootstrap: the thread of the dropped
   * broker schedules it while the main thread is still parsing that Metadata response, whose
   * success then stops the timer, and the in-progress flag stays set, so no later re-bootstrap
   * is scheduled. The client then knows no broker, sends nothing and recovers never (issue 16:
   * one lane confirmed nothing after a 0.1 s fence). Its statistics show no broker at all;
   * after LOST_CLIENT_SAMPLES of them this replaces the client: the records awaiting its
   * reports are detached and produced again on a new client (at least once: duplicates
   * possible, nothing lost), and the lost client gets one more native call, disconnect().
   */
  private async replaceLostClient(): Promise<void> {
    if (this.replacing || this.stopping || this.closing) return;
    this.replacing = true;
    this.lostSamples = 0;
    const lost = this.producer;
    const records = this.deliveries.detach();
    this.log.warn(
      { code: ERROR_CODES.kafkaClientLost, records: records.length },
      'kafka producer knows no broker any more (librdkafka did not re-bootstrap); replacing the client',
    );
    this.producer = this.createProducer();
    this.retired.push(
      new Promise<void>((resolve) => {
        try {
          lost.disconnect(0, () => resolve());
        } catch {
          resolve();
        }
      }),
    );
    try {
      await this.connectLoop();
    } finally {
      this.replacing = false;
    }
    // Stopping meanwhile: the records stay unconfirmed, never acknowledged (redelivered).
    if (this.stopping || this.closing) return;
    this.log.info({ records: records.length }, 'kafka producer replaced; producing again');
    this.deliveries.produceAgain(records);
  }

  /** Tells the owner whether this producer can deliver now (connected, a broker reachable). */
  private reportStatus(): void {
    const ready = this.connected && this.brokersUp && !this.stopping;
    if (ready === this.reported) return;
    this.reported = ready;
    if (!ready && this.connected && !this.stopping)
      this.log.warn(
        { code: ERROR_CODES.kafkaUnreachable },
        'kafka producer has no reachable broker',
      );
    this.onStatus(ready);
  }

  /** Polls librdkafka (delivery reports, errors, statistics) every POLL_MS until disconnect() began. */
  private startPolling(): void {
    if (this.pollTimer !== undefined || this.closing) return;
    this.pollTimer = setInterval(() => {
      if (this.closing) return;
      try {
        this.producer.poll();
      } catch {
        // "Producer not connected": the connection dropped; the connect loop is not involved.
      }
    }, POLL_MS);
    // As the binding's own poll interval: it must not keep a stopping process alive.
    this.pollTimer.unref();
  }

  /** Produces every record of the batch; settles once each has a final outcome. */
  async handleBatch(buffer: ArrayBuffer): Promise<BatchResult> {
    await this.connecting;
    if (!this.connected) throw new Error('producer is shutting down');
    return this.deliveries.batch(buffer);
  }

  /**
   * Flushes (bounded) and disconnects. Safe to call more than once.
   *
   * Resolves 'closed' once no native call of this producer is pending, so its thread may end.
   * Resolves 'abandoned' at once when a connect attempt is still pending: it holds no record of
   * ours (nothing was produced before it connected), and waiting for it could take the whole
   * connect timeout. Its thread must then never be ended: the process exits by hardExit
   * (DESIGN.md, "Stopping").
   */
  async shutdown(flushTimeoutMs: number): Promise<'closed' | 'abandoned'> {
    if (this.shutdownDone) return this.shutdownDone;
    this.stopping = true;
    this.wakeConnectLoop?.();
    this.reportStatus();
    this.shutdownDone = this.close(flushTimeoutMs);
    return this.shutdownDone;
  }

  private async close(flushTimeoutMs: number): Promise<'closed' | 'abandoned'> {
    await Promise.all(this.retired);
    if (this.replacing) {
      // A replacement client's connect attempt is pending: as for the first one, abandoned.
      return 'abandoned';
    }
    if (!this.connected) {
      // Between attempts (backoff wait, woken above) the loop ends without a native call.
      const settled = await Promise.race([
        this.connecting.then(() => true),
        new Promise<boolean>((r) => setImmediate(() => r(false))),
      ]);
      if (!settled) return 'abandoned';
      if (!this.connected) return 'closed';
    }
    // The binding hands queued delivery reports to JS at the next event-loop turn, and the end
    // of disconnect() closes that channel: reports still queued then are lost (measured with
    // the binding's per-record reports: 100 of 200). So flush first and wait for the reports
    // of everything flushed.
    const flushed = await new Promise<boolean>((resolve) => {
      try {
        this.producer.flush(flushTimeoutMs, (err) => resolve(!err));
      } catch {
        resolve(false);
      }
    });
    if (flushed) await this.deliveries.settled(REPORTS_AFTER_FLUSH_MS);
    // The binding's poll() reaches the native client without its lock, and disconnect()
    // deletes that client on a libuv thread: a poll from the interval in between crashed the
    // process (SIGSEGV in rd_kafka_q_serve, SIGABRT on a pure virtual call) or hung it
    // (DESIGN.md, "Producer teardown"). So polling stops first (the `closing` flag ends the
    // poll timer too), and from here no native call is made until disconnect() called back.
    this.closing = true;
    clearInterval(this.pollTimer);
    this.pollTimer = undefined;
    await new Promise<void>((resolve) => {
      try {
        this.producer.disconnect(0, () => resolve());
      } catch (err) {
        // "Producer not connected": the connection dropped under us; nothing is pending.
        this.log.debug({ err: errorText(err) }, 'kafka producer disconnect skipped');
        resolve();
      }
    });
    this.connected = false;
    this.log.info({ unconfirmed: this.deliveries.unconfirmed }, 'kafka producer disconnected');
    return 'closed';
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
