import { describe, expect, it } from 'vitest';
import { Cache } from '../../src/cache/cache.js';
import type { CacheEntry } from '../../src/cache/cache-options.js';
import { MemoryCacheStore } from '../../src/cache/memory-cache-store.js';
import { MemoryBusHub } from '../../src/cache/memory-invalidation-bus.js';
import { WriteBehind } from '../../src/cache/write-behind.js';
import { ManualClock } from '../../src/core/clock.js';
import { ValidationError } from '../../src/core/errors.js';
import { createRegistry } from '../../src/core/metrics.js';

const tick = () => new Promise((r) => setImmediate(r));

describe('Cache: cache-aside', () => {
  it('1,000 concurrent misses of one key run one load and all get its value', async () => {
    const cache = new Cache<number>();
    let loads = 0;
    const loader = async () => {
      loads++;
      await tick();
      return 42;
    };
    const got = await Promise.all(Array.from({ length: 1000 }, () => cache.getOrLoad('k', loader)));
    expect(loads).toBe(1);
    expect(new Set(got)).toEqual(new Set([42]));
    expect(await cache.getOrLoad('k', loader)).toBe(42);
    expect(loads).toBe(1);
    await cache.close();
  });

  it('a throwing loader caches nothing and every waiter gets the same error', async () => {
    const cache = new Cache<number>();
    let loads = 0;
    const boom = new Error('db down');
    const loader = async () => {
      loads++;
      await tick();
      throw boom;
    };
    const results = await Promise.allSettled(
      Array.from({ length: 100 }, () => cache.getOrLoad('k', loader)),
    );
    expect(loads).toBe(1);
    for (const r of results) {
      expect(r.status).toBe('rejected');
      expect((r as PromiseRejectedResult).reason).toBe(boom);
    }
    expect(await cache.getOrLoad('k', async () => 7)).toBe(7);
    expect(cache.stats().loadErrors).toBe(1);
    await cache.close();
  });

  it('negative caching keeps "not found" for its own ttl', async () => {
    const clock = new ManualClock(0);
    const cache = new Cache<string>({ clock, ttlMs: 60_000, negativeTtlMs: 1_000 });
    let loads = 0;
    const loader = async () => {
      loads++;
      return undefined;
    };
    expect(await cache.getOrLoad('missing', loader)).toBeUndefined();
    expect(await cache.getOrLoad('missing', loader)).toBeUndefined();
    expect(loads).toBe(1);
    await clock.advance(1_000);
    expect(await cache.getOrLoad('missing', loader)).toBeUndefined();
    expect(loads).toBe(2);
    const noNeg = new Cache<string>({ clock });
    await noNeg.getOrLoad('missing', loader);
    await noNeg.getOrLoad('missing', loader);
    expect(loads).toBe(4);
  });

  it('stale-while-revalidate serves the old value once past ttl and refreshes it in the background', async () => {
    const clock = new ManualClock(0);
    const cache = new Cache<number>({ clock, ttlMs: 1_000, staleWhileRevalidateMs: 5_000 });
    let version = 1;
    let loads = 0;
    const loader = async () => {
      loads++;
      return version;
    };
    expect(await cache.getOrLoad('k', loader)).toBe(1);
    version = 2;
    await clock.advance(1_500);
    expect(await cache.getOrLoad('k', loader)).toBe(1);
    await tick();
    expect(loads).toBe(2);
    expect(await cache.getOrLoad('k', loader)).toBe(2);
    expect(cache.stats().staleServed).toBe(1);
    // Past ttl + swr: a plain miss, loaded in line.
    version = 3;
    await clock.advance(10_000);
    expect(await cache.getOrLoad('k', loader)).toBe(3);
    await cache.close();
  });

  it('refresh-ahead reloads a value about to expire while serving it', async () => {
    const clock = new ManualClock(0);
    const cache = new Cache<number>({ clock, ttlMs: 1_000, refreshAheadMs: 200 });
    let version = 1;
    const loader = async () => version;
    await cache.getOrLoad('k', loader);
    version = 2;
    await clock.advance(700);
    expect(await cache.getOrLoad('k', loader)).toBe(1); // not yet in the refresh window
    await clock.advance(150);
    expect(await cache.getOrLoad('k', loader)).toBe(1); // in the window: served, refresh started
    await tick();
    await clock.advance(300); // past the first value's ttl
    expect(await cache.getOrLoad('k', loader)).toBe(2);
    await cache.close();
  });

  it('stale-if-error serves the old value when the loader fails within the window, then fails', async () => {
    const clock = new ManualClock(0);
    const cache = new Cache<number>({ clock, ttlMs: 1_000, staleIfErrorMs: 2_000 });
    await cache.getOrLoad('k', async () => 1);
    await clock.advance(1_500);
    const failing = async (): Promise<number> => {
      throw new Error('down');
    };
    expect(await cache.getOrLoad('k', failing)).toBe(1);
    await clock.advance(1_500);
    await expect(cache.getOrLoad('k', failing)).rejects.toThrow('down');
  });

  it('read-through uses the loader bound at construction', async () => {
    const cache = new Cache<string>({ loader: async (k) => `v:${k}` });
    expect(await cache.get('a')).toBe('v:a');
    expect(cache.stats().loads).toBe(1);
    expect(await cache.get('a')).toBe('v:a');
    expect(cache.stats().loads).toBe(1);
  });

  it('write-through updates the cache only after the write succeeds', async () => {
    const cache = new Cache<string>();
    await cache.set('k', 'old');
    await expect(
      cache.writeThrough('k', 'new', async () => {
        throw new Error('constraint');
      }),
    ).rejects.toThrow('constraint');
    expect(await cache.get('k')).toBe('old');
    const db = new Map<string, string>();
    await cache.writeThrough('k', 'new', async (k, v) => {
      db.set(k, v);
    });
    expect(db.get('k')).toBe('new');
    expect(await cache.get('k')).toBe('new');
    await cache.writeThrough('k', 'newer', async (k, v) => void db.set(k, v), {
      mode: 'invalidate',
    });
    expect(await cache.get('k')).toBeUndefined();
  });

  it('primes from entries, a source and a dump', async () => {
    const clock = new ManualClock(0);
    const a = new Cache<number>({ clock, ttlMs: 1_000 });
    expect(
      await a.prime([
        ['x', 1],
        ['y', 2, 0],
      ]),
    ).toBe(2);
    expect(
      await a.primeFrom(async function* () {
        yield ['z', 3] as [string, number];
      }),
    ).toBe(1);
    await clock.advance(400);
    const b = new Cache<number>({ clock });
    await b.prime(a.dump());
    expect(await b.get('x')).toBe(1);
    expect(await b.get('y')).toBe(2);
    expect(await b.get('z')).toBe(3);
    await clock.advance(600);
    expect(await b.get('x')).toBeUndefined();
    expect(await b.get('y')).toBe(2);
  });

  it('a bad per-call ttl is rejected at set and leaves the old value', async () => {
    const l2 = new MemoryCacheStore<CacheEntry<number>>({ maxEntries: 10 });
    const cache = new Cache<number>({ l2 });
    await cache.set('k', 1);
    for (const ttlMs of [-1, Number.NaN]) {
      await expect(cache.set('k', 2, { ttlMs })).rejects.toThrow(ValidationError);
      await expect(cache.getOrLoad('other', async () => 3, { ttlMs })).rejects.toThrow(
        ValidationError,
      );
    }
    expect(await cache.get('k')).toBe(1);
    expect(await l2.get('default:k')).toMatchObject({ v: 1 });
    expect(await cache.get('other')).toBeUndefined();
    await cache.close();
  });

  it('a throwing loader caches nothing even with negative caching on', async () => {
    const cache = new Cache<number>({ ttlMs: 60_000, negativeTtlMs: 60_000 });
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, () =>
        cache.getOrLoad('k', async () => {
          await tick();
          throw new Error('db down');
        }),
      ),
    );
    expect(results.every((r) => r.status === 'rejected')).toBe(true);
    expect(cache.stats().loadErrors).toBe(1);
    expect(cache.stats().l1.size).toBe(0);
    expect(await cache.getOrLoad('k', async () => 5)).toBe(5);
    await cache.close();
  });

  it('rejects bad options at construction', () => {
    expect(() => new Cache({ ttlMs: -1 })).toThrow(ValidationError);
    expect(() => new Cache({ ttlMs: Number.NaN })).toThrow(ValidationError);
    expect(() => new Cache({ l1: { maxEntries: -5 } })).toThrow(/maxEntries/);
    expect(() => new Cache({ l1: { maxEntries: 10, ttlMs: -1 } })).toThrow(/ttlMs/);
    expect(() => new Cache({ l1: { maxWeight: -1, sizeOf: () => 1 } })).toThrow(/maxWeight/);
    expect(() => new Cache({ negativeTtlMs: Number.NaN })).toThrow(ValidationError);
    expect(() => new Cache({ staleWhileRevalidateMs: 10 })).toThrow(/need ttlMs > 0/);
    expect(() => new Cache({ l1: { maxEntries: 0 } })).toThrow(/maxEntries/);
  });

  it('exports hits, misses, evictions by cause and load latency on the registry', async () => {
    const registry = createRegistry();
    const cache = new Cache<number>({ registry, name: 'm', l1: { maxEntries: 2 } });
    for (const k of ['a', 'b', 'c', 'a']) await cache.getOrLoad(k, async () => 1);
    await cache.delete('c');
    const text = await registry.metrics();
    expect(text).toMatch(/cdp_cache_misses_total\{cache="m"\} [1-9]/);
    expect(text).toMatch(/cdp_cache_evictions_total\{cache="m",cause="explicit"\} 1/);
    expect(text).toMatch(/cdp_cache_evictions_total\{cache="m",cause="size"\} [1-9]/);
    expect(text).toMatch(/cdp_cache_load_duration_seconds_count\{cache="m"\} [1-9]/);
    expect(text).toMatch(/cdp_cache_hit_ratio\{cache="m"\}/);
  });
});

describe('Cache: two tiers and a bus (in process)', () => {
  const make = (l2: MemoryCacheStore<CacheEntry<number>>, hub: MemoryBusHub) =>
    new Cache<number>({ l2, bus: hub.bus(), namespace: 'ns' }).start();

  it('a set on one instance drops the other instance L1 copy; it reads the new value from L2', async () => {
    const l2 = new MemoryCacheStore<CacheEntry<number>>({ maxEntries: 100 });
    const hub = new MemoryBusHub();
    const a = await make(l2, hub);
    const b = await make(l2, hub);
    await a.set('k', 1);
    expect(await b.get('k')).toBe(1); // from L2, now in b's L1
    await a.set('k', 2);
    await tick();
    expect(await b.get('k')).toBe(2);
    await a.delete('k');
    await tick();
    expect(await b.get('k')).toBeUndefined();
    await a.close();
    await b.close();
  });

  it('invalidateTag removes tagged keys in every tier and instance', async () => {
    const l2 = new MemoryCacheStore<CacheEntry<number>>({ maxEntries: 100 });
    const hub = new MemoryBusHub();
    const a = await make(l2, hub);
    const b = await make(l2, hub);
    await a.set('c1', 1, { tags: ['course'] });
    await a.set('c2', 2, { tags: ['course', 'x'] });
    await a.set('u1', 3, { tags: ['user'] });
    for (const k of ['c1', 'c2', 'u1']) await b.getOrLoad(k, async () => -1, { tags: ['course'] });
    await a.invalidateTag('course');
    await tick();
    for (const c of [a, b]) {
      expect(await c.get('c1')).toBeUndefined();
      expect(await c.get('c2')).toBeUndefined();
    }
    expect(await b.get('u1')).toBe(3);
    await a.close();
    await b.close();
  });
});

describe('WriteBehind', () => {
  it('coalesces per key, batches, and flushes on close', async () => {
    const batches: [string, number][][] = [];
    const wb = new WriteBehind<number>({
      write: async (b) => void batches.push(b),
      batchSize: 3,
      flushIntervalMs: 60_000,
    });
    for (let i = 0; i < 10; i++) await wb.write('hot', i);
    await wb.write('a', 1);
    expect(wb.pending).toBe(2);
    await wb.close();
    expect(batches.flat()).toEqual([
      ['hot', 9],
      ['a', 1],
    ]);
    await expect(wb.write('b', 1)).rejects.toThrow(/closed/);
  });

  it('retries a failed batch with backoff, then succeeds', async () => {
    const clock = new ManualClock(0);
    let calls = 0;
    const written: [string, number][] = [];
    const wb = new WriteBehind<number>({
      write: async (b) => {
        if (++calls < 3) throw new Error('transient');
        written.push(...b);
      },
      flushIntervalMs: 100,
      retry: { attempts: 5, baseDelayMs: 10, jitter: 'none' },
      clock,
    });
    await wb.write('k', 1);
    await clock.advance(100);
    await clock.advance(10);
    await clock.advance(20);
    expect(calls).toBe(3);
    expect(written).toEqual([['k', 1]]);
    expect(wb.pending).toBe(0);
    await wb.close();
  });

  it('keeps a batch whose retries ran out, behind newer values, and bounds the queue', async () => {
    let fail = true;
    const written: [string, number][] = [];
    const wb = new WriteBehind<number>({
      write: async (b) => {
        if (fail) throw new Error('down');
        written.push(...b);
      },
      maxPending: 2,
      batchSize: 2,
      flushIntervalMs: 60_000,
      retry: { attempts: 1 },
    });
    await wb.write('a', 1);
    await wb.write('b', 1); // a full batch: flush starts, fails, a and b are put back
    await wb.flush();
    expect(wb.pending).toBe(2);
    let third = false;
    const p = wb.write('c', 1).then(() => {
      third = true;
    });
    await tick();
    expect(third).toBe(false); // no room: waits
    fail = false;
    await wb.flush();
    await p;
    expect(third).toBe(true);
    await wb.close();
    expect(written.map(([k]) => k).sort()).toEqual(['a', 'b', 'c']);
  });
});
