import { NIL, pushTail, unlink } from './circular-list.js';

const BUCKETS = 256;
const MASK = BUCKETS - 1;

/**
 * A hashed timer wheel over slot numbers: 256 buckets, each `resolution` ms wide, each an
 * intrusive circular list (its links in typed arrays indexed by slot). A slot with a deadline is
 * in the bucket of `floor(deadline / resolution) mod 256`; advancing to a time visits every
 * bucket whose tick has fully elapsed since the last advance, and the caller decides, slot by
 * slot, whether the deadline has come (a bucket also holds deadlines whole turns later). One
 * wheel per store: never a timer per entry.
 */
export class TimerWheel {
  /** The time from which `advance` has a bucket to visit. */
  nextAdvanceAt: number;
  readonly #resolution: number;
  readonly #heads = new Int32Array(BUCKETS).fill(NIL);
  readonly #counts = new Int32Array(BUCKETS);
  #next: Int32Array;
  #prev: Int32Array;
  /** Each slot's bucket, NIL when not scheduled. */
  #bucket: Int16Array;
  #processedTick: number;

  constructor(capacity: number, resolution: number, now: number) {
    this.#resolution = resolution;
    this.#next = new Int32Array(capacity);
    this.#prev = new Int32Array(capacity);
    this.#bucket = new Int16Array(capacity).fill(NIL);
    const tick = Math.floor(now / resolution);
    this.#processedTick = tick - 1;
    this.nextAdvanceAt = (tick + 1) * resolution;
  }

  /** Make room for slots up to `capacity` - 1. */
  grow(capacity: number): void {
    const next = new Int32Array(capacity);
    next.set(this.#next);
    this.#next = next;
    const prev = new Int32Array(capacity);
    prev.set(this.#prev);
    this.#prev = prev;
    const bucket = new Int16Array(capacity).fill(NIL);
    bucket.set(this.#bucket);
    this.#bucket = bucket;
  }

  /** Schedule slot `i` (not scheduled) for `deadline`. */
  schedule(i: number, deadline: number): void {
    const b = Math.floor(deadline / this.#resolution) & MASK;
    this.#bucket[i] = b;
    this.#counts[b]!++;
    pushTail(this.#next, this.#prev, this.#heads, b, i);
  }

  /** Unschedule slot `i`; nothing if it is not scheduled. */
  unschedule(i: number): void {
    const b = this.#bucket[i]!;
    if (b === NIL) return;
    this.#bucket[i] = NIL;
    this.#counts[b]!--;
    unlink(this.#next, this.#prev, this.#heads, b, i);
  }

  /**
   * Visit the slots of every bucket whose tick has fully elapsed by `now` since the last advance
   * (at most one turn). `visit` may unschedule the slot it is given, and no other.
   */
  advance(now: number, visit: (slot: number, now: number) => void): void {
    const last = Math.floor(now / this.#resolution) - 1;
    const from = this.#processedTick + 1;
    const count = Math.min(last - this.#processedTick, BUCKETS);
    for (let t = 0; t < count; t++) this.#visitBucket((from + t) & MASK, now, visit);
    this.#processedTick = last;
    this.nextAdvanceAt = (last + 2) * this.#resolution;
  }

  /** Visit every scheduled slot, whatever was visited already, as of `now`. */
  visitAll(now: number, visit: (slot: number, now: number) => void): void {
    for (let b = 0; b < BUCKETS; b++) this.#visitBucket(b, now, visit);
    const tick = Math.floor(now / this.#resolution);
    this.#processedTick = tick - 1;
    this.nextAdvanceAt = (tick + 1) * this.#resolution;
  }

  #visitBucket(b: number, now: number, visit: (slot: number, now: number) => void): void {
    let i = this.#heads[b]!;
    let n = this.#counts[b]!;
    while (n-- > 0 && i !== NIL) {
      const nxt = this.#next[i]!;
      visit(i, now);
      i = nxt;
    }
  }
}
