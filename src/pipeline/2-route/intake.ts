/**
 * The hot path of every received PUBLISH: admit it to the window (so its ack waits for Kafka),
 * find its mappings, and hand one record per mapping to its lane's batch — or, over the payload
 * limit, to the mapping's error policy. Runs once per message on the main thread: no
 * allocation here that a message does not need.
 */
import type { IPublishPacket } from 'mqtt';
import type { Logger } from '../../observability/logger';
import { RateLimitedLog } from '../../observability/logger';
import type { Metrics } from '../../observability/metrics';
import type { InflightWindow } from '../6-mqtt-ack/window';
import type { PendingRecord } from '../record';
import { HeaderWriter } from './headers';
import type { Router } from './router';
import { wrapPayload } from './wrap';

export interface IntakeStats {
  received: number;
  unmatched: number;
}

/** Where routed records go: out to a batch, or (refused here) to the way back. */
export interface IntakeTargets {
  add(lane: number, r: PendingRecord): void;
  reject(lane: number, r: PendingRecord, reason: string): void;
}

export class Intake {
  readonly stats: IntakeStats = { received: 0, unmatched: 0 };
  private readonly unmatchedLog = new RateLimitedLog(10_000);
  /** By mapping index; a hole for a mapping without kafka.headers. */
  private headerWriters: (HeaderWriter | undefined)[];

  constructor(
    private router: Router,
    private readonly window: InflightWindow,
    private readonly targets: IntakeTargets,
    /** mqtt.max_payload_bytes; 0 = no limit. */
    private readonly maxPayloadBytes: number,
    private readonly log: Logger,
    private readonly metrics: Metrics,
  ) {
    this.headerWriters = writersOf(router);
  }

  /**
   * A config reload: messages from the next one on are routed by `router`. Records already
   * routed keep the mapping indices of the router that made them (5-settle tells which by seq).
   */
  use(router: Router): void {
    this.router = router;
    this.headerWriters = writersOf(router);
  }

  onPublish(packet: IPublishPacket, conn: number): void {
    // A PUBLISH mqtt.js had already parsed when shutdown began: not forwarded and never
    // acknowledged, so the broker redelivers it. Dispatching it now would race the producers'
    // disconnect (and the drain has already decided it is done).
    if (this.window.isClosed) {
      this.log.debug(
        { topic: packet.topic },
        'message arrived during shutdown; left unacknowledged',
      );
      return;
    }
    this.stats.received++;
    const topic = packet.topic;
    const payload = packet.payload as Buffer;
    const route = this.router.route(topic);
    const mappings = this.router.mappingsFor(route, packet.properties?.subscriptionIdentifier);
    const entry = this.window.admit(
      packet.qos,
      packet.messageId ?? 0,
      conn,
      payload.byteLength,
      mappings.length,
      packet.retain,
    );
    if (mappings.length === 0) {
      this.stats.unmatched++;
      this.metrics.unmatched.inc();
      const n = this.unmatchedLog.take();
      if (n >= 0)
        this.log.warn(
          { topic, suppressed: n },
          'message matches no mapping; acknowledged without forwarding',
        );
      return;
    }
    const limit = this.maxPayloadBytes;
    const over =
      limit > 0 && payload.byteLength > limit
        ? `payload of ${payload.byteLength} bytes exceeds mqtt.max_payload_bytes (${limit})`
        : undefined;
    const mqttTopic = route.topicBytes;
    for (const mapping of mappings) {
      const m = this.router.mappings[mapping]!;
      const target = route.targets[mapping]!;
      const problem = over ?? target.topicProblem;
      const value = problem !== undefined || !m.wrap ? payload : wrapPayload(topic, payload);
      const writer = this.headerWriters[mapping];
      const r: PendingRecord = {
        entry,
        mapping,
        kafkaTopic: target.kafkaTopic,
        key: target.key,
        mqttTopic,
        value,
        payload,
        // Always present, so every record has one shape on the hot path.
        headers: writer === undefined ? undefined : writer.headers(packet, mqttTopic),
      };
      if (problem === undefined) this.targets.add(route.lane, r);
      else this.targets.reject(route.lane, r, problem);
    }
  }
}

function writersOf(router: Router): (HeaderWriter | undefined)[] {
  return router.mappings.map((m) =>
    m.headers === undefined ? undefined : new HeaderWriter(m.headers),
  );
}
