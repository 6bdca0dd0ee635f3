import { describe, expect, it } from 'vitest';
import { Cache } from '../../src/cache/cache.js';
import type { CacheEntry } from '../../src/cache/cache-options.js';
import type { CacheSetOptions, CacheStore } from '../../src/cache/cache-store.js';
import { MemoryCacheStore } from '../../src/cache/memory-cache-store.js';
import { MemoryBusHub } from '../../src/cache/memory-invalidation-bus.js';
import type { StampedeLock } from '../../src/cache/stampede-lock.js';
import { ManualClock } from '../../src/core/clock.js';

/**
 * The cache-aside race: a load that read the system of record before an invalidation (delete,
 * set, tag, clear, a bus message) finishes after it. Its callers get what it read, but no tier
 * may keep it: the stale value must never be served afterwards.
 */

const tick = () => new Promise((r) => setImmediate(r));

interface Deferred<T> {
  promise: Promise<T>;
  resolve: (v: T) => void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** A loader that returns a value the test hands over later; counts its calls. */
function manualLoader<T>() {
  const pending: Deferred<T>[] = [];
  const loader = async () => {
    const d = deferred<T>();
    pending.push(d);
    return d.promise;
  };
  return { loader, pending };
}

/**
 * An L2 over a MemoryCacheStore whose next get or set can be held: a held get reads the value
 * when called and answers only when released (a read that crossed a delete); a held set writes
 * at once and acknowledges only when released.
 */
class GatedStore<V> implements CacheStore<V> {
  readonly kind = 'gated';
  readonly inner = new MemoryCacheStore<V>({ maxEntries: 100 });
  holdNextGet: Deferred<void> | undefined;
  holdNextSet: Deferred<void> | undefined;

  async get(key: string): Promise<V | undefined> {
    const v = await this.inner.get(key);
    const hold = this.holdNextGet;
    this.holdNextGet = undefined;
    if (hold) await hold.promise;
    return v;
  }

  async set(key: string, value: V, options?: CacheSetOptions): Promise<void> {
    await this.inner.set(key, value, options);
    const hold = this.holdNextSet;
    this.holdNextSet = undefined;
    if (hold) await hold.promise;
  }

  /** Runs right after the next delete, before it is acknowledged. */
  afterNextDelete: (() => Promise<void>) | undefined;

  async delete(key: string) {
    const r = await this.inner.delete(key);
    const after = this.afterNextDelete;
    this.afterNextDelete = undefined;
    await after?.();
    return r;
  }

  deleteTag(tag: string) {
    return this.inner.deleteTag(tag);
  }

  clear() {
    return this.inner.clear();
  }

  async close() {}
}

/** Always acquires; `onAcquire` runs first (e.g. another process fills L2 meanwhile). */
function fakeLock(onAcquire?: () => Promise<void>): StampedeLock {
  return {
    async tryAcquire() {
      await onAcquire?.();
      return 'token';
    },
    async release() {},
  };
}

const env = (v: string): CacheEntry<string> => ({ v, f: 0, s: 0 });

describe('Cache: a load racing an invalidation does not store what it read', () => {
  it('delete during a load: the callers get the old value, no tier keeps it, later reads load anew', async () => {
    const clock = new ManualClock(0);
    const l2 = new MemoryCacheStore<CacheEntry<string>>({ maxEntries: 100 });
    const cache = new Cache<string>({ clock, ttlMs: 60_000, l2, namespace: 'ns' });
    const { loader, pending } = manualLoader<string>();
    const early = cache.getOrLoad('k', loader);
    const joined = cache.getOrLoad('k', loader);
    await tick();
    expect(pending).toHaveLength(1);
    await cache.delete('k'); // the system of record changed, then the cache was told
    // A caller arriving after the delete does not join the load that read before it.
    const late = cache.getOrLoad('k', loader);
    await tick();
    expect(pending).toHaveLength(2);
    pending[0]!.resolve('old');
    expect(await early).toBe('old');
    expect(await joined).toBe('old');
    expect(await cache.get('k')).toBeUndefined();
    expect(await l2.get('ns:k')).toBeUndefined();
    pending[1]!.resolve('new');
    expect(await late).toBe('new');
    for (const t of [0, 30_000, 59_000]) {
      await clock.advance(t === 0 ? 0 : 29_500);
      expect(await cache.get('k')).toBe('new');
    }
    expect((await l2.get('ns:k'))?.v).toBe('new');
    await cache.close();
  });

  it('the stale load finishing after the fresh one does not overwrite it', async () => {
    const cache = new Cache<string>();
    const { loader, pending } = manualLoader<string>();
    const early = cache.getOrLoad('k', loader);
    await tick();
    await cache.delete('k');
    const late = cache.getOrLoad('k', loader);
    await tick();
    pending[1]!.resolve('new');
    expect(await late).toBe('new');
    pending[0]!.resolve('old');
    expect(await early).toBe('old');
    expect(await cache.get('k')).toBe('new');
    await cache.close();
  });

  it('set during a load wins over the load', async () => {
    const cache = new Cache<string>();
    const { loader, pending } = manualLoader<string>();
    const early = cache.getOrLoad('k', loader);
    await tick();
    await cache.set('k', 'written');
    pending[0]!.resolve('old');
    expect(await early).toBe('old');
    expect(await cache.get('k')).toBe('written');
    await cache.close();
  });

  it('negative entries obey it too', async () => {
    const cache = new Cache<string>({ negativeTtlMs: 60_000 });
    const { loader, pending } = manualLoader<string | undefined>();
    const early = cache.getOrLoad('k', loader as () => Promise<string | undefined>);
    await tick();
    await cache.delete('k');
    pending[0]!.resolve(undefined);
    expect(await early).toBeUndefined();
    expect(await cache.getOrLoad('k', async () => 'now there')).toBe('now there');
    await cache.close();
  });

  it('invalidateTag during a load of a key with that tag', async () => {
    const l2 = new MemoryCacheStore<CacheEntry<string>>({ maxEntries: 100 });
    const cache = new Cache<string>({ l2, namespace: 'ns' });
    const { loader, pending } = manualLoader<string>();
    const early = cache.getOrLoad('k', loader, { tags: ['course'] });
    await tick();
    await cache.invalidateTag('course');
    pending[0]!.resolve('old');
    expect(await early).toBe('old');
    expect(await cache.get('k')).toBeUndefined();
    expect(await l2.get('ns:k')).toBeUndefined();
    await cache.close();
  });

  it('clear during a load', async () => {
    const l2 = new MemoryCacheStore<CacheEntry<string>>({ maxEntries: 100 });
    const cache = new Cache<string>({ l2, namespace: 'ns' });
    const { loader, pending } = manualLoader<string>();
    const early = cache.getOrLoad('k', loader);
    await tick();
    await cache.clear();
    pending[0]!.resolve('old');
    expect(await early).toBe('old');
    expect(await cache.get('k')).toBeUndefined();
    expect(await l2.get('ns:k')).toBeUndefined();
    await cache.close();
  });

  it('an L2 read that crossed a delete is returned but not copied into L1', async () => {
    const l2 = new GatedStore<CacheEntry<string>>();
    const cache = new Cache<string>({ l2, namespace: 'ns' });
    await l2.inner.set('ns:k', env('old'));
    l2.holdNextGet = deferred();
    const hold = l2.holdNextGet;
    const early = cache.get('k');
    await tick();
    await cache.delete('k');
    hold.resolve();
    expect(await early).toBe('old');
    expect(cache.stats().l1.size).toBe(0);
    expect(await cache.get('k')).toBeUndefined();
    await cache.close();
  });

  describe('over the bus, from another instance', () => {
    it('a delete on instance A while B loads: neither B L1 nor L2 keeps B value', async () => {
      const l2 = new MemoryCacheStore<CacheEntry<string>>({ maxEntries: 100 });
      const hub = new MemoryBusHub();
      const a = await new Cache<string>({ l2, bus: hub.bus(), namespace: 'ns' }).start();
      const b = await new Cache<string>({ l2, bus: hub.bus(), namespace: 'ns' }).start();
      const { loader, pending } = manualLoader<string>();
      const early = b.getOrLoad('k', loader);
      await tick();
      await a.delete('k');
      await tick(); // the invalidation reaches b
      pending[0]!.resolve('old');
      expect(await early).toBe('old');
      expect(b.stats().l1.size).toBe(0);
      expect(await l2.get('ns:k')).toBeUndefined();
      expect(await b.getOrLoad('k', async () => 'new')).toBe('new');
      expect(await a.get('k')).toBe('new');
      await a.close();
      await b.close();
    });

    it('a delete on A that reached L2 before B wrote it: B deletes its write again', async () => {
      const l2 = new GatedStore<CacheEntry<string>>();
      const hub = new MemoryBusHub();
      const a = await new Cache<string>({ l2, bus: hub.bus(), namespace: 'ns' }).start();
      const b = await new Cache<string>({ l2, bus: hub.bus(), namespace: 'ns' }).start();
      const { loader, pending } = manualLoader<string>();
      const early = b.getOrLoad('k', loader);
      await tick();
      l2.holdNextSet = deferred();
      const hold = l2.holdNextSet;
      pending[0]!.resolve('old'); // b writes L2 (held before the ack) ...
      await tick();
      expect((await l2.inner.get('ns:k'))?.v).toBe('old');
      // a's delete reached L2 first, b's write landed after it; then a's message reaches b,
      // while b still waits for its write to be acknowledged.
      l2.afterNextDelete = () => l2.inner.set('ns:k', env('old'));
      await a.delete('k');
      await tick();
      hold.resolve();
      expect(await early).toBe('old');
      await tick();
      expect(await l2.inner.get('ns:k')).toBeUndefined();
      expect(b.stats().l1.size).toBe(0);
      expect(await b.get('k')).toBeUndefined();
      await a.close();
      await b.close();
    });

    it('a tag or clear on A while B loads', async () => {
      for (const invalidate of [
        (c: Cache<string>) => c.invalidateTag('course'),
        (c: Cache<string>) => c.clear(),
      ]) {
        const l2 = new MemoryCacheStore<CacheEntry<string>>({ maxEntries: 100 });
        const hub = new MemoryBusHub();
        const a = await new Cache<string>({ l2, bus: hub.bus(), namespace: 'ns' }).start();
        const b = await new Cache<string>({ l2, bus: hub.bus(), namespace: 'ns' }).start();
        const { loader, pending } = manualLoader<string>();
        const early = b.getOrLoad('k', loader, { tags: ['course'] });
        await tick();
        await invalidate(a);
        await tick();
        pending[0]!.resolve('old');
        expect(await early).toBe('old');
        expect(b.stats().l1.size).toBe(0);
        expect(await l2.get('ns:k')).toBeUndefined();
        await a.close();
        await b.close();
      }
    });
  });

  describe('with the stampede lock', () => {
    it('the lock holder loading across a delete stores nothing', async () => {
      const l2 = new MemoryCacheStore<CacheEntry<string>>({ maxEntries: 100 });
      const cache = new Cache<string>({ l2, lock: fakeLock(), namespace: 'ns' });
      const { loader, pending } = manualLoader<string>();
      const early = cache.getOrLoad('k', loader);
      for (let i = 0; i < 5 && pending.length === 0; i++) await tick();
      expect(pending).toHaveLength(1);
      await cache.delete('k');
      pending[0]!.resolve('old');
      expect(await early).toBe('old');
      expect(cache.stats().l1.size).toBe(0);
      expect(await l2.get('ns:k')).toBeUndefined();
      await cache.close();
    });

    it("the winner's L2 value read across a delete is not copied into L1", async () => {
      const l2 = new GatedStore<CacheEntry<string>>();
      const hold = deferred<void>();
      let acquired = false;
      const lock = fakeLock(async () => {
        acquired = true;
        // Another process won, loaded and stored while we waited for the lock.
        await l2.inner.set('ns:k', env('old'));
        l2.holdNextGet = hold;
      });
      const cache = new Cache<string>({ l2, lock, namespace: 'ns' });
      let loads = 0;
      const early = cache.getOrLoad('k', async () => {
        loads++;
        return 'loaded';
      });
      // Wait until the lock holder's L2 read has taken the value and is held.
      for (let i = 0; i < 10 && !(acquired && l2.holdNextGet === undefined); i++) await tick();
      expect(acquired).toBe(true);
      await cache.delete('k');
      hold.resolve();
      expect(await early).toBe('old');
      expect(loads).toBe(0);
      expect(cache.stats().l1.size).toBe(0);
      expect(await cache.get('k')).toBeUndefined();
      await cache.close();
    });
  });

  it('a refresh-ahead load that crosses a delete does not bring the old value back', async () => {
    const clock = new ManualClock(0);
    const cache = new Cache<string>({ clock, ttlMs: 1_000, refreshAheadMs: 200 });
    const { loader, pending } = manualLoader<string>();
    const first = cache.getOrLoad('k', loader);
    await tick();
    pending[0]!.resolve('v1');
    expect(await first).toBe('v1');
    await clock.advance(900);
    expect(await cache.getOrLoad('k', loader)).toBe('v1'); // served; refresh started
    await tick();
    expect(pending).toHaveLength(2);
    await cache.delete('k');
    pending[1]!.resolve('v1-read-before-the-delete');
    await tick();
    await tick();
    expect(await cache.get('k')).toBeUndefined();
    const next = cache.getOrLoad('k', loader);
    await tick();
    expect(pending).toHaveLength(3);
    pending[2]!.resolve('v2');
    expect(await next).toBe('v2');
    await clock.advance(500);
    expect(await cache.getOrLoad('k', loader)).toBe('v2');
    await cache.close();
  });

  it('a stale-while-revalidate refresh that crosses a bus invalidation stores nothing', async () => {
    const clock = new ManualClock(0);
    const hub = new MemoryBusHub();
    const a = await new Cache<string>({ clock, bus: hub.bus(), namespace: 'ns' }).start();
    const b = await new Cache<string>({
      clock,
      bus: hub.bus(),
      namespace: 'ns',
      ttlMs: 1_000,
      staleWhileRevalidateMs: 5_000,
    }).start();
    await b.set('k', 'v1');
    await clock.advance(1_500);
    const { loader, pending } = manualLoader<string>();
    expect(await b.getOrLoad('k', loader)).toBe('v1'); // stale served, refresh started
    await tick();
    expect(pending).toHaveLength(1);
    await a.delete('k');
    await tick();
    pending[0]!.resolve('read-before-the-delete');
    await tick();
    await tick();
    expect(b.stats().l1.size).toBe(0);
    expect(await b.get('k')).toBeUndefined();
    await a.close();
    await b.close();
  });
});
