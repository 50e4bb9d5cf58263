/**
 * Receipt accounting for one run: which sequence ids arrived, how often, in which order per
 * topic, and when. Memory is fixed at start (about 17 bytes per message), so a run of 1M
 * messages costs 17 MB whatever arrives.
 */
import type { DecodedPayload, ReceiptCounts } from '../types';

export class Tracker {
  /** Copies seen per sequence id, saturating at 255. */
  readonly seen: Uint8Array;
  /** Publish time of each sequence id as carried in the payload; NaN until seen. */
  readonly publishedAt: Float64Array;
  /** Arrival time of the first copy (Kafka timestamp or subscriber receipt); NaN until seen. */
  readonly arrivedAt: Float64Array;
  private readonly lastSeq: Int32Array;
  private readonly topicDisorder: Uint32Array;
  private counts = { received: 0, unique: 0, duplicates: 0, outOfOrder: 0, foreign: 0 };

  constructor(
    readonly runId: number,
    readonly messages: number,
    readonly topics: number,
  ) {
    this.seen = new Uint8Array(messages);
    this.publishedAt = new Float64Array(messages).fill(NaN);
    this.arrivedAt = new Float64Array(messages).fill(NaN);
    this.lastSeq = new Int32Array(topics).fill(-1);
    this.topicDisorder = new Uint32Array(topics);
  }

  /** Accounts one record; `p` undefined means it was not a benchmark payload. */
  record(p: DecodedPayload | undefined, arrivedAt: number): void {
    if (
      p === undefined ||
      p.runId !== this.runId ||
      p.seq >= this.messages ||
      p.topicIndex >= this.topics
    ) {
      this.counts.foreign++;
      return;
    }
    this.counts.received++;
    const n = this.seen[p.seq]!;
    if (n > 0) {
      this.counts.duplicates++;
      if (n < 255) this.seen[p.seq] = n + 1;
      return;
    }
    this.seen[p.seq] = 1;
    this.counts.unique++;
    this.publishedAt[p.seq] = p.publishedAt;
    this.arrivedAt[p.seq] = arrivedAt;
    if (p.seq < this.lastSeq[p.topicIndex]!) {
      this.counts.outOfOrder++;
      this.topicDisorder[p.topicIndex]!++;
    } else {
      this.lastSeq[p.topicIndex] = p.seq;
    }
  }

  get unique(): number {
    return this.counts.unique;
  }

  get received(): number {
    return this.counts.received;
  }

  result(): ReceiptCounts {
    let topics = 0;
    for (const n of this.topicDisorder) if (n > 0) topics++;
    return { ...this.counts, outOfOrderTopics: topics };
  }

  /** Sequence ids below `sent` that never arrived. */
  lost(sent: number): number {
    let lost = 0;
    for (let i = 0; i < Math.min(sent, this.messages); i++) if (this.seen[i] === 0) lost++;
    return lost;
  }

  /** The first few missing ids, for the report (a gap pattern often tells the cause). */
  missingSample(sent: number, max = 10): number[] {
    const out: number[] = [];
    for (let i = 0; i < Math.min(sent, this.messages) && out.length < max; i++) {
      if (this.seen[i] === 0) out.push(i);
    }
    return out;
  }
}
