/**
 * What /healthz and /readyz answer. Liveness is only "the event loop turns"; readiness is
 * "this forwarder can take traffic now", computed from the state each stage owns.
 */
import type { Probe } from './http';

const TICK_MS = 500;
/** /healthz fails when the event loop did not turn for this long. */
const LOOP_STUCK_MS = 10_000;
/** /readyz fails when the window stayed full without moving for this long. */
const WINDOW_STALL_MS = 30_000;

/** The state readiness is computed from, read at each probe. */
export interface ReadinessSources {
  readonly mqttConnected: () => boolean;
  readonly mqttSubscribed: () => boolean;
  readonly producersReady: () => number;
  readonly producers: number;
  readonly inflight: () => number;
  readonly windowHasRoom: () => boolean;
  /** Why reading is stopped by an `on_error: stop` hold, if it is. */
  readonly haltReason: () => string | undefined;
  readonly stopping: () => boolean;
}

export class Probes implements Probe {
  private timer: NodeJS.Timeout | undefined;
  private lastTick = performance.now();
  /** performance.now() when the window was first seen full, 0 while it has room. */
  private fullSince = 0;

  constructor(private readonly src: ReadinessSources) {}

  start(): void {
    this.timer = setInterval(() => {
      const now = performance.now();
      this.lastTick = now;
      if (this.src.windowHasRoom()) this.fullSince = 0;
      else if (this.fullSince === 0) this.fullSince = now;
    }, TICK_MS).unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Alive while the event loop keeps turning; see LOOP_STUCK_MS. */
  health(): { ok: boolean; detail: Record<string, unknown> } {
    const lagMs = Math.round(performance.now() - this.lastTick);
    return { ok: lagMs < LOOP_STUCK_MS, detail: { eventLoopLagMs: lagMs } };
  }

  /**
   * Ready to take traffic: MQTT connected and subscribed, every producer connected with a
   * reachable broker, not stopping, and the window not stuck full (a full window that does not
   * move for WINDOW_STALL_MS means Kafka stopped taking messages).
   */
  readiness(): { ok: boolean; detail: Record<string, unknown> } {
    const s = this.src;
    const stalledMs =
      s.windowHasRoom() || this.fullSince === 0
        ? 0
        : Math.round(performance.now() - this.fullSince);
    const halted = s.haltReason();
    const detail = {
      mqttConnected: s.mqttConnected(),
      mqttSubscribed: s.mqttSubscribed(),
      producersReady: s.producersReady(),
      producers: s.producers,
      inflight: s.inflight(),
      windowStalledMs: stalledMs,
      halted: halted ?? false,
      stopping: s.stopping(),
    };
    const ok =
      detail.mqttSubscribed &&
      detail.producersReady === detail.producers &&
      stalledMs < WINDOW_STALL_MS &&
      halted === undefined &&
      !detail.stopping;
    return { ok, detail };
  }
}
