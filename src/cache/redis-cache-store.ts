import type { RedisClient } from '../engines/redis/index.js';
import type { CacheSetOptions, CacheStore } from './cache-store.js';
import { checkTtl } from './local-store.js';
import { jsonSerializer, type Serializer } from './serializer.js';

export interface RedisCacheStoreOptions {
  /** A connected node-redis client (connectRedis); the store does not close it. */
  client: RedisClient;
  /** Prefix of every key this store owns, e.g. 'app:cache:'; `clear()` removes exactly these. */
  prefix: string;
  serializer?: Serializer;
  /** Default ttl in ms for `set` without one; 0 = none. */
  ttlMs?: number;
}

/** Removes every key of a tag set, then the set, in one step (a Lua script runs atomically). */
const DELETE_TAG = `
local keys = redis.call('SMEMBERS', KEYS[1])
local removed = {}
for _, k in ipairs(keys) do
  if redis.call('DEL', ARGV[1] .. k) == 1 then table.insert(removed, k) end
end
redis.call('DEL', KEYS[1])
return removed`;

/**
 * The CacheStore port on Redis: one string key per entry (`<prefix>v:<key>`, ttl by PX), one
 * set per tag (`<prefix>t:<tag>`, holding the keys; its ttl follows its longest-lived key).
 * A value is encoded before anything is sent, so a value the serializer refuses leaves the old
 * one untouched.
 */
export class RedisCacheStore<V = unknown> implements CacheStore<V> {
  readonly kind = 'redis';
  readonly #client: RedisClient;
  readonly #prefix: string;
  readonly #serializer: Serializer;
  readonly #ttl: number;

  constructor(options: RedisCacheStoreOptions) {
    if (!options.prefix) throw new Error('RedisCacheStore: a non-empty prefix is required');
    this.#client = options.client;
    this.#prefix = options.prefix;
    this.#serializer = options.serializer ?? jsonSerializer;
    this.#ttl = checkTtl(options.ttlMs);
  }

  async get(key: string): Promise<V | undefined> {
    const text = await this.#client.get(this.#k(key));
    if (text === null || text === undefined) return undefined;
    return this.#serializer.decode(String(text)) as V;
  }

  async set(key: string, value: V, options?: CacheSetOptions): Promise<void> {
    const text = this.#serializer.encode(value);
    const ttl = options?.ttlMs === undefined ? this.#ttl : checkTtl(options.ttlMs);
    const k = this.#k(key);
    const tags = options?.tags ?? [];
    if (tags.length === 0) {
      if (ttl > 0)
        await this.#client.set(k, text, { expiration: { type: 'PX', value: Math.ceil(ttl) } });
      else await this.#client.set(k, text);
      return;
    }
    const multi = this.#client.multi();
    if (ttl > 0) multi.set(k, text, { expiration: { type: 'PX', value: Math.ceil(ttl) } });
    else multi.set(k, text);
    for (const tag of tags) {
      const t = this.#t(tag);
      multi.sAdd(t, key);
      if (ttl > 0) {
        multi.pExpire(t, Math.ceil(ttl), 'NX');
        multi.pExpire(t, Math.ceil(ttl), 'GT');
      } else {
        multi.persist(t);
      }
    }
    await multi.exec();
  }

  async delete(key: string): Promise<boolean> {
    return (await this.#client.del(this.#k(key))) > 0;
  }

  async deleteTag(tag: string): Promise<string[]> {
    const removed = await this.#client.eval(DELETE_TAG, {
      keys: [this.#t(tag)],
      arguments: [`${this.#prefix}v:`],
    });
    return (removed as unknown[]).map(String);
  }

  async clear(): Promise<void> {
    for await (const keys of this.#client.scanIterator({ MATCH: `${this.#prefix}*`, COUNT: 500 })) {
      if (keys.length > 0) await this.#client.unlink(keys);
    }
  }

  async close(): Promise<void> {
    // The client belongs to the caller.
  }

  #k(key: string): string {
    return `${this.#prefix}v:${key}`;
  }

  #t(tag: string): string {
    return `${this.#prefix}t:${tag}`;
  }
}
