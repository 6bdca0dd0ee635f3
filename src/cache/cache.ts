import type { Logger } from 'pino';
import { type Clock, systemClock, withTimeout } from '../core/clock.js';
import { CdpError, ClosedError, errorMessage } from '../core/errors.js';
import { newId } from '../core/ids.js';
import {
  type CacheEntry,
  type CacheOptions,
  type CacheTimings,
  cacheTimings,
  type GetOrLoadOptions,
  type Loader,
} from './cache-options.js';
import { CacheInstruments, type CacheStats } from './cache-stats.js';
import type { CacheSetOptions, CacheStore } from './cache-store.js';
import { Deadlines } from './internal/deadlines.js';
import { checkTtl } from './internal/ttl.js';
import { type Watch, Watches } from './internal/watches.js';
import type { Invalidation, InvalidationBus } from './invalidation-bus.js';
import { MemoryCacheStore } from './memory-cache-store.js';
import type { StampedeLock } from './stampede-lock.js';

export class CacheLoadError extends CdpError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('CACHE_LOAD_FAILED', message, options);
  }
}

/**
 * Cache-aside and its siblings over one or two tiers:
 *
 * - cache-aside: `getOrLoad(key, loader)`; concurrent misses of a key in this process share one
 *   load (single flight); with `lock`, one load across processes (others wait for L2, bounded).
 * - read-through: `get(key)` with a `loader` bound at construction.
 * - write-through: `writeThrough(key, value, write)` stores first, then caches (or invalidates).
 * - refresh-ahead, stale-while-revalidate, stale-if-error, negative caching: options above.
 * - priming: `prime(entries)`, `primeFrom(source)`, `dump()`.
 *
 * Tiers: L1 in process (LocalStore), L2 shared (e.g. Redis). Writes and deletes go to both and
 * publish an invalidation on the bus, so other instances drop their L1 copy. While the bus is
 * down, L1 is emptied and bypassed, and emptied again when it is back: no stale L1 read survives
 * a gap. L2 failures never fail a read: they count in cdp_cache_l2_errors_total and the cache
 * carries on with L1 and the loader.
 */
export class Cache<V> {
  readonly name: string;
  readonly namespace: string;
  readonly instanceId = newId();
  readonly #l1: MemoryCacheStore<CacheEntry<V>>;
  readonly #l2: CacheStore<CacheEntry<V>> | undefined;
  /** L2 has versioned fills: a load stores into L2 only if the key did not change meanwhile. */
  readonly #versioned: boolean;
  readonly #loader: Loader<V> | undefined;
  readonly #bus: InvalidationBus | undefined;
  readonly #lock: StampedeLock | undefined;
  readonly #o: CacheTimings;
  readonly #clock: Clock;
  readonly #logger: Logger | undefined;
  readonly #i: CacheInstruments;
  readonly #inflight = new Map<string, Promise<V | undefined>>();
  readonly #watches = new Watches();
  readonly #deadlines: Deadlines;
  readonly #background = new Set<Promise<unknown>>();
  #busUp = true;
  #closed = false;

  constructor(options: CacheOptions<V> = {}) {
    this.name = options.name ?? 'default';
    this.namespace = options.namespace ?? this.name;
    this.#o = cacheTimings(options);
    this.#loader = options.loader;
    this.#l2 = options.l2;
    this.#versioned = Boolean(
      options.l2?.getWithToken && options.l2.fillToken && options.l2.setIfUnchanged,
    );
    this.#bus = options.bus;
    this.#lock = options.lock;
    this.#clock = options.clock ?? systemClock;
    this.#deadlines = new Deadlines(this.#clock, Math.max(1, Math.min(25, this.#o.l2Timeout / 4)));
    this.#logger = options.logger;
    this.#i = new CacheInstruments(this.name, options.registry, options.logger);
    const l1Options = options.l1 ?? { maxEntries: 10_000 };
    const userOnEvict = l1Options.onEvict;
    this.#l1 = new MemoryCacheStore<CacheEntry<V>>({
      ...l1Options,
      clock: l1Options.clock ?? this.#clock,
      onEvict: (k, v, cause) => {
        this.#i.evicted(cause);
        userOnEvict?.(k, v, cause);
      },
    });
  }

  /** Start listening to the bus (call once before use when a bus is configured). */
  async start(): Promise<this> {
    if (this.#bus) {
      await this.#bus.subscribe(
        (m) => this.#onInvalidation(m),
        (state) => {
          // Messages may have been lost: nothing in L1 can be trusted until the bus is back.
          this.#busUp = state === 'up';
          this.#invalidateAll();
          this.#l1.local.clear();
          this.#logger?.warn({ cache: this.name, state }, 'invalidation bus gap: L1 cleared');
        },
      );
    }
    return this;
  }

  // ---------------------------------------------------------------- reads

  /** Read-through when a loader was bound; otherwise the cached value (L1, then L2) or undefined. */
  async get(key: string): Promise<V | undefined> {
    if (this.#loader) return this.getOrLoad(key, this.#loader);
    const env = await this.#lookup(key);
    if (!env) {
      this.#i.miss();
      return undefined;
    }
    const now = this.#clock.now();
    if (env.f !== 0 && env.f <= now) {
      this.#i.miss();
      return undefined;
    }
    this.#i.hit(env.tier);
    return env.n ? undefined : env.v;
  }

  /**
   * Cache-aside: the cached value, or the loader's (stored, then returned). Concurrent misses of
   * `key` share one load, and one error: a throwing loader caches nothing and every waiter gets
   * the same error. `undefined` from the loader means "not found" (cached if negativeTtlMs > 0).
   */
  async getOrLoad(
    key: string,
    loader: Loader<V>,
    options?: GetOrLoadOptions,
  ): Promise<V | undefined> {
    if (this.#closed) throw new ClosedError(`cache ${this.name}`);
    const read: { token?: string | null } = {};
    const env = await this.#lookup(key, read);
    const now = this.#clock.now();
    if (env) {
      const fresh = env.f === 0 || now < env.f;
      if (fresh) {
        this.#i.hit(env.tier);
        if (
          this.#o.refreshAhead > 0 &&
          env.f !== 0 &&
          env.f - now <= this.#o.refreshAhead &&
          !env.n
        ) {
          this.#refreshInBackground(key, loader, options);
        }
        return env.n ? undefined : env.v;
      }
      if (!env.n && this.#o.swr > 0 && now < env.f + this.#o.swr) {
        this.#i.hit(env.tier);
        this.#i.staleServed('revalidate');
        this.#refreshInBackground(key, loader, options);
        return env.v;
      }
    }
    this.#i.miss();
    try {
      return await this.#singleFlight(key, loader, options, read.token);
    } catch (err) {
      if (env && !env.n && this.#o.sie > 0 && now < env.f + this.#o.sie) {
        this.#i.staleServed('error');
        this.#logger?.warn(
          { cache: this.name, key, err: errorMessage(err) },
          'served stale on error',
        );
        return env.v;
      }
      throw err;
    }
  }

  // ---------------------------------------------------------------- writes

  /** Store a value in every tier and tell other instances to drop their L1 copy. */
  async set(key: string, value: V, options?: CacheSetOptions): Promise<void> {
    if (this.#closed) throw new ClosedError(`cache ${this.name}`);
    // A load already running read the system of record before this write: it must not store.
    this.#invalidateKey(key, false);
    await this.#store(key, value, options, false);
    await this.#publish({ keys: [key] });
  }

  /** Remove a key from every tier and from other instances' L1. */
  async delete(key: string): Promise<void> {
    // First, before any await: a load in flight for key will not store what it read.
    this.#invalidateKey(key, false);
    this.#l1.local.delete(key);
    await this.#l2Call('delete', () => this.#l2!.delete(this.#l2Key(key)));
    await this.#publish({ keys: [key] });
  }

  /** Remove every key set with `tag`, in every tier and instance. */
  async invalidateTag(tag: string): Promise<void> {
    // A load's tags may only be known once it finishes (an L2 copy carries them): every load in
    // flight is treated as covered.
    this.#invalidateAll();
    await this.#l1.deleteTag(tag);
    await this.#l2Call('deleteTag', () => this.#l2!.deleteTag(this.#l2Tag(tag)));
    await this.#publish({ tags: [tag] });
  }

  /** Empty this namespace in every tier and instance. */
  async clear(): Promise<void> {
    this.#invalidateAll();
    await this.#l1.clear();
    await this.#l2Call('clear', () => this.#l2!.clear());
    await this.#publish({ clear: true });
  }

  /**
   * Write-through: `write` updates the system of record first; only when it succeeds is the
   * cache updated (`mode: 'set'`, default) or the key invalidated (`mode: 'invalidate'`, safer
   * when concurrent writers may race). If `write` fails, the cache is left as it was.
   */
  async writeThrough(
    key: string,
    value: V,
    write: (key: string, value: V) => Promise<void>,
    options?: CacheSetOptions & { mode?: 'set' | 'invalidate' },
  ): Promise<void> {
    await write(key, value);
    if (options?.mode === 'invalidate') await this.delete(key);
    else await this.set(key, value, options);
  }

  /** Prime from entries (e.g. a dump): returns how many were stored. */
  async prime(entries: Iterable<[key: string, value: V, ttlMs?: number]>): Promise<number> {
    let n = 0;
    for (const [k, v, ttlMs] of entries) {
      await this.#store(k, v, ttlMs === undefined ? undefined : { ttlMs }, false);
      n++;
    }
    return n;
  }

  /** Prime from a source of entries, e.g. a query over the hottest rows. */
  async primeFrom(
    source: () => AsyncIterable<[key: string, value: V]> | Iterable<[key: string, value: V]>,
  ): Promise<number> {
    let n = 0;
    for await (const [k, v] of source()) {
      await this.#store(k, v, undefined, false);
      n++;
    }
    return n;
  }

  /** L1's live entries with remaining ttl (only values, no negative entries), for `prime`. */
  dump(): [key: string, value: V, ttlMs: number][] {
    const out: [string, V, number][] = [];
    const now = this.#clock.now();
    for (const [k, env] of this.#l1.local.dump()) {
      if (env.n) continue;
      if (env.f !== 0 && env.f <= now) continue;
      out.push([k, env.v as V, env.f === 0 ? 0 : env.f - now]);
    }
    return out;
  }

  stats(): CacheStats {
    return this.#i.stats(this.#l1.local.stats());
  }

  /** Wait for background refreshes, stop the bus subscription, close L1 (not the L2 you passed). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled([...this.#background]);
    await this.#bus?.close();
    await this.#l1.close();
  }

  // ---------------------------------------------------------------- internals

  /**
   * L1, then L2. With `read` and a versioned L2, the L2 read also takes the key's version token
   * (same round trip) into `read.token` (null if L2 failed), for a load that follows a miss.
   */
  async #lookup(
    key: string,
    read?: { token?: string | null },
  ): Promise<(CacheEntry<V> & { tier: 'l1' | 'l2' }) | undefined> {
    if (this.#busUp) {
      const e = this.#l1.local.get(key);
      if (e) return { ...e, tier: 'l1' };
    }
    if (!this.#l2) return undefined;
    const w = this.#watches.take(key);
    let e: CacheEntry<V> | undefined;
    try {
      if (read && this.#versioned) {
        const r = await this.#l2Call('get', () => this.#l2!.getWithToken!(this.#l2Key(key)));
        e = r?.value;
        // null: L2 did not answer; the load then neither waits for it again nor fills it.
        read.token = r ? r.token : null;
      } else {
        e = await this.#l2Call('get', () => this.#l2!.get(this.#l2Key(key)));
      }
    } finally {
      this.#watches.release(key, w);
    }
    if (!e) return undefined;
    const now = this.#clock.now();
    if (e.s !== 0 && e.s <= now) return undefined;
    // Invalidated while L2 answered: the value may predate the invalidation; L1 must not keep it.
    if (this.#busUp && !w.stale) this.#l1Put(key, e, now, undefined);
    return { ...e, tier: 'l2' };
  }

  #singleFlight(
    key: string,
    loader: Loader<V>,
    options?: GetOrLoadOptions,
    token?: string | null,
  ): Promise<V | undefined> {
    const running = this.#inflight.get(key);
    if (running) return running;
    const w = this.#watches.take(key);
    const p = this.#load(key, loader, options, w, token).finally(() => {
      this.#watches.release(key, w);
      if (this.#inflight.get(key) === p) this.#inflight.delete(key);
    });
    this.#inflight.set(key, p);
    return p;
  }

  #refreshInBackground(key: string, loader: Loader<V>, options?: GetOrLoadOptions): void {
    if (this.#inflight.has(key) || this.#closed) return;
    const p = this.#singleFlight(key, loader, options).catch((err) => {
      this.#logger?.warn(
        { cache: this.name, key, err: errorMessage(err) },
        'background refresh failed',
      );
    });
    this.#background.add(p);
    void p.finally(() => this.#background.delete(p));
  }

  async #load(
    key: string,
    loader: Loader<V>,
    options: GetOrLoadOptions | undefined,
    w: Watch,
    token: string | null | undefined,
  ): Promise<V | undefined> {
    if (!this.#lock) return this.#callLoader(key, loader, options, w, token);
    const lockKey = `${this.namespace}:lock:${key}`;
    const deadline = this.#clock.now() + this.#o.lockWait;
    for (;;) {
      const held = await this.#lockCall(() => this.#lock!.tryAcquire(lockKey, this.#o.lockTtl));
      if (held === null) break; // lock unreachable: load without it
      if (held !== undefined) {
        try {
          // Someone may have filled L2 between our miss and our lock.
          const env = await this.#l2Call('get', () => this.#l2!.get(this.#l2Key(key)));
          if (env && (env.f === 0 || env.f > this.#clock.now())) {
            if (this.#busUp && !w.stale) this.#l1Put(key, env, this.#clock.now(), options?.tags);
            return env.n ? undefined : env.v;
          }
          return await this.#callLoader(key, loader, options, w, token);
        } finally {
          await this.#lockCall(() => this.#lock!.release(lockKey, held));
        }
      }
      if (this.#clock.now() >= deadline) break;
      await this.#clock.sleep(this.#o.lockPoll);
      const env = await this.#l2Call('get', () => this.#l2!.get(this.#l2Key(key)));
      if (env && (env.f === 0 || env.f > this.#clock.now())) {
        if (this.#busUp && !w.stale) this.#l1Put(key, env, this.#clock.now(), options?.tags);
        return env.n ? undefined : env.v;
      }
    }
    this.#i.lockFallback(key);
    return this.#callLoader(key, loader, options, w, token);
  }

  async #callLoader(
    key: string,
    loader: Loader<V>,
    options: GetOrLoadOptions | undefined,
    w: Watch,
    token: string | null | undefined,
  ): Promise<V | undefined> {
    // The version token must be read before the loader reads the system of record.
    if (this.#versioned && token === undefined) {
      token = (await this.#l2Call('get', () => this.#l2!.fillToken!(this.#l2Key(key)))) ?? null;
    }
    const t0 = process.hrtime.bigint();
    let value: V | undefined;
    try {
      const p = loader(key);
      value =
        this.#o.loadTimeout > 0
          ? await withTimeout(p, this.#o.loadTimeout, `loading ${key}`, this.#clock)
          : await p;
    } catch (err) {
      this.#i.loadFailed();
      throw err;
    } finally {
      this.#i.loadDuration(Number(process.hrtime.bigint() - t0) / 1e9);
    }
    this.#i.loadSucceeded();
    if (value === undefined) {
      if (this.#o.negativeTtl > 0)
        await this.#store(key, undefined, { ttlMs: this.#o.negativeTtl }, true, w, token);
      return undefined;
    }
    await this.#store(key, value, options, false, w, token);
    return value;
  }

  /**
   * Build the envelope and write L2 then L1 (L2 errors counted, not thrown, except encoding).
   * With a watch (a load's store), nothing is written once the key was invalidated since the
   * load began: checked before the L2 write and again before the L1 write. With a versioned L2
   * the load's L2 write is conditional on the version `token` read before it loaded (no token:
   * the read failed, so no L2 write); refused, it writes no L1 copy either: another process
   * wrote or deleted the key after this load read the system of record.
   */
  async #store(
    key: string,
    value: V | undefined,
    options: CacheSetOptions | undefined,
    negative: boolean,
    w?: Watch,
    token?: string | null,
  ): Promise<void> {
    if (w?.stale) return;
    const ttl = options?.ttlMs === undefined ? this.#o.ttl : checkTtl(options.ttlMs);
    const now = this.#clock.now();
    const f = ttl === 0 ? 0 : now + ttl;
    const extra = negative ? 0 : Math.max(this.#o.swr, this.#o.sie);
    const s = f === 0 ? 0 : f + extra;
    const env: CacheEntry<V> = negative ? { f, s, n: 1 } : { v: value as V, f, s };
    if (options?.tags && options.tags.length > 0) env.t = options.tags;
    if (this.#l2) {
      const l2Ttl = s === 0 ? 0 : s - now;
      const tags = options?.tags?.map((t) => this.#l2Tag(t));
      // An encoding error must reach the caller with the old value untouched: the L2 store
      // encodes before it writes, and we write L1 only after.
      const setOptions = { ttlMs: l2Ttl, ...(tags ? { tags } : {}) };
      try {
        if (w && this.#versioned) {
          if (typeof token === 'string') {
            const stored = await this.#withL2Timeout(
              this.#l2.setIfUnchanged!(this.#l2Key(key), env, token, setOptions),
            );
            if (!stored) {
              this.#i.fillRefused();
              return;
            }
          }
        } else {
          const written = this.#l2.set(this.#l2Key(key), env, setOptions);
          if (w) w.l2Written = true;
          await this.#withL2Timeout(written);
        }
      } catch (err) {
        if (err instanceof CdpError && err.code === 'CACHE_SERIALIZE') throw err;
        this.#i.l2Error('set', err);
      }
    }
    if (this.#busUp && !w?.stale) this.#l1Put(key, env, now, options?.tags);
  }

  #l1Put(key: string, env: CacheEntry<V>, now: number, tags: readonly string[] | undefined): void {
    let ttl = env.s === 0 ? 0 : env.s - now;
    if (env.s !== 0 && ttl <= 0) return;
    if (this.#o.l1Ttl > 0) ttl = ttl === 0 ? this.#o.l1Ttl : Math.min(ttl, this.#o.l1Ttl);
    const t = tags ?? env.t;
    void this.#l1.set(key, env, { ttlMs: ttl, ...(t ? { tags: t } : {}) });
  }

  #onInvalidation(m: Invalidation): void {
    if (m.origin === this.instanceId || m.namespace !== this.namespace) return;
    this.#i.invalidation('in');
    if (m.clear || (m.tags && m.tags.length > 0)) this.#invalidateAll(true);
    if (m.clear) this.#l1.local.clear();
    for (const k of m.keys ?? []) {
      this.#invalidateKey(k, true);
      this.#l1.local.delete(k);
    }
    for (const t of m.tags ?? []) void this.#l1.deleteTag(t);
  }

  /**
   * The key changed: loads in flight must not store, and later callers must not join them (they
   * start a fresh load). `remote`: the invalidation came from another instance, whose L2 delete
   * may have reached L2 before our load's L2 write: that write is deleted again.
   */
  #invalidateKey(key: string, remote: boolean): void {
    const w = this.#watches.invalidate(key);
    if (remote && w?.l2Written) this.#deleteL2Again(key);
    this.#inflight.delete(key);
  }

  /** Every key changed (clear, a tag, a bus gap): no load in flight may store. */
  #invalidateAll(remote = false): void {
    const written = this.#watches.invalidateAll();
    if (remote) for (const key of written) this.#deleteL2Again(key);
    this.#inflight.clear();
  }

  #deleteL2Again(key: string): void {
    void this.#l2Call('delete', () => this.#l2!.delete(this.#l2Key(key)));
  }

  async #publish(body: Omit<Invalidation, 'origin' | 'namespace'>): Promise<void> {
    if (!this.#bus) return;
    try {
      await this.#bus.publish({ origin: this.instanceId, namespace: this.namespace, ...body });
      this.#i.invalidation('out');
    } catch (err) {
      this.#i.l2Error('publish', err);
    }
  }

  #l2Key(key: string): string {
    return `${this.namespace}:${key}`;
  }

  #l2Tag(tag: string): string {
    return `${this.namespace}:${tag}`;
  }

  #withL2Timeout<T>(p: Promise<T>): Promise<T> {
    return this.#o.l2Timeout > 0 ? this.#deadlines.wrap(p, this.#o.l2Timeout, 'L2 call') : p;
  }

  /** Run an L2 call; on error or timeout count it, log it and return undefined. */
  async #l2Call<T>(op: string, fn: () => Promise<T>): Promise<T | undefined> {
    if (!this.#l2) return undefined;
    try {
      return await this.#withL2Timeout(fn());
    } catch (err) {
      this.#i.l2Error(op, err);
      return undefined;
    }
  }

  /** A lock call: undefined = held by another, null = the lock store failed. */
  async #lockCall<T>(fn: () => Promise<T>): Promise<T | null> {
    try {
      return await this.#withL2Timeout(fn());
    } catch (err) {
      this.#i.l2Error('lock', err);
      return null;
    }
  }
}
