/**
 * The port every cache tier implements: an async key-value store with per-entry time to live and
 * tags. The in-process store (memory-cache-store.ts) and Redis (redis-cache-store.ts) both
 * implement it and run the same contract suite (test/cache/store-contract.ts).
 *
 * Keys are strings (a tier may live in another process); values are whatever the tier can hold
 * (the memory tier holds references, Redis holds what its serializer can encode).
 */
export interface CacheStore<V = unknown> {
  /** Which tier, for metrics and logs: 'memory', 'redis', ... */
  readonly kind: string;
  /** The value, or undefined if absent or expired. Never returns an expired value. */
  get(key: string): Promise<V | undefined>;
  /**
   * Store a value; `ttlMs` 0 = no expiry, absent = the store's default. `tags` index the key
   * so that `deleteTag` removes it. A value the tier cannot hold is rejected with an error and
   * the old value is left as it was.
   */
  set(key: string, value: V, options?: CacheSetOptions): Promise<void>;
  /** Remove a key; true if it was there. */
  delete(key: string): Promise<boolean>;
  /** Remove every key carrying `tag`; returns the keys removed. */
  deleteTag(tag: string): Promise<string[]>;
  /** Remove every key this store owns (its namespace), nothing else. */
  clear(): Promise<void>;
  close(): Promise<void>;

  /**
   * Versioned fills (optional; a tier shared by several processes should have them). The value
   * and a token naming the key's version: every `set`, `delete`, `deleteTag` and `clear` moves
   * the version on. Read the token before loading from the system of record.
   */
  getWithToken?(key: string): Promise<{ value: V | undefined; token: string }>;
  /** The token alone (a load that did not start with a read of this tier). */
  fillToken?(key: string): Promise<string>;
  /**
   * Store a loaded value only if the key's version is still `token`, in one atomic step; false
   * if a write, delete, tag deletion or clear came in between (nothing stored then). Encoding
   * errors are thrown as by `set`.
   */
  setIfUnchanged?(
    key: string,
    value: V,
    token: string,
    options?: CacheSetOptions,
  ): Promise<boolean>;
}

export interface CacheSetOptions {
  ttlMs?: number;
  tags?: readonly string[];
}
