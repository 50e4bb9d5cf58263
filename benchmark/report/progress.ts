/**
 * Live progress on stderr: a redrawn bar when stderr is a terminal, otherwise (CI logs, pipes)
 * a plain line every few seconds, so a log file does not fill with carriage returns.
 */
import { fmtInt } from './format';

export interface ProgressState {
  readonly phase: string;
  readonly total: number;
  readonly published: number;
  readonly acked: number;
  readonly received: number;
  readonly unique: number;
}

const TTY_MS = 200;
const PLAIN_MS = 5_000;
const BAR = 24;

export class Progress {
  private readonly timer: NodeJS.Timeout;
  private readonly tty = process.stderr.isTTY === true;
  private readonly t0 = performance.now();
  private last = { t: this.t0, published: 0, unique: 0 };
  private drawn = false;

  constructor(
    private readonly label: string,
    private readonly state: () => ProgressState,
    quiet = false,
  ) {
    this.timer = setInterval(() => this.draw(), this.tty ? TTY_MS : PLAIN_MS);
    this.timer.unref();
    if (quiet) clearInterval(this.timer);
  }

  private draw(): void {
    const s = this.state();
    const now = performance.now();
    const dt = Math.max(1e-3, (now - this.last.t) / 1000);
    const pubRate = (s.published - this.last.published) / dt;
    const rcvRate = (s.unique - this.last.unique) / dt;
    this.last = { t: now, published: s.published, unique: s.unique };
    const frac = s.total > 0 ? Math.min(1, s.unique / s.total) : 0;
    const filled = Math.round(frac * BAR);
    const elapsed = ((now - this.t0) / 1000).toFixed(1);
    const text =
      `${this.label} ${s.phase.padEnd(9)} ` +
      (this.tty ? `[${'#'.repeat(filled)}${'.'.repeat(BAR - filled)}] ` : '') +
      `pub ${fmtInt(s.published)}/${fmtInt(s.total)} (${fmtInt(pubRate)}/s) ` +
      `recv ${fmtInt(s.unique)} (${fmtInt(rcvRate)}/s)` +
      (s.received > s.unique ? ` dup ${fmtInt(s.received - s.unique)}` : '') +
      ` ${elapsed}s`;
    if (this.tty) {
      process.stderr.write(`\r\x1b[2K${text}`);
      this.drawn = true;
    } else {
      process.stderr.write(`${text}\n`);
    }
  }

  stop(): void {
    clearInterval(this.timer);
    if (this.tty && this.drawn) process.stderr.write('\r\x1b[2K');
  }
}
