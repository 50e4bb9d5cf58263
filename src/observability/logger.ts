import pino from 'pino';
import type { Logger } from 'pino';

export type { Logger };

/**
 * Paths pino blanks out wherever a config object or error is logged. Kafka properties are
 * redacted by key on top of this (see config/kafka.ts) because their names are open-ended.
 */
const REDACT = [
  'password',
  '*.password',
  '*.*.password',
  'credentials.password',
  'mqtt.credentials.password',
  'sasl.password',
  '*["sasl.password"]',
  '*["ssl.key.password"]',
];

/**
 * One JSON line per event on stdout. `LOG_LEVEL` from the environment wins over the configured
 * level so an operator can turn on debug without editing a mounted config file.
 */
export function createLogger(level: string, bindings: Record<string, unknown> = {}): Logger {
  return pino(
    {
      level: process.env['LOG_LEVEL'] ?? level,
      base: { pid: process.pid, ...bindings },
      redact: { paths: REDACT, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    // Written before the call returns: a stop may end by _exit (cli/hard-exit.ts), which would
    // drop lines still buffered, and those are the ones saying how it ended. Lines are per
    // state change, never per message, so writing synchronously costs nothing measurable.
    pino.destination({ dest: 1, sync: true }),
  );
}

/**
 * Emits at most one line per `intervalMs` for a recurring condition (per-message problems must
 * never flood the log), and reports how many occurrences were folded into the next line.
 */
export class RateLimitedLog {
  private last = 0;
  private suppressed = 0;

  constructor(private readonly intervalMs: number) {}

  /** Returns the number of suppressed occurrences to report, or -1 if this one is suppressed. */
  take(now = Date.now()): number {
    if (now - this.last < this.intervalMs) {
      this.suppressed++;
      return -1;
    }
    this.last = now;
    const n = this.suppressed;
    this.suppressed = 0;
    return n;
  }
}
