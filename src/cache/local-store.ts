import { type Clock, systemClock } from '../core/clock.js';
import { ClosedError } from '../core/errors.js';
import { NIL, pushTail, unlink } from './internal/circular-list.js';
import { FrequencySketch, hashKey } from './internal/frequency-sketch.js';
import { Int32Index, isIntKey } from './internal/int32-index.js';
import { TimerWheel } from './internal/timer-wheel.js';
import { checkTtl, invalidOption as invalid } from './internal/ttl.js';

/**
 * The in-process cache store (L1): a bounded map with a choice of eviction policy and expiry.
 *
 * Layout (after lru-cache): keys and values live in two plain arrays indexed by a slot number;
 * everything else is in typed arrays indexed by the same slot: the links of the policy's
 * doubly-linked circular lists (`next`/`prev`, see internal/circular-list.ts), the list each slot
 * is in, its cached hash, its weight and its expiry time; the timer wheel (internal/timer-wheel.ts)
 * keeps its own links by slot. Keys map to slots through an `Int32Index` for int32 keys
 * (internal/int32-index.ts) and a `Map` for the others. Freed slots go on a free stack and are
 * reused, so the steady state allocates nothing on get, and on set only what the Map needs.
 *
 * Policies:
 * - `lru`: one list in access order; evicts the least recently used.
 * - `fifo`: one list in insertion order; reads do not reorder; evicts the oldest write.
 * - `lfu`: one list per frequency (O(1) LFU); evicts the least frequently used, the least
 *   recently used among equals; a new entry starts at frequency 1 and room is made before it
 *   goes in (so it is never its own victim).
 * - `ttl`: entries leave by expiry; if a bound is also set, the oldest write goes first.
 * - `w-tinylfu` (default): Caffeine's design. A small admission window (LRU, 1% at start) in
 *   front of a segmented main area (probation + protected SLRU, protected 80% of main). An
 *   entry leaving the window is admitted to main only if the frequency sketch says it is seen
 *   more often than main's victim (warm-but-not-more-frequent candidates win with probability
 *   1/128, which defeats hash flooding). A climber resizes the window: recency-heavy workloads
 *   grow it toward LRU, frequency-heavy ones shrink it. The default 'shadow' climber moves one
 *   entry per event: a miss on a recently rejected candidate (remembered by hash in a ghost table
 *   as long as 1.5 x probation) says a bigger window would have hit, a hit in probation (main's
 *   LRU end) says a smaller main would have missed. Caffeine's sampled hill climber (hit rate of
 *   successive 10 x capacity samples, 6.25% steps, restart on a 5% change, 0.98 decay) is kept
 *   as `climber: 'sampled'`; it needs ~15 samples to cross the range and then wanders with
 *   sampling noise, which cost 1 to 8 points against LRU on the recency benchmark.
 *
 * Expiry: a default `ttlMs`, a per-entry `ttlMs` on `set`, optional sliding expiry (a read
 * pushes the deadline). An expired entry is never returned: reads check the deadline. Expired
 * entries are purged by one hashed timer wheel (256 buckets of `expiryResolutionMs`), advanced
 * lazily by operations and, with `autoPurge`, by one loop on the clock: never a timer per entry.
 * With `autoPurge`, no entry outlives its deadline by more than two resolutions' worth of time.
 */
export type EvictionPolicy = 'lru' | 'lfu' | 'fifo' | 'ttl' | 'w-tinylfu';

/** Why an entry left: the bound (`size`), its deadline (`expired`) or a delete/clear (`explicit`). */
export type EvictionCause = 'size' | 'expired' | 'explicit';

export interface LocalStoreOptions<K, V> {
  /** Eviction policy. Default 'w-tinylfu'. */
  policy?: EvictionPolicy;
  /** Bound by number of entries (an integer >= 1). One of maxEntries / maxWeight is required, except with policy 'ttl'. */
  maxEntries?: number;
  /** Bound by total weight, each entry weighing `sizeOf(value, key)` (a number >= 0). */
  maxWeight?: number;
  sizeOf?: (value: V, key: K) => number;
  /** Default time to live in ms for entries set without one; 0 or absent = no expiry. */
  ttlMs?: number;
  /** Sliding expiry: a read resets the entry's deadline to now + its ttl. Default false. */
  sliding?: boolean;
  /** Width of a timer-wheel bucket in ms. Default 1000. */
  expiryResolutionMs?: number;
  /**
   * Purge expired entries on a loop of `clock.sleep(expiryResolutionMs)` even when the cache is
   * idle, so their memory is released without waiting for the next operation. Needs `close()`.
   * Default false (purged lazily by operations).
   */
  autoPurge?: boolean;
  clock?: Clock;
  /** Called after an entry leaves, with the cause. Not called when a value is replaced by set. */
  onEvict?: (key: K, value: V, cause: EvictionCause) => void;
  /** Randomness for W-TinyLFU's admission of warm candidates; [0, 1). Default Math.random. */
  random?: () => number;
  /** W-TinyLFU: start window size as a fraction of capacity. Default 0.01. */
  initialWindow?: number;
  /** W-TinyLFU: let a climber resize the window. Default true. */
  adaptive?: boolean;
  /**
   * W-TinyLFU: how the window is resized. 'shadow' (default): per event, from ghost hits of
   * rejected candidates (grow) against hits in probation (shrink); converges within a few
   * capacities of requests. 'sampled': Caffeine's hill climber, comparing the hit rate of
   * successive samples of 10 x capacity requests.
   */
  climber?: 'shadow' | 'sampled';
}

export interface LocalStoreSetOptions {
  /** Time to live in ms for this entry; 0 = no expiry; absent = the store's default. */
  ttlMs?: number;
}

export interface LocalStoreStats {
  hits: number;
  misses: number;
  evictions: Record<EvictionCause, number>;
  size: number;
  weight: number;
  /** W-TinyLFU window capacity (weight units), for observing the hill climber. */
  window?: number;
}

/** One entry of a dump: key, value and remaining ttl (ms, 0 = none). */
export type LocalStoreDumpEntry<K, V> = [key: K, value: V, ttlMs: number];

// Lists (queues): for lru/fifo/ttl everything is in MAIN; for w-tinylfu WINDOW/PROBATION/PROTECTED.
const WINDOW = 0;
const PROBATION = 1;
const PROTECTED = 2;
const MAIN = 0;

const P_LRU = 0;
const P_LFU = 1;
const P_FIFO = 2;
const P_TTL = 3;
const P_WTLFU = 4;
const POLICIES: Record<EvictionPolicy, number> = {
  lru: P_LRU,
  lfu: P_LFU,
  fifo: P_FIFO,
  ttl: P_TTL,
  'w-tinylfu': P_WTLFU,
};

/** Caffeine's constants. */
const HILL_CLIMBER_RESTART_THRESHOLD = 0.05;
const HILL_CLIMBER_STEP_PERCENT = 0.0625;
const HILL_CLIMBER_STEP_DECAY_RATE = 0.98;
/** Shadow climber: how many rejected candidates to remember, as a multiple of probation's size. */
const GHOST_SPAN = 1.5;
/** Shadow climber: ghost table slots per entry of capacity (rounded up to a power of two). */
const GHOST_SLOTS = 1;
const ADMIT_HASHDOS_THRESHOLD = 6;
/**
 * W-TinyLFU read buffer: hits record their key's hash here, and the sketch counts them in one
 * batch when it fills (Caffeine's read buffer, minus the threads). See `#recordRead`.
 */
const READ_BUFFER = 32;
const QUEUE_TRANSFER_THRESHOLD = 1000;

export class LocalStore<K, V> {
  readonly policy: EvictionPolicy;
  readonly #p: number;
  /** Bound in weight units (entries count 1 each without sizeOf); Infinity when unbounded. */
  readonly #max: number;
  readonly #sizeOf: ((value: V, key: K) => number) | undefined;
  readonly #defaultTtl: number;
  readonly #sliding: boolean;
  readonly #resolution: number;
  readonly #clock: Clock;
  readonly #onEvict: ((key: K, value: V, cause: EvictionCause) => void) | undefined;
  readonly #random: () => number;
  readonly #adaptive: boolean;
  readonly #climber: 'shadow' | 'sampled';
  /** W-TinyLFU with the sampled climber: only it reads the hit/miss sample counters. */
  readonly #sampled: boolean;

  /** Index of keys that are not int32 numbers: key -> slot. */
  #map = new Map<K, number>();
  /** Index of int32 keys (see Int32Index). */
  readonly #ints = new Int32Index();
  #keys: (K | undefined)[] = [];
  #vals: (V | undefined)[] = [];
  #next: Int32Array;
  #prev: Int32Array;
  #queue: Uint8Array;
  #hash: Int32Array;
  #weight: Float64Array;
  #freq: Uint32Array;
  #expires: Float64Array;
  #ttl: Float64Array;
  #free: Int32Array;
  #freeTop = 0;
  /** Slots handed out so far (high-water mark); slots >= this are untouched. */
  #used = 0;
  #capacity: number;

  #heads = new Int32Array([NIL, NIL, NIL]);
  #qWeight = new Float64Array(3);
  #totalWeight = 0;

  // LFU: head of the circular list per frequency, and the smallest non-empty frequency.
  #lfuHeads = new Map<number, number>();
  readonly #lfuHead = new Int32Array(1);
  #minFreq = 1;

  // W-TinyLFU.
  #sketch: FrequencySketch | undefined;
  #windowMax = 0;
  #protectedMax = 0;
  #hitsInSample = 0;
  #missesInSample = 0;
  #previousHitRate = 0;
  #stepSize = 0;
  #adjustment = 0;
  #climberSample = 0;
  #warm = false;
  // Shadow climber: the last window candidates that lost admission, in a direct-mapped table of
  // one int32 per slot (small, so it stays in cache): the hash's high 16 bits as a fingerprint,
  // the low 16 bits of the candidate's rank in the sequence of rejections; 0 = empty.
  #ghosts = new Int32Array(0);
  #ghostMask = 0;
  #ghostSeq = 0;
  #reads = new Int32Array(READ_BUFFER);
  #readCount = 0;

  // Expiry: how many slots have a deadline, and those slots by bucket.
  #expiring = 0;
  readonly #wheel: TimerWheel;
  /** The timer wheel's visitor: remove slot i if its deadline has come. */
  readonly #expireIfDue = (i: number, now: number): void => {
    if (this.#expires[i]! <= now) this.#remove(i, 'expired');
  };
  #purgeLoop: AbortController | undefined;

  #hits = 0;
  #misses = 0;
  #evictions: Record<EvictionCause, number> = { size: 0, expired: 0, explicit: 0 };
  #closed = false;

  constructor(options: LocalStoreOptions<K, V>) {
    const policy = options.policy ?? 'w-tinylfu';
    if (!Object.hasOwn(POLICIES, policy)) {
      throw invalid('policy', `must be one of ${Object.keys(POLICIES).join(', ')}, got ${policy}`);
    }
    this.policy = policy;
    this.#p = POLICIES[policy];
    const { maxEntries, maxWeight } = options;
    if (maxEntries !== undefined && maxWeight !== undefined) {
      throw invalid('maxEntries', 'and maxWeight cannot both be set: choose one bound');
    }
    if (maxEntries !== undefined && !(Number.isInteger(maxEntries) && maxEntries >= 1)) {
      throw invalid('maxEntries', `must be an integer >= 1, got ${String(maxEntries)}`);
    }
    if (maxWeight !== undefined) {
      if (!(typeof maxWeight === 'number' && maxWeight > 0 && Number.isFinite(maxWeight))) {
        throw invalid('maxWeight', `must be a finite number > 0, got ${String(maxWeight)}`);
      }
      if (typeof options.sizeOf !== 'function') {
        throw invalid('sizeOf', 'is required with maxWeight: (value, key) => weight');
      }
    } else if (options.sizeOf !== undefined) {
      throw invalid('sizeOf', 'needs maxWeight: the bound it measures against');
    }
    this.#defaultTtl = checkTtl(options.ttlMs);
    if (maxEntries === undefined && maxWeight === undefined) {
      if (this.#p !== P_TTL) {
        throw invalid('maxEntries', `or maxWeight is required with policy ${policy}`);
      }
      if (this.#defaultTtl === 0) {
        throw invalid('ttlMs', 'must be > 0 with an unbounded ttl-only store');
      }
    }
    this.#max = maxEntries ?? maxWeight ?? Number.POSITIVE_INFINITY;
    this.#sizeOf = maxWeight !== undefined ? options.sizeOf : undefined;
    this.#sliding = options.sliding ?? false;
    const resolution = options.expiryResolutionMs ?? 1000;
    if (!(typeof resolution === 'number' && resolution >= 1 && Number.isFinite(resolution))) {
      throw invalid('expiryResolutionMs', `must be a number of ms >= 1, got ${String(resolution)}`);
    }
    this.#resolution = resolution;
    this.#clock = options.clock ?? systemClock;
    this.#onEvict = options.onEvict;
    this.#random = options.random ?? Math.random;
    this.#adaptive = options.adaptive ?? true;
    const climber = options.climber ?? 'shadow';
    if (climber !== 'shadow' && climber !== 'sampled') {
      throw invalid('climber', `must be 'shadow' or 'sampled', got ${String(climber)}`);
    }
    this.#climber = climber;
    this.#sampled = this.#adaptive && climber === 'sampled';

    this.#capacity = Math.max(
      16,
      Math.min(maxEntries !== undefined ? maxEntries + 1 : 1024, 1 << 16),
    );
    const c = this.#capacity;
    this.#next = new Int32Array(c);
    this.#prev = new Int32Array(c);
    this.#queue = new Uint8Array(c);
    this.#hash = new Int32Array(c);
    this.#weight = new Float64Array(c);
    this.#freq = new Uint32Array(this.#p === P_LFU ? c : 0);
    this.#expires = new Float64Array(c);
    this.#ttl = new Float64Array(c);
    this.#free = new Int32Array(c);
    this.#wheel = new TimerWheel(c, resolution, this.#clock.now());

    if (this.#p === P_WTLFU) {
      const initialWindow = options.initialWindow ?? 0.01;
      if (!(initialWindow >= 0 && initialWindow <= 1)) {
        throw invalid('initialWindow', `must be a fraction in [0, 1], got ${initialWindow}`);
      }
      const max = this.#max;
      const entriesEstimate = maxEntries ?? 1024;
      this.#sketch = new FrequencySketch(entriesEstimate);
      this.#windowMax = Math.max(maxEntries !== undefined ? 1 : 0, Math.floor(max * initialWindow));
      const main = max - this.#windowMax;
      this.#protectedMax = Math.floor(main * 0.8);
      this.#stepSize = -HILL_CLIMBER_STEP_PERCENT * max;
      this.#climberSample = 10 * Math.max(16, entriesEstimate);
      if (this.#adaptive && this.#climber === 'shadow') {
        const g = 2 ** Math.ceil(Math.log2(GHOST_SLOTS * Math.max(16, entriesEstimate)));
        this.#ghosts = new Int32Array(g);
        this.#ghostMask = g - 1;
      }
    }
    if (options.autoPurge) this.#startPurgeLoop();
  }

  // ---------------------------------------------------------------- public API

  get size(): number {
    return this.#map.size + this.#ints.size;
  }

  /** Total weight (= size without sizeOf). */
  get weight(): number {
    return this.#totalWeight;
  }

  /** The value for `key`, or undefined if absent or expired. Counts as an access for the policy. */
  get(key: K): V | undefined {
    const i = this.#find(key);
    if (i === NIL) {
      this.#misses++;
      if (this.#expiring > 0) this.#maybePurge();
      return undefined;
    }
    if (this.#expiring > 0) {
      const now = this.#clock.now();
      const exp = this.#expires[i]!;
      if (exp !== 0) {
        if (exp <= now) {
          this.#remove(i, 'expired');
          this.#misses++;
          return undefined;
        }
        if (this.#sliding) {
          this.#wheel.unschedule(i);
          this.#expires[i] = now + this.#ttl[i]!;
          this.#wheel.schedule(i, this.#expires[i]!);
        }
      }
      if (now >= this.#wheel.nextAdvanceAt) this.#purge(now);
    }
    this.#hits++;
    if (this.#p === P_WTLFU) {
      this.#recordRead(this.#hash[i]!);
      if (this.#sampled) this.#hitsInSample++;
      if (this.#queue[i] === PROTECTED) this.#moveToTail(PROTECTED, i);
      else this.#wtlfuReorder(i);
    } else {
      this.#onAccess(i);
    }
    return this.#vals[i];
  }

  /** The value without counting an access or sliding its deadline. */
  peek(key: K): V | undefined {
    const i = this.#find(key);
    if (i === NIL || this.#isExpired(i)) return undefined;
    return this.#vals[i];
  }

  /** Whether a live entry exists; no access counted. */
  has(key: K): boolean {
    const i = this.#find(key);
    return i !== NIL && !this.#isExpired(i);
  }

  /** Remaining time to live in ms: undefined if absent, 0 if the entry does not expire. */
  ttlOf(key: K): number | undefined {
    const i = this.#find(key);
    if (i === NIL || this.#isExpired(i)) return undefined;
    const exp = this.#expires[i]!;
    return exp === 0 ? 0 : exp - this.#clock.now();
  }

  /**
   * Store `value` under `key`. An entry heavier than the whole bound is not kept (and any older
   * value for the key is dropped), counted as a size eviction.
   */
  set(key: K, value: V, options?: LocalStoreSetOptions): this {
    if (this.#closed) throw new ClosedError('LocalStore');
    const ttl = options?.ttlMs === undefined ? this.#defaultTtl : checkTtl(options.ttlMs);
    const w = this.#sizeOf ? this.#checkedWeight(value, key) : 1;
    const now = ttl > 0 || this.#expiring > 0 ? this.#clock.now() : 0;
    let i = this.#find(key);
    if (w > this.#max) {
      if (i !== NIL) this.#remove(i, 'explicit');
      this.#evictions.size++;
      this.#onEvict?.(key, value, 'size');
      return this;
    }
    if (i !== NIL) {
      // (#wheel.count === 0 means no slot has a deadline: skip reading the slot's.)
      if (this.#expiring > 0 && this.#expires[i] !== 0 && this.#expires[i]! <= now) {
        // An expired entry is replaced as a new one: it must not inherit its history.
        this.#remove(i, 'expired');
        i = NIL;
      }
    }
    if (i !== NIL) {
      this.#vals[i] = value;
      if (ttl > 0 || (this.#expiring > 0 && this.#expires[i] !== 0)) this.#setExpiry(i, ttl, now);
      if (this.#sizeOf !== undefined) {
        const old = this.#weight[i]!;
        if (old !== w) {
          this.#weight[i] = w;
          this.#totalWeight += w - old;
          this.#qWeight[this.#queue[i]!]! += w - old;
        }
      }
      this.#onUpdate(i);
    } else {
      if (this.#p !== P_WTLFU) this.#makeRoom(w);
      i = this.#alloc();
      this.#keys[i] = key;
      this.#vals[i] = value;
      // Without sizeOf every entry weighs 1 and #weight is never read (see #wt).
      if (this.#sizeOf !== undefined) this.#weight[i] = w;
      this.#totalWeight += w;
      this.#indexSet(key, i);
      // A free slot has no deadline (#remove clears it): only a ttl needs writing.
      if (ttl > 0) this.#setExpiry(i, ttl, now);
      this.#onInsert(i, key);
    }
    if (this.#expiring > 0 && now >= this.#wheel.nextAdvanceAt) this.#purge(now);
    return this;
  }

  /** Remove `key`; true if a live entry was removed (counted as an explicit eviction). */
  delete(key: K): boolean {
    const i = this.#find(key);
    if (i === NIL) return false;
    if (this.#isExpired(i)) {
      this.#remove(i, 'expired');
      return false;
    }
    this.#remove(i, 'explicit');
    return true;
  }

  /** Remove every entry (each counted as an explicit eviction). */
  clear(): void {
    for (const i of this.#slots()) this.#remove(i, 'explicit');
  }

  /** Remove every expired entry now. */
  purge(): void {
    const now = this.#clock.now();
    if (this.#expiring === 0) return;
    // Everything: walk the whole wheel, whatever was processed already.
    this.#wheel.visitAll(now, this.#expireIfDue);
  }

  /** Live keys, most recently used last for lru (list order of the policy otherwise). */
  *keys(): IterableIterator<K> {
    for (const [k] of this.entries()) yield k;
  }

  *entries(): IterableIterator<[K, V]> {
    for (const i of this.#slots()) {
      if (!this.#isExpired(i)) yield [this.#keys[i]!, this.#vals[i]!];
    }
  }

  /** Live entries with their remaining ttl, to prime another store with `load`. */
  dump(): LocalStoreDumpEntry<K, V>[] {
    const now = this.#clock.now();
    const out: LocalStoreDumpEntry<K, V>[] = [];
    for (const i of this.#slots()) {
      if (this.#isExpired(i)) continue;
      const exp = this.#expires[i]!;
      out.push([this.#keys[i]!, this.#vals[i]!, exp === 0 ? 0 : exp - now]);
    }
    return out;
  }

  /** Prime from a dump (entries whose ttl is <= 0 are skipped unless 0 = no expiry). */
  load(entries: Iterable<LocalStoreDumpEntry<K, V>>): number {
    let n = 0;
    for (const [k, v, ttl] of entries) {
      if (ttl < 0) continue;
      this.set(k, v, { ttlMs: ttl });
      n++;
    }
    return n;
  }

  stats(): LocalStoreStats {
    const s: LocalStoreStats = {
      hits: this.#hits,
      misses: this.#misses,
      evictions: { ...this.#evictions },
      size: this.#map.size + this.#ints.size,
      weight: this.#totalWeight,
    };
    if (this.#p === P_WTLFU) s.window = this.#windowMax;
    return s;
  }

  /** Stop the purge loop; the store stays readable, but set() throws ClosedError. */
  close(): void {
    this.#closed = true;
    this.#purgeLoop?.abort();
    this.#purgeLoop = undefined;
  }

  // ---------------------------------------------------------------- index

  /** The slot of `key`, or NIL. */
  #find(key: K): number {
    if (isIntKey(key)) return this.#ints.get(key);
    const i = this.#map.get(key);
    return i === undefined ? NIL : i;
  }

  /** Index `key` (absent) at slot i. */
  #indexSet(key: K, i: number): void {
    if (isIntKey(key)) this.#ints.set(key, i);
    else this.#map.set(key, i);
  }

  #indexDelete(key: K): void {
    if (isIntKey(key)) this.#ints.delete(key);
    else this.#map.delete(key);
  }

  /** Every indexed slot (a copy: safe to remove while iterating). */
  #slots(): number[] {
    const out: number[] = [];
    this.#ints.collectSlots(out);
    for (const i of this.#map.values()) out.push(i);
    return out;
  }

  // ---------------------------------------------------------------- slots

  #alloc(): number {
    if (this.#freeTop > 0) return this.#free[--this.#freeTop]!;
    if (this.#used === this.#capacity) this.#grow();
    return this.#used++;
  }

  #grow(): void {
    const c = this.#capacity * 2;
    const grow32 = (a: Int32Array) => {
      const b = new Int32Array(c);
      b.set(a);
      return b;
    };
    const grow64 = (a: Float64Array) => {
      const b = new Float64Array(c);
      b.set(a);
      return b;
    };
    this.#next = grow32(this.#next);
    this.#prev = grow32(this.#prev);
    this.#hash = grow32(this.#hash);
    this.#free = grow32(this.#free);
    this.#weight = grow64(this.#weight);
    this.#expires = grow64(this.#expires);
    this.#ttl = grow64(this.#ttl);
    const q = new Uint8Array(c);
    q.set(this.#queue);
    this.#queue = q;
    this.#wheel.grow(c);
    if (this.#p === P_LFU) {
      const f = new Uint32Array(c);
      f.set(this.#freq);
      this.#freq = f;
    }
    this.#capacity = c;
  }

  #checkedWeight(value: V, key: K): number {
    const w = this.#sizeOf!(value, key);
    if (!(typeof w === 'number' && w >= 0 && Number.isFinite(w))) {
      throw invalid('sizeOf', `must return a finite number >= 0, got ${String(w)} for a value`);
    }
    return w;
  }

  /** Weight of slot i: 1 for every entry without sizeOf. */
  #wt(i: number): number {
    return this.#sizeOf === undefined ? 1 : this.#weight[i]!;
  }

  /** Unlink slot `i` from everything and free it. */
  #remove(i: number, cause: EvictionCause): void {
    const key = this.#keys[i]!;
    const value = this.#vals[i]!;
    this.#indexDelete(key);
    if (this.#p === P_LFU) this.#lfuUnlink(i);
    else this.#unlink(this.#queue[i]!, i);
    const w = this.#wt(i);
    this.#totalWeight -= w;
    if (this.#p !== P_LFU) this.#qWeight[this.#queue[i]!]! -= w;
    if (this.#expiring > 0 && this.#expires[i] !== 0) {
      this.#wheel.unschedule(i);
      this.#expiring--;
      this.#expires[i] = 0;
    }
    this.#keys[i] = undefined;
    this.#vals[i] = undefined;
    this.#free[this.#freeTop++] = i;
    this.#evictions[cause]++;
    this.#onEvict?.(key, value, cause);
  }

  // ---------------------------------------------------------------- circular lists

  #pushTail(q: number, i: number): void {
    this.#queue[i] = q;
    pushTail(this.#next, this.#prev, this.#heads, q, i);
  }

  #unlink(q: number, i: number): void {
    unlink(this.#next, this.#prev, this.#heads, q, i);
  }

  #moveToTail(q: number, i: number): void {
    const h = this.#heads[q]!;
    if (h === i) {
      // Rotating a circular list: the head becomes the tail for free.
      this.#heads[q] = this.#next[i]!;
      return;
    }
    if (this.#prev[h] === i) return; // already the tail
    this.#unlink(q, i);
    this.#pushTail(q, i);
  }

  /** Move slot i from its list to the tail of list q, carrying its weight. */
  #transfer(i: number, q: number): void {
    const from = this.#queue[i]!;
    const w = this.#wt(i);
    this.#unlink(from, i);
    this.#qWeight[from]! -= w;
    this.#pushTail(q, i);
    this.#qWeight[q]! += w;
  }

  // ---------------------------------------------------------------- policy hooks

  #onAccess(i: number): void {
    switch (this.#p) {
      case P_LRU:
        this.#moveToTail(MAIN, i);
        return;
      case P_LFU:
        this.#lfuBump(i);
        return;
      case P_WTLFU:
        this.#recordRead(this.#hash[i]!);
        this.#hitsInSample++;
        this.#wtlfuReorder(i);
        return;
      default:
        return; // fifo, ttl: reads do not reorder
    }
  }

  #onUpdate(i: number): void {
    switch (this.#p) {
      case P_LRU:
        this.#moveToTail(MAIN, i);
        this.#makeRoom(0);
        return;
      case P_LFU:
        this.#lfuBump(i);
        this.#makeRoom(0);
        return;
      case P_WTLFU:
        this.#recordRead(this.#hash[i]!);
        this.#wtlfuReorder(i);
        // Counted entries keep the total on an update: nothing to evict.
        if (this.#sizeOf !== undefined) this.#wtlfuEvict(i);
        return;
      default:
        this.#makeRoom(0);
    }
  }

  #onInsert(i: number, key: K): void {
    switch (this.#p) {
      case P_LFU:
        this.#freq[i] = 1;
        this.#lfuLink(i, 1);
        this.#minFreq = 1;
        return;
      case P_WTLFU: {
        const h = hashKey(key);
        this.#hash[i] = h;
        // The insert's increment goes through the read buffer too (see #recordRead): the
        // candidate's count matters only when it leaves the window, by which time the buffer
        // has usually been drained.
        this.#recordRead(h);
        if (this.#sampled) this.#missesInSample++;
        if (this.#ghostMask !== 0) this.#ghostCheck(h);
        this.#pushTail(WINDOW, i);
        this.#qWeight[WINDOW]! += this.#wt(i);
        this.#wtlfuEvict(i);
        return;
      }
      default:
        this.#pushTail(MAIN, i);
        this.#qWeight[MAIN]! += this.#wt(i);
    }
  }

  /** lru/fifo/ttl/lfu: evict until `incoming` more weight fits. */
  #makeRoom(incoming: number): void {
    while (this.#totalWeight + incoming > this.#max && this.size > 0) {
      let victim: number;
      if (this.#p === P_LFU) {
        victim = this.#lfuVictim();
      } else {
        victim = this.#heads[MAIN]!;
      }
      this.#remove(victim, 'size');
    }
  }

  // ---------------------------------------------------------------- LFU

  /**
   * The LFU lists' heads are in a Map by frequency (frequencies are unbounded); the list
   * functions work on a heads array, so each call goes through a one-element one.
   */
  #lfuLink(i: number, f: number): void {
    const heads = this.#lfuHead;
    const h = this.#lfuHeads.get(f);
    heads[0] = h === undefined ? NIL : h;
    pushTail(this.#next, this.#prev, heads, 0, i);
    if (h === undefined) this.#lfuHeads.set(f, i);
  }

  #lfuUnlink(i: number): void {
    const f = this.#freq[i]!;
    const heads = this.#lfuHead;
    const h = this.#lfuHeads.get(f)!;
    heads[0] = h;
    unlink(this.#next, this.#prev, heads, 0, i);
    const after = heads[0]!;
    if (after === NIL) this.#lfuHeads.delete(f);
    else if (after !== h) this.#lfuHeads.set(f, after);
  }

  #lfuBump(i: number): void {
    const f = this.#freq[i]!;
    this.#lfuUnlink(i);
    this.#freq[i] = f + 1;
    this.#lfuLink(i, f + 1);
    if (this.#minFreq === f && !this.#lfuHeads.has(f)) this.#minFreq = f + 1;
  }

  #lfuVictim(): number {
    let h = this.#lfuHeads.get(this.#minFreq);
    if (h === undefined) {
      // minFreq went stale after a delete or expiry: find the smallest non-empty frequency.
      let min = Number.POSITIVE_INFINITY;
      for (const f of this.#lfuHeads.keys()) if (f < min) min = f;
      this.#minFreq = min;
      h = this.#lfuHeads.get(min)!;
    }
    return h;
  }

  // ---------------------------------------------------------------- W-TinyLFU

  /**
   * A hit's sketch increment, deferred: the hash goes into a small ring, and the sketch counts
   * the ring in one batch when it fills. The increment is a read-modify-write at a random place
   * of a table of 8 bytes per entry of capacity (128 KiB at 10,000 entries): done inline, each
   * waits on memory behind the rest of the read; batched, the CPU overlaps them. The segment
   * move of a hit is not deferred (it touches the entry's own slot). Admission decisions may
   * therefore miss up to 31 recent hits, as Caffeine's do while its read buffer waits.
   */
  #recordRead(h: number): void {
    const n = this.#readCount;
    this.#reads[n] = h;
    if (n + 1 === READ_BUFFER) {
      this.#sketch!.incrementAll(this.#reads, READ_BUFFER);
      this.#readCount = 0;
    } else {
      this.#readCount = n + 1;
    }
  }

  #wtlfuReorder(i: number): void {
    const q = this.#queue[i]!;
    if (q === WINDOW) {
      this.#moveToTail(WINDOW, i);
    } else if (q === PROBATION) {
      if (this.#ghostMask !== 0) this.#probationHit();
      this.#transfer(i, PROTECTED);
      this.#demoteFromProtected();
    } else {
      this.#moveToTail(PROTECTED, i);
    }
  }

  #demoteFromProtected(): void {
    for (let n = 0; n < QUEUE_TRANSFER_THRESHOLD; n++) {
      if (this.#qWeight[PROTECTED]! <= this.#protectedMax) return;
      const d = this.#heads[PROTECTED]!;
      if (d === NIL) return;
      this.#transfer(d, PROBATION);
    }
  }

  /** Caffeine's maintenance after a write: window overflow to probation, then evict from main. */
  #wtlfuEvict(written: number): void {
    let candidates = 0;
    while (this.#qWeight[WINDOW]! > this.#windowMax) {
      const h = this.#heads[WINDOW]!;
      // The entry just written stays in the window even past its size, so that a set is always
      // followed by a hit (with weights, a tiny window could otherwise send it straight to
      // admission, and lose).
      if (h === NIL || h === written) break;
      this.#transfer(h, PROBATION);
      candidates++;
    }
    if (this.#totalWeight > this.#max) {
      // The common case, count-bounded and one over: one window entry against probation's LRU.
      const victim = this.#heads[PROBATION]!;
      const candidate = victim === NIL ? NIL : this.#prev[victim]!;
      if (
        candidates === 1 &&
        this.#sizeOf === undefined &&
        this.#totalWeight === this.#max + 1 &&
        candidate !== victim &&
        victim !== NIL &&
        victim !== written &&
        candidate !== written
      ) {
        if (this.#admit(this.#hash[candidate]!, this.#hash[victim]!)) this.#evict(victim, false);
        else this.#evict(candidate, true);
      } else {
        this.#evictFromMain(candidates, written);
      }
    }
    this.#climb();
  }

  #evictFromMain(candidatesIn: number, written: number): void {
    let candidates = candidatesIn;
    const heads = this.#heads;
    const ph = heads[PROBATION]!;
    let victim = ph;
    let candidate = ph === NIL ? NIL : this.#prev[ph]!;
    while (this.#totalWeight > this.#max) {
      if (candidates <= 0) {
        // No window entries waiting for admission: evict main's victims. (Caffeine would pit the
        // window's newest entry against them; we never evict the entry just written, so that a
        // set is always followed by a hit.)
        candidate = NIL;
        candidates = 0;
      }
      if (victim === written) victim = this.#nextOrNil(victim);
      if (candidate === written) candidate = this.#prevOrNil(candidate);
      if (candidate === NIL && victim === NIL) {
        // Main's probation is empty: take protected's LRU, then window's (never the entry
        // just written).
        let v = heads[PROTECTED]!;
        if (v === written) v = this.#nextOrNil(v);
        if (v === NIL) v = heads[WINDOW]!;
        if (v === written) v = this.#nextOrNil(v);
        if (v === NIL) return;
        this.#evict(v, this.#queue[v] === WINDOW);
        continue;
      }
      if (victim === NIL) {
        const prev = this.#prevOrNil(candidate);
        candidates--;
        this.#evict(candidate, true);
        candidate = prev;
        continue;
      }
      if (candidate === NIL) {
        const nxt = this.#nextOrNil(victim);
        this.#evict(victim, false);
        victim = nxt;
        continue;
      }
      if (candidate === victim) {
        const prev = this.#prevOrNil(candidate);
        candidates--;
        this.#evict(candidate, true);
        candidate = prev;
        victim = heads[PROBATION]!;
        continue;
      }
      candidates--;
      if (this.#admit(this.#hash[candidate]!, this.#hash[victim]!)) {
        const evict = victim;
        victim = this.#nextOrNil(victim);
        const prevCandidate = this.#prevOrNil(candidate);
        this.#evict(evict, false);
        candidate = prevCandidate === evict ? NIL : prevCandidate;
        if (victim === evict) victim = NIL;
      } else {
        const evict = candidate;
        candidate = this.#prevOrNil(candidate);
        this.#evict(evict, true);
      }
    }
  }

  /** Previous slot in i's list, NIL at its head (the lists are circular). */
  #prevOrNil(i: number): number {
    const q = this.#queue[i]!;
    return this.#heads[q] === i ? NIL : this.#prev[i]!;
  }

  /** Next slot in i's list, NIL at its tail. */
  #nextOrNil(i: number): number {
    const n = this.#next[i]!;
    return n === this.#heads[this.#queue[i]!] ? NIL : n;
  }

  /** Evict slot i for size; a window candidate that lost admission is remembered as a ghost. */
  #evict(i: number, fromWindow: boolean): void {
    if (fromWindow && this.#ghostMask !== 0) {
      const h = this.#hash[i]!;
      const seq = (this.#ghostSeq + 1) & 0xffff;
      this.#ghostSeq = seq;
      this.#ghosts[h & this.#ghostMask] = (h & 0xffff0000) | seq || 1;
    }
    this.#remove(i, 'size');
  }

  /**
   * Shadow climber, on a miss of hash h: if h is among the last rejected candidates (as many as
   * 1.5 x probation holds), a window that much larger would have kept it: grow the window by one
   * entry. Its counterpart is `#probationHit`: a hit at main's LRU end (probation) is what main
   * would lose if it were that much smaller: shrink the window by one entry.
   */
  #ghostCheck(h: number): void {
    const slot = h & this.#ghostMask;
    const g = this.#ghosts[slot]!;
    if (g === 0 || (g & 0xffff0000) !== (h & 0xffff0000)) return;
    this.#ghosts[slot] = 0;
    const age = (this.#ghostSeq - g) & 0xffff;
    const size = this.size;
    const probationEntries =
      this.#sizeOf === undefined
        ? this.#qWeight[PROBATION]!
        : (this.#qWeight[PROBATION]! * size) / Math.max(1, this.#totalWeight);
    if (age >= Math.min(0xffff, Math.max(1, GHOST_SPAN * probationEntries))) return;
    this.#adjustment = this.#climbUnit();
    this.#increaseWindow();
  }

  #probationHit(): void {
    this.#adjustment = -this.#climbUnit();
    this.#decreaseWindow();
  }

  /** One entry's worth of weight (1 without sizeOf). */
  #climbUnit(): number {
    if (this.#sizeOf === undefined) return 1;
    const size = this.size;
    return size === 0 ? 1 : Math.max(1, Math.round(this.#totalWeight / size));
  }

  #admit(candidateHash: number, victimHash: number): boolean {
    const sketch = this.#sketch!;
    const candidateFreq = sketch.frequency(candidateHash);
    // A candidate never counted can neither beat the victim nor be a warm one: skip its read.
    if (candidateFreq === 0) return false;
    const victimFreq = sketch.frequency(victimHash);
    if (candidateFreq > victimFreq) return true;
    if (candidateFreq >= ADMIT_HASHDOS_THRESHOLD) {
      // A hot candidate losing to a hot victim is what a flooding attack exploits: let a warm
      // candidate in now and then.
      return Math.floor(this.#random() * 128) === 0;
    }
    return false;
  }

  #climb(): void {
    if (!this.#adaptive || this.#climber !== 'sampled') return;
    if (!this.#warm) {
      // Samples taken while the cache fills measure the warm-up, not the window: wait until full.
      if (this.#totalWeight < this.#max) {
        this.#hitsInSample = 0;
        this.#missesInSample = 0;
        return;
      }
      this.#warm = true;
    }
    const requests = this.#hitsInSample + this.#missesInSample;

    if (requests < this.#climberSample) return;
    const hitRate = this.#hitsInSample / requests;
    const change = hitRate - this.#previousHitRate;
    const amount = change >= 0 ? this.#stepSize : -this.#stepSize;
    this.#stepSize =
      Math.abs(change) >= HILL_CLIMBER_RESTART_THRESHOLD
        ? HILL_CLIMBER_STEP_PERCENT * this.#max * (amount >= 0 ? 1 : -1)
        : HILL_CLIMBER_STEP_DECAY_RATE * amount;
    this.#previousHitRate = hitRate;
    this.#hitsInSample = 0;
    this.#missesInSample = 0;
    this.#adjustment = Math.trunc(amount);
    if (this.#adjustment > 0) this.#increaseWindow();
    else if (this.#adjustment < 0) this.#decreaseWindow();
  }

  /**
   * Grow the window by the climber's adjustment. Caffeine takes the quota from the protected
   * segment only (so the window stops near 80%); here it may then take probation's share too, up
   * to all but one unit, so that on a purely recency-driven workload the policy can become LRU.
   * Entries move from main's LRU ends into the window, at most QUEUE_TRANSFER_THRESHOLD per step;
   * the rest of the shift happens through eviction as new entries arrive.
   */
  #increaseWindow(): void {
    let quota = Math.min(this.#adjustment, this.#max - 1 - this.#windowMax);
    if (quota <= 0) return;
    this.#windowMax += quota;
    this.#protectedMax = Math.max(0, this.#protectedMax - quota);
    this.#demoteFromProtected();
    for (let n = 0; n < QUEUE_TRANSFER_THRESHOLD; n++) {
      let c = this.#heads[PROBATION]!;
      if (c === NIL || quota < this.#wt(c)) c = this.#heads[PROTECTED]!;
      if (c === NIL) break;
      const w = this.#wt(c);
      if (quota < w) break;
      quota -= w;
      this.#transfer(c, WINDOW);
    }
  }

  #decreaseWindow(): void {
    if (this.#windowMax <= 1) return;
    let quota = Math.min(-this.#adjustment, Math.max(0, this.#windowMax - 1));
    this.#windowMax -= quota;
    this.#protectedMax = Math.min(this.#protectedMax + quota, this.#max - this.#windowMax);
    for (let n = 0; n < QUEUE_TRANSFER_THRESHOLD; n++) {
      const c = this.#heads[WINDOW]!;
      if (c === NIL) break;
      const w = this.#wt(c);
      if (quota < w) break;
      quota -= w;
      this.#transfer(c, PROBATION);
    }
  }

  // ---------------------------------------------------------------- expiry

  #isExpired(i: number): boolean {
    const exp = this.#expires[i]!;
    return exp !== 0 && exp <= this.#clock.now();
  }

  #setExpiry(i: number, ttl: number, now: number): void {
    if (this.#expires[i] !== 0) {
      this.#wheel.unschedule(i);
      this.#expiring--;
    }
    this.#ttl[i] = ttl;
    if (ttl > 0) {
      this.#expires[i] = now + ttl;
      this.#wheel.schedule(i, this.#expires[i]!);
      this.#expiring++;
    } else {
      this.#expires[i] = 0;
    }
  }

  #maybePurge(): void {
    const now = this.#clock.now();
    if (now >= this.#wheel.nextAdvanceAt) this.#purge(now);
  }

  /** Remove the expired entries of every bucket whose tick has fully elapsed since the last purge. */
  #purge(now: number): void {
    this.#wheel.advance(now, this.#expireIfDue);
  }

  #startPurgeLoop(): void {
    const ac = new AbortController();
    this.#purgeLoop = ac;
    const loop = async () => {
      while (!ac.signal.aborted) {
        await this.#clock.sleep(this.#resolution, ac.signal);
        if (this.#expiring > 0) this.#purge(this.#clock.now());
      }
    };
    loop().catch(() => {
      /* aborted by close() */
    });
  }
}
