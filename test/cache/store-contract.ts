import { afterEach, beforeEach, expect, it } from 'vitest';
import type { CacheStore } from '../../src/cache/cache-store.js';

/**
 * The CacheStore contract: every adapter (memory with each policy, Redis) runs these same tests.
 * `make` returns a fresh, empty store; `wait` lets real time pass (ttl tests) for stores whose
 * expiry is driven by their engine.
 */
export function storeContract(
  make: () => Promise<CacheStore<unknown>>,
  wait: (ms: number) => Promise<void>,
): void {
  let store: CacheStore<unknown>;
  beforeEach(async () => {
    store = await make();
  });
  afterEach(async () => {
    await store.clear();
    await store.close();
  });

  it('get of a missing key is undefined', async () => {
    expect(await store.get('nope')).toBeUndefined();
  });

  it('set then get returns an equal value; set again replaces it', async () => {
    await store.set('a', { n: 1, s: 'x', list: [1, 2] });
    expect(await store.get('a')).toEqual({ n: 1, s: 'x', list: [1, 2] });
    await store.set('a', 'second');
    expect(await store.get('a')).toBe('second');
  });

  it('delete says whether the key was there', async () => {
    await store.set('a', 1);
    expect(await store.delete('a')).toBe(true);
    expect(await store.delete('a')).toBe(false);
    expect(await store.get('a')).toBeUndefined();
  });

  it('an entry expires after its ttl and is never returned after it', async () => {
    await store.set('short', 1, { ttlMs: 60 });
    await store.set('long', 2, { ttlMs: 60_000 });
    await store.set('forever', 3, { ttlMs: 0 });
    expect(await store.get('short')).toBe(1);
    await wait(120);
    expect(await store.get('short')).toBeUndefined();
    expect(await store.get('long')).toBe(2);
    expect(await store.get('forever')).toBe(3);
  });

  it('deleteTag removes every key with the tag and only those', async () => {
    await store.set('c1', 1, { tags: ['course'] });
    await store.set('c2', 2, { tags: ['course', 'featured'] });
    await store.set('u1', 3, { tags: ['user'] });
    await store.set('plain', 4);
    const removed = await store.deleteTag('course');
    expect(removed.sort()).toEqual(['c1', 'c2']);
    expect(await store.get('c1')).toBeUndefined();
    expect(await store.get('c2')).toBeUndefined();
    expect(await store.get('u1')).toBe(3);
    expect(await store.get('plain')).toBe(4);
    expect(await store.deleteTag('course')).toEqual([]);
  });

  it('a key re-set with its tag is still removed by deleteTag (no entry escapes its tag)', async () => {
    await store.set('k', 1, { tags: ['t'] });
    await store.set('k', 2, { tags: ['t'], ttlMs: 60_000 });
    expect(await store.deleteTag('t')).toEqual(['k']);
    expect(await store.get('k')).toBeUndefined();
  });

  it('clear removes every key of the store', async () => {
    for (let i = 0; i < 50; i++) await store.set(`k${i}`, i);
    await store.clear();
    for (let i = 0; i < 50; i++) expect(await store.get(`k${i}`)).toBeUndefined();
  });
}
