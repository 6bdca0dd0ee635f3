import { createHash, randomUUID } from 'node:crypto';
import type { RedisClient } from '../engines/redis/index.js';
import type {
  BeginRequest,
  BeginResult,
  IdempotencyStore,
  StoredResponse,
} from './idempotency-store.js';

/**
 * One hash per key: fp, token, locked, expires, and once complete status, headers, body
 * (base64). Taken in one atomic step: a new or expired key is (re)written, a key whose lease
 * ran out without a response is taken over by the same request. The key's PEXPIRE is its ttl,
 * so Redis frees it; `expires` (the caller's clock) decides expiry for the rules.
 * KEYS: the hash. ARGV: fingerprint, token, now, lease end, expiry, ttl ms.
 * Returns {'started', recovered} | {'replay', status, headers, body} | {'busy', locked} | {'mismatch'}.
 */
const BEGIN = `
local h = redis.call('HMGET', KEYS[1], 'fp', 'locked', 'expires', 'status', 'headers', 'body')
local now = tonumber(ARGV[3])
if not h[1] or tonumber(h[3]) <= now then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'fp', ARGV[1], 'token', ARGV[2], 'locked', ARGV[4], 'expires', ARGV[5])
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
  return {'started', '0'}
end
if h[1] ~= ARGV[1] then return {'mismatch'} end
if h[4] then return {'replay', h[4], h[5], h[6]} end
if tonumber(h[2]) > now then return {'busy', h[2]} end
redis.call('HSET', KEYS[1], 'token', ARGV[2], 'locked', ARGV[4])
return {'started', '1'}`;

/** KEYS: the hash. ARGV: token, status, headers JSON, body base64. */
const COMPLETE = `
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] or redis.call('HEXISTS', KEYS[1], 'status') == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'headers', ARGV[3], 'body', ARGV[4])
return 1`;

/** KEYS: the hash. ARGV: token. */
const RELEASE = `
if redis.call('HGET', KEYS[1], 'token') == ARGV[1] and redis.call('HEXISTS', KEYS[1], 'status') == 0 then
  return redis.call('DEL', KEYS[1])
end
return 0`;

const SCRIPTS = {
  begin: { text: BEGIN, sha: createHash('sha1').update(BEGIN).digest('hex') },
  complete: { text: COMPLETE, sha: createHash('sha1').update(COMPLETE).digest('hex') },
  release: { text: RELEASE, sha: createHash('sha1').update(RELEASE).digest('hex') },
};

export interface RedisIdempotencyStoreOptions {
  /** A connected node-redis client (`connectRedis`); the store does not close it. */
  client: RedisClient;
  /** Prefix of every key this store writes. Default 'cdp:idem:'. */
  prefix?: string;
}

/**
 * Idempotency keys in Redis: a hash per key taken and completed by Lua scripts (one atomic step
 * each), expired by Redis after the ttl. `purgeExpired` has nothing to do.
 */
export class RedisIdempotencyStore implements IdempotencyStore {
  readonly #client: RedisClient;
  readonly #prefix: string;

  constructor(options: RedisIdempotencyStoreOptions) {
    this.#client = options.client;
    this.#prefix = options.prefix ?? 'cdp:idem:';
  }

  async begin(r: BeginRequest): Promise<BeginResult> {
    const token = randomUUID();
    const out = (await this.#script(
      'begin',
      [this.#k(r.scope, r.key)],
      [
        r.fingerprint,
        token,
        String(r.now),
        String(r.now + r.leaseMs),
        String(r.now + r.ttlMs),
        String(Math.max(1, Math.ceil(r.ttlMs))),
      ],
    )) as string[];
    switch (out[0]) {
      case 'started':
        return { outcome: 'started', token, recovered: out[1] === '1' };
      case 'replay':
        return {
          outcome: 'replay',
          response: {
            status: Number(out[1]),
            headers: JSON.parse(out[2]!) as Record<string, string>,
            body: new Uint8Array(Buffer.from(out[3]!, 'base64')),
          },
        };
      case 'busy':
        return { outcome: 'in-progress', lockedUntil: Number(out[1]) };
      default:
        return { outcome: 'mismatch' };
    }
  }

  async complete(
    scope: string,
    key: string,
    token: string,
    response: StoredResponse,
  ): Promise<boolean> {
    const n = await this.#script(
      'complete',
      [this.#k(scope, key)],
      [
        token,
        String(response.status),
        JSON.stringify(response.headers),
        Buffer.from(
          response.body.buffer,
          response.body.byteOffset,
          response.body.byteLength,
        ).toString('base64'),
      ],
    );
    return Number(n) === 1;
  }

  async release(scope: string, key: string, token: string): Promise<void> {
    await this.#script('release', [this.#k(scope, key)], [token]);
  }

  async purgeExpired(_now: number): Promise<number> {
    return 0;
  }

  /** The hash's name: the scope and key hashed, so that any text makes one short, unambiguous name. */
  #k(scope: string, key: string): string {
    return `${this.#prefix}${createHash('sha256')
      .update(JSON.stringify([scope, key]))
      .digest('base64url')}`;
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
}
