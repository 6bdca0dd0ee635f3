import { randomFillSync } from 'node:crypto';
import { type Clock, systemClock } from './clock.js';

/**
 * UUIDv7 (RFC 9562): 48-bit millisecond timestamp, then a 12-bit counter (method 1 of
 * section 6.2) seeded at random each millisecond, then 62 random bits.
 *
 * Written here rather than taken from `uuid` because ids must come from an injected Clock
 * (tests use a manual one) and be strictly increasing within a process even when many are
 * made in the same millisecond or the clock steps back; `uuid`'s v7 guarantees neither when
 * given an explicit time.
 */
export interface IdGenerator {
  next(): string;
}

const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

export class UuidV7Generator implements IdGenerator {
  readonly #clock: Clock;
  #lastMs = -1;
  #counter = 0;
  // Random bytes come from a pool refilled 256 ids at a time: one randomFillSync per id cost
  // about as much as the rest of an append's client-side work.
  readonly #pool = new Uint8Array(10 * 256);
  #offset = this.#pool.length;

  constructor(clock: Clock = systemClock) {
    this.#clock = clock;
  }

  next(): string {
    let ms = this.#clock.now();
    if (this.#offset === this.#pool.length) {
      randomFillSync(this.#pool);
      this.#offset = 0;
    }
    const b = this.#pool;
    const o = this.#offset;
    this.#offset += 10;
    if (ms > this.#lastMs) {
      this.#lastMs = ms;
      // Seed the counter in its lower half so that it has room to grow within the millisecond.
      this.#counter = ((b[o + 8]! << 8) | b[o + 9]!) & 0x7ff;
    } else {
      ms = this.#lastMs;
      this.#counter++;
      if (this.#counter > 0xfff) {
        // Counter exhausted: borrow the next millisecond, keeping ids increasing.
        ms = ++this.#lastMs;
        this.#counter = 0;
      }
    }
    const hi = Math.floor(ms / 0x100000000);
    const lo = ms >>> 0;
    const bytes = [
      (hi >>> 8) & 0xff,
      hi & 0xff,
      (lo >>> 24) & 0xff,
      (lo >>> 16) & 0xff,
      (lo >>> 8) & 0xff,
      lo & 0xff,
      0x70 | ((this.#counter >>> 8) & 0x0f),
      this.#counter & 0xff,
      0x80 | (b[o]! & 0x3f),
      b[o + 1]!,
      b[o + 2]!,
      b[o + 3]!,
      b[o + 4]!,
      b[o + 5]!,
      b[o + 6]!,
      b[o + 7]!,
    ];
    let s = '';
    for (let i = 0; i < 16; i++) {
      if (i === 4 || i === 6 || i === 8 || i === 10) s += '-';
      s += HEX[bytes[i]!];
    }
    return s;
  }
}

const defaultGenerator = new UuidV7Generator();

/** A new UUIDv7 from the system clock. */
export function newId(): string {
  return defaultGenerator.next();
}

/** The millisecond timestamp encoded in a UUIDv7. */
export function uuidV7Time(id: string): number {
  const hex = id.replace(/-/g, '').slice(0, 12);
  return Number.parseInt(hex, 16);
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export function isUuid(value: string): boolean {
  return UUID_RE.test(value);
}
