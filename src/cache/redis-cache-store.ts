import { createHash } from 'node:crypto';
import type { RedisClient } from '../engines/redis/index.js';
import type { CacheSetOptions, CacheStore } from './cache-store.js';
import { checkTtl } from './internal/ttl.js';
import { jsonSerializer, type Serializer } from './serializer.js';

export interface RedisCacheStoreOptions {
  /** A connected node-redis client (connectRedis); the store does not close it. */
  client: RedisClient;
  /** Prefix of every key this store owns, e.g. 'app:cache:'; `clear()` removes exactly these. */
  prefix: string;
  serializer?: Serializer;
  /** Default ttl in ms for `set` without one; 0 = none. */
  ttlMs?: number;
  /**
   * How long a key's version outlives its last write or delete, in ms. A load whose token was
   * read longer ago than this before its fill may store a value older than that write. Keep it
   * above your slowest load (plus L2 timeouts). Default 60,000.
   */
  versionTtlMs?: number;
}

/**
 * Removes every key of a tag set, then the set, and moves the namespace's epoch on (a fill in
 * flight may be for a key the tag will only be given when it is stored): one atomic step.
 * KEYS: tag set, epoch. ARGV: value-key prefix.
 */
const DELETE_TAG = `
local keys = redis.call('SMEMBERS', KEYS[1])
local removed = {}
for _, k in ipairs(keys) do
  if redis.call('DEL', ARGV[1] .. k) == 1 then table.insert(removed, k) end
end
redis.call('DEL', KEYS[1])
redis.call('INCR', KEYS[2])
return removed`;

/**
 * A write. Mode 'set' (an explicit write) moves the key's version on; mode 'fill' (a loaded
 * value) stores only if the key's version and the epoch still read as the token. Tag sets take
 * the longest ttl of their keys; a tag set without expiry (it holds a key without expiry) keeps
 * none.
 * KEYS: value, version, epoch, tag sets... ARGV: mode, token, text, ttl ms (0 none), key,
 * version ttl ms.
 */
const WRITE = `
if ARGV[1] == 'fill' then
  local g = redis.call('GET', KEYS[2]) or '0'
  local e = redis.call('GET', KEYS[3]) or '0'
  if g .. ':' .. e ~= ARGV[2] then return 0 end
else
  redis.call('INCR', KEYS[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[6])
end
local ttl = tonumber(ARGV[4])
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ttl)
else
  redis.call('SET', KEYS[1], ARGV[3])
end
for i = 4, #KEYS do
  local existed = redis.call('EXISTS', KEYS[i]) == 1
  redis.call('SADD', KEYS[i], ARGV[5])
  if ttl == 0 then
    redis.call('PERSIST', KEYS[i])
  elseif not existed then
    redis.call('PEXPIRE', KEYS[i], ttl)
  else
    local left = redis.call('PTTL', KEYS[i])
    if left >= 0 and left < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
  end
end
return 1`;

/** A delete: the value goes, the key's version moves on. KEYS: value, version. ARGV: version ttl. */
const DELETE = `
local n = redis.call('DEL', KEYS[1])
redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return n`;

const sha1 = (text: string) => createHash('sha1').update(text).digest('hex');
const SCRIPTS = {
  deleteTag: { text: DELETE_TAG, sha: sha1(DELETE_TAG) },
  write: { text: WRITE, sha: sha1(WRITE) },
  delete: { text: DELETE, sha: sha1(DELETE) },
};

/**
 * The CacheStore port on Redis: one string key per entry (`<prefix>v:<key>`, ttl by PX), one
 * set per tag (`<prefix>t:<tag>`, holding the keys; its ttl follows its longest-lived key).
 * A value is encoded before anything is sent, so a value the serializer refuses leaves the old
 * one untouched.
 *
 * Versioned fills: each key has a version counter (`<prefix>g:<key>`, kept `versionTtlMs` after
 * its last move) and the namespace an epoch (`<prefix>e`). `set` and `delete` move the key's
 * version, `deleteTag` and `clear` the epoch; `setIfUnchanged` stores a loaded value only if
 * both still read as the token taken before the load (a Lua script: one atomic step). So a
 * load that read the system of record before another process's write or delete cannot put its
 * older value back into the shared tier, whatever the order in which the messages arrive.
 */
export class RedisCacheStore<V = unknown> implements CacheStore<V> {
  readonly kind = 'redis';
  readonly #client: RedisClient;
  readonly #prefix: string;
  readonly #serializer: Serializer;
  readonly #ttl: number;
  readonly #versionTtl: number;

  constructor(options: RedisCacheStoreOptions) {
    if (!options.prefix) throw new Error('RedisCacheStore: a non-empty prefix is required');
    this.#client = options.client;
    this.#prefix = options.prefix;
    this.#serializer = options.serializer ?? jsonSerializer;
    this.#ttl = checkTtl(options.ttlMs);
    this.#versionTtl = checkTtl(options.versionTtlMs ?? 60_000, 'versionTtlMs');
    if (this.#versionTtl === 0) {
      throw new Error(
        'RedisCacheStore: versionTtlMs must be > 0 (how long a version outlives its last write)',
      );
    }
  }

  async get(key: string): Promise<V | undefined> {
    const text = await this.#client.get(this.#k(key));
    return this.#decode(text);
  }

  async getWithToken(key: string): Promise<{ value: V | undefined; token: string }> {
    const [text, g, e] = await this.#client.mGet([this.#k(key), this.#g(key), this.#e()]);
    return { value: this.#decode(text), token: `${g ?? 0}:${e ?? 0}` };
  }

  async fillToken(key: string): Promise<string> {
    const [g, e] = await this.#client.mGet([this.#g(key), this.#e()]);
    return `${g ?? 0}:${e ?? 0}`;
  }

  async set(key: string, value: V, options?: CacheSetOptions): Promise<void> {
    await this.#write('set', '', key, value, options);
  }

  async setIfUnchanged(
    key: string,
    value: V,
    token: string,
    options?: CacheSetOptions,
  ): Promise<boolean> {
    return (await this.#write('fill', token, key, value, options)) === 1;
  }

  async delete(key: string): Promise<boolean> {
    const n = await this.#script(
      'delete',
      [this.#k(key), this.#g(key)],
      [String(this.#versionTtl)],
    );
    return Number(n) > 0;
  }

  async deleteTag(tag: string): Promise<string[]> {
    const removed = await this.#script(
      'deleteTag',
      [this.#t(tag), this.#e()],
      [`${this.#prefix}v:`],
    );
    return (removed as unknown[]).map(String);
  }

  async clear(): Promise<void> {
    const epoch = this.#e();
    for await (const keys of this.#client.scanIterator({ MATCH: `${this.#prefix}*`, COUNT: 500 })) {
      // The epoch stays (and moves on below): a token read before the clear must not match.
      const doomed = keys.filter((k) => k !== epoch);
      if (doomed.length > 0) await this.#client.unlink(doomed);
    }
    await this.#client.incr(epoch);
  }

  async close(): Promise<void> {
    // The client belongs to the caller.
  }

  async #write(
    mode: 'set' | 'fill',
    token: string,
    key: string,
    value: V,
    options: CacheSetOptions | undefined,
  ): Promise<number> {
    const text = this.#serializer.encode(value);
    const ttl = options?.ttlMs === undefined ? this.#ttl : checkTtl(options.ttlMs);
    const tags = options?.tags ?? [];
    const n = await this.#script(
      'write',
      [this.#k(key), this.#g(key), this.#e(), ...tags.map((t) => this.#t(t))],
      [mode, token, text, String(Math.ceil(ttl)), key, String(this.#versionTtl)],
    );
    return Number(n);
  }

  /** EVALSHA, falling back to EVAL (which caches the script) when the server does not have it. */
  async #script(name: keyof typeof SCRIPTS, keys: string[], args: string[]): Promise<unknown> {
    const s = SCRIPTS[name];
    try {
      return await this.#client.evalSha(s.sha, { keys, arguments: args });
    } catch (err) {
      if (!String((err as Error)?.message ?? err).startsWith('NOSCRIPT')) throw err;
      return this.#client.eval(s.text, { keys, arguments: args });
    }
  }

  #decode(text: unknown): V | undefined {
    if (text === null || text === undefined) return undefined;
    return this.#serializer.decode(String(text)) as V;
  }

  #k(key: string): string {
    return `${this.#prefix}v:${key}`;
  }

  #g(key: string): string {
    return `${this.#prefix}g:${key}`;
  }

  #e(): string {
    return `${this.#prefix}e`;
  }

  #t(tag: string): string {
    return `${this.#prefix}t:${tag}`;
  }
}
