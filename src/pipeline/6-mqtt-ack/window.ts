/**
 * The in-flight window: every message received from MQTT, in receive order, until all of its
 * Kafka deliveries are confirmed. Acks are released as a checkpoint — the longest confirmed
 * prefix — so the broker sees PUBACK/PUBREC strictly in receive order, and only for messages
 * Kafka has. The window is the forwarder's one memory bound: when it holds `maxMessages`
 * messages or `maxBytes` payload bytes, the source stops reading the socket.
 */

export interface WindowEntry {
  readonly seq: number;
  /** Kafka deliveries still outstanding; 0 means the message may be acknowledged. */
  pending: number;
  readonly qos: 0 | 1 | 2;
  /** MQTT packet id (QoS 1/2). */
  readonly messageId: number;
  /** Connection generation the message arrived on; acks are only valid on that connection. */
  readonly conn: number;
  readonly bytes: number;
  readonly retain: boolean;
  /** performance.now() at receipt, for the delivery latency metric. */
  readonly receivedAt: number;
}

export type ReleaseHandler = (released: readonly WindowEntry[]) => void;

export class InflightWindow {
  private entries: WindowEntry[] = [];
  private head = 0;
  private nextSeq = 0;
  private heldBytes = 0;
  private closed = false;
  private paused = false;
  /** > 0 inside settling(): releases wait until it ends. */
  private deferring = 0;
  private releaseDue = false;
  private readonly waiters: (() => void)[] = [];
  private drainWaiters: (() => void)[] = [];
  /** whenReleasedThrough() callers, by ascending seq. */
  private throughWaiters: { seq: number; resolve: () => void }[] = [];

  constructor(
    readonly maxMessages: number,
    readonly maxBytes: number,
    private readonly onRelease: ReleaseHandler,
  ) {}

  get size(): number {
    return this.entries.length - this.head;
  }

  get bytes(): number {
    return this.heldBytes;
  }

  /** Seq of the newest admitted message; -1 before the first. */
  get lastSeq(): number {
    return this.nextSeq - 1;
  }

  /** True after close(): shutdown has begun and nothing new may be admitted. */
  get isClosed(): boolean {
    return this.closed;
  }

  get hasRoom(): boolean {
    return (
      !this.closed && !this.paused && this.size < this.maxMessages && this.heldBytes < this.maxBytes
    );
  }

  /** Records a received message. Call `whenRoom` afterwards before reading the next one. */
  admit(
    qos: 0 | 1 | 2,
    messageId: number,
    conn: number,
    bytes: number,
    targets: number,
    retain = false,
  ): WindowEntry {
    const entry: WindowEntry = {
      seq: this.nextSeq++,
      pending: targets,
      qos,
      messageId,
      conn,
      bytes,
      retain,
      receivedAt: performance.now(),
    };
    this.entries.push(entry);
    this.heldBytes += bytes;
    if (targets === 0) this.release();
    return entry;
  }

  /** One delivery of `entry` is confirmed (or finally settled by an error policy). */
  confirm(entry: WindowEntry): void {
    if (entry.pending <= 0)
      throw new RangeError(`message ${entry.seq} confirmed more often than it was sent`);
    entry.pending--;
    if (entry.pending === 0 && this.entries[this.head] === entry) this.release();
  }

  /**
   * Runs `fn` (which confirms many entries) with releases deferred, then releases once. A
   * batch result confirms hundreds of messages in order; releasing after each would write one
   * ack packet per socket write — a syscall per message (docs/BENCHMARKS.md).
   */
  settling(fn: () => void): void {
    this.deferring++;
    try {
      fn();
    } finally {
      if (--this.deferring === 0 && this.releaseDue) {
        this.releaseDue = false;
        this.release();
      }
    }
  }

  /**
   * Runs `next` now if there is room, otherwise once there is. The caller passes the function
   * that lets the MQTT client read its next packet, so a full window stops reading — it never
   * drops. After close() the functions are never run.
   */
  whenRoom(next: () => void): void {
    if (this.hasRoom) next();
    else this.waiters.push(next);
  }

  /** Stop reading until resume(): a mapping's `stop` policy holds a refused message. */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.wake();
  }

  /** Stop admitting (shutdown): queued and future `whenRoom` callbacks are held for good. */
  close(): void {
    this.closed = true;
  }

  /** Resolves once every admitted message was released. */
  drained(): Promise<void> {
    if (this.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /**
   * Resolves once every message admitted up to `seq` (see lastSeq) was released: a config
   * reload unsubscribes a removed filter only when nothing received before the reload can
   * still need an ack. Releases are in seq order, so this is the release of `seq` itself.
   */
  whenReleasedThrough(seq: number): Promise<void> {
    if (this.releasedThrough() >= seq) return Promise.resolve();
    return new Promise((resolve) => {
      const at = this.throughWaiters.findIndex((w) => w.seq > seq);
      const waiter = { seq, resolve };
      if (at < 0) this.throughWaiters.push(waiter);
      else this.throughWaiters.splice(at, 0, waiter);
    });
  }

  private releasedThrough(): number {
    return this.head < this.entries.length ? this.entries[this.head]!.seq - 1 : this.nextSeq - 1;
  }

  private wake(): void {
    while (this.waiters.length > 0 && this.hasRoom) this.waiters.shift()!();
  }

  private release(): void {
    if (this.deferring > 0) {
      this.releaseDue = true;
      return;
    }
    const released: WindowEntry[] = [];
    while (this.head < this.entries.length) {
      const e = this.entries[this.head]!;
      if (e.pending > 0) break;
      released.push(e);
      this.heldBytes -= e.bytes;
      this.head++;
    }
    if (released.length === 0) return;
    // Compact lazily: shifting per message would make release O(n²) under a large window.
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
    this.onRelease(released);
    if (this.throughWaiters.length > 0) {
      const through = this.releasedThrough();
      while (this.throughWaiters.length > 0 && this.throughWaiters[0]!.seq <= through)
        this.throughWaiters.shift()!.resolve();
    }
    this.wake();
    if (this.size === 0 && this.drainWaiters.length > 0) {
      const waiters = this.drainWaiters;
      this.drainWaiters = [];
      for (const w of waiters) w();
    }
  }
}
