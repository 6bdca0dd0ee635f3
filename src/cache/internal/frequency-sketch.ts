/**
 * A count-min sketch of 4-bit counters, as in Caffeine's `FrequencySketch`: it estimates how
 * often a key was seen recently, in a fixed amount of memory, so that W-TinyLFU can compare a
 * newcomer with the entry it would replace.
 *
 * - Counters are 4 bits (0..15), eight to a 32-bit word of one `Uint32Array`.
 * - A key touches 4 counters, one per hash function; its estimate is the smallest of the four
 *   (a count-min sketch over-counts on collisions, never under-counts).
 * - Aging: after `sampleSize` increments (10 x the cache's capacity), every counter is halved,
 *   so that the sketch forgets history and follows a shifting workload.
 *
 * Keys arrive as 32-bit hashes (`hashKey` below); the store caches each entry's hash so the hot
 * path never hashes a key twice.
 */
export class FrequencySketch {
  /**
   * Counters as nibbles, in blocks of 16 words (64 bytes, one cache line): a key's 4 counters
   * all sit in one block, one in each quarter, so a lookup touches one cache line (Caffeine's
   * block-based layout). 16 counters per unit of capacity, rounded up to a power of two.
   */
  #table: Uint32Array;
  /** 32 - log2(number of blocks). */
  #blockShift: number;
  #additions = 0;
  /** Increments between two halvings. */
  readonly sampleSize: number;

  constructor(capacity: number) {
    const cap = Math.max(16, Math.min(1 << 24, Math.ceil(capacity)));
    const counters = nextPowerOfTwo(cap) * 16;
    const blocks = counters / 128; // 16 words x 8 counters per block
    this.#blockShift = 32 - Math.log2(blocks);
    this.#table = new Uint32Array(blocks * 16);
    this.sampleSize = 10 * cap;
  }

  /** Estimated frequency of the key with hash `h` (0..15). */
  frequency(h: number): number {
    const t = this.#table;
    const block = (Math.imul(h, 0x9e3779b1) >>> this.#blockShift) << 4;
    const h2 = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d);
    let min = 15;
    for (let r = 0; r < 4; r++) {
      const bits = h2 >>> (r << 3);
      const v = (t[block + (r << 2) + (bits & 3)]! >>> (((bits >>> 2) & 7) * 4)) & 15;
      if (v < min) min = v;
    }
    return min;
  }

  /** Count one occurrence of the key with hash `h`; halves every counter every `sampleSize`. */
  increment(h: number): void {
    if (this.#add(h) && ++this.#additions >= this.sampleSize) this.#halve();
  }

  /** Increments the key's four counters that are below 15 (one per 16-byte row); true if any was. */
  #add(h: number): boolean {
    const t = this.#table;
    const block = (Math.imul(h, 0x9e3779b1) >>> this.#blockShift) << 4;
    const h2 = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d);
    let added = false;
    for (let r = 0; r < 4; r++) {
      const bits = h2 >>> (r << 3);
      const w = block + (r << 2) + (bits & 3);
      const s = ((bits >>> 2) & 7) << 2;
      const v = t[w]!;
      if (((v >>> s) & 15) !== 15) {
        t[w] = v + (1 << s);
        added = true;
      }
    }
    return added;
  }

  /**
   * Count one occurrence of each of the first `n` hashes in `hashes` (a read buffer's drain).
   * The increments are independent of each other, so in one tight loop their table reads
   * overlap in the CPU instead of each waiting behind a read's other work.
   */
  incrementAll(hashes: Int32Array, n: number): void {
    let added = 0;
    for (let k = 0; k < n; k++) if (this.#add(hashes[k]!)) added++;
    this.#additions += added;
    if (this.#additions >= this.sampleSize) this.#halve();
  }

  #halve(): void {
    const t = this.#table;
    for (let i = 0; i < t.length; i++) t[i] = (t[i]! >>> 1) & 0x77777777;
    this.#additions >>>= 1;
  }
}

function nextPowerOfTwo(n: number): number {
  return 2 ** Math.ceil(Math.log2(n));
}

/** Identity hashes for object keys, assigned on first sight (weakly held). */
const objectIds = new WeakMap<object, number>();
let nextObjectId = 1;

/** A 32-bit hash of a cache key: integers are mixed, strings hashed with FNV-1a. */
export function hashKey(key: unknown): number {
  if (typeof key === 'number') {
    if ((key | 0) === key) return mix32(key);
    return hashString(String(key));
  }
  if (typeof key === 'string') return hashString(key);
  if ((typeof key === 'object' && key !== null) || typeof key === 'function') {
    let id = objectIds.get(key);
    if (id === undefined) {
      id = nextObjectId++;
      objectIds.set(key, id);
    }
    return mix32(id);
  }
  return hashString(String(key));
}

/** The integer mix of `hashKey` (also the store's index hash for integer keys). */
export function mix32(x: number): number {
  let h = x | 0;
  h = Math.imul(h ^ (h >>> 16), 0x45d9f3b);
  h = Math.imul(h ^ (h >>> 16), 0x45d9f3b);
  return (h ^ (h >>> 16)) | 0;
}

function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return mix32(h);
}
