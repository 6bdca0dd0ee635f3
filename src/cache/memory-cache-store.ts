import type { CacheSetOptions, CacheStore } from './cache-store.js';
import { LocalStore, type LocalStoreOptions } from './local-store.js';

/**
 * The CacheStore port over an in-process LocalStore (any policy), with a tag index that forgets a
 * key when the store evicts it.
 */
export class MemoryCacheStore<V = unknown> implements CacheStore<V> {
  readonly kind = 'memory';
  readonly local: LocalStore<string, V>;
  readonly #tagsOf = new Map<string, readonly string[]>();
  readonly #keysOf = new Map<string, Set<string>>();

  constructor(options: LocalStoreOptions<string, V>) {
    const onEvict = options.onEvict;
    this.local = new LocalStore<string, V>({
      ...options,
      onEvict: (key, value, cause) => {
        this.#untag(key);
        onEvict?.(key, value, cause);
      },
    });
  }

  async get(key: string): Promise<V | undefined> {
    return this.local.get(key);
  }

  async set(key: string, value: V, options?: CacheSetOptions): Promise<void> {
    this.local.set(key, value, options?.ttlMs === undefined ? undefined : { ttlMs: options.ttlMs });
    this.#untag(key);
    const tags = options?.tags;
    if (tags && tags.length > 0 && this.local.has(key)) {
      this.#tagsOf.set(key, tags);
      for (const t of tags) {
        let set = this.#keysOf.get(t);
        if (!set) {
          set = new Set();
          this.#keysOf.set(t, set);
        }
        set.add(key);
      }
    }
  }

  async delete(key: string): Promise<boolean> {
    return this.local.delete(key);
  }

  async deleteTag(tag: string): Promise<string[]> {
    const keys = [...(this.#keysOf.get(tag) ?? [])];
    for (const k of keys) this.local.delete(k);
    this.#keysOf.delete(tag);
    return keys;
  }

  async clear(): Promise<void> {
    this.local.clear();
    this.#tagsOf.clear();
    this.#keysOf.clear();
  }

  async close(): Promise<void> {
    this.local.close();
  }

  #untag(key: string): void {
    const tags = this.#tagsOf.get(key);
    if (!tags) return;
    this.#tagsOf.delete(key);
    for (const t of tags) {
      const set = this.#keysOf.get(t);
      set?.delete(key);
      if (set?.size === 0) this.#keysOf.delete(t);
    }
  }
}
