/**
 * Timers for work that is offered again later (a failed task, a held record). Shutdown cancels
 * them all at once: a retry that fires during the drain would race the producers' disconnect,
 * and its messages stay unacknowledged anyway, so the broker redelivers them.
 */
export class RetryTimers {
  private readonly timers = new Set<NodeJS.Timeout>();
  private cancelled = false;

  /** True after cancelAll(): shutdown has begun. */
  get isCancelled(): boolean {
    return this.cancelled;
  }

  /** Runs `fn` after `ms` unless cancelAll() came first; never keeps the process alive. */
  later(ms: number, fn: () => void): void {
    if (this.cancelled) return;
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    t.unref();
    this.timers.add(t);
  }

  cancelAll(): void {
    this.cancelled = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }
}
