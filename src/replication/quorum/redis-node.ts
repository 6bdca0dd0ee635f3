/**
 * A quorum node on a Redis server. Layout under a prefix P:
 *   P v:<key>            hash {c, w, v}: the entry (counter, writer, JSON value)
 *   P b:<leaf>           hash key -> "c:w": the stamps of one key-hash range (Merkle leaf)
 *   P h:<target>:<key>   hash {c, w, v}: a hint for node <target>
 *   P hi:<target>        hash key -> "c:w": the hints kept for <target>
 * Writes are Lua scripts that compare stamps on the server, so a stale stamp never overwrites
 * a newer one, whatever the order in which concurrent coordinators reach the node.
 */
import { createHash } from 'node:crypto';
import type { RedisClient } from '../../engines/redis/index.js';
import { connectRedis } from '../../engines/redis/index.js';
import type { HintedWrite, QuorumNode } from './node.js';
import {
  formatStamp,
  leafOf,
  parseStamp,
  type VersionedValue,
  type VersionStamp,
} from './stamp.js';

/** Bytewise comparison of writer ids, as JavaScript compares ASCII strings (no locale). */
const LUA_NEWER = `
local function older_or_equal(c, w, nc, nw)
  c = tonumber(c); nc = tonumber(nc)
  if c ~= nc then return c > nc end
  local n = math.min(#w, #nw)
  for i = 1, n do
    local x, y = string.byte(w, i), string.byte(nw, i)
    if x ~= y then return x > y end
  end
  return #w >= #nw
end
`;

/** KEYS: entry, index. ARGV: counter, writer, value, member. 1 when stored. */
const PUT = `${LUA_NEWER}
local cur = redis.call('HMGET', KEYS[1], 'c', 'w')
if cur[1] and older_or_equal(cur[1], cur[2], ARGV[1], ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'c', ARGV[1], 'w', ARGV[2], 'v', ARGV[3])
redis.call('HSET', KEYS[2], ARGV[4], ARGV[1] .. ':' .. ARGV[2])
return 1`;

/** KEYS: entry, index. ARGV: member, stamp. Drops the hint if it still has that stamp. */
const DROP = `
if redis.call('HGET', KEYS[2], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('DEL', KEYS[1])
  return 1
end
return 0`;

/** ARGV: prefix, leaves. The digest of every range, as rangeDigest computes it. */
const DIGESTS = `
local out = {}
local modulus = 2^48
for leaf = 0, tonumber(ARGV[2]) - 1 do
  local flat = redis.call('HGETALL', ARGV[1] .. 'b:' .. leaf)
  local count, sum = 0, 0
  for i = 1, #flat, 2 do
    local h = tonumber(string.sub(redis.sha1hex(flat[i] .. '\\n' .. flat[i + 1]), 1, 10), 16)
    sum = (sum + h) % modulus
    count = count + 1
  end
  if count == 0 then out[#out + 1] = '' else out[#out + 1] = count .. ':' .. string.format('%.0f', sum) end
end
return out`;

const sha1 = (script: string) => createHash('sha1').update(script).digest('hex');
const SHAS = new Map([PUT, DROP, DIGESTS].map((s) => [s, sha1(s)]));

export interface RedisQuorumNodeOptions {
  readonly id: string;
  readonly client: RedisClient;
  /** Key prefix on the server. Default 'cdpq:'. */
  readonly prefix?: string;
  readonly leaves?: number;
  /** Close the client with the node. Default false. */
  readonly ownsClient?: boolean;
}

export class RedisQuorumNode implements QuorumNode {
  readonly id: string;
  readonly leaves: number;
  readonly client: RedisClient;
  readonly #prefix: string;
  readonly #ownsClient: boolean;

  constructor(options: RedisQuorumNodeOptions) {
    this.id = options.id;
    this.client = options.client;
    this.#prefix = options.prefix ?? 'cdpq:';
    this.leaves = options.leaves ?? 64;
    this.#ownsClient = options.ownsClient ?? false;
  }

  /** EVALSHA, and EVAL when the server does not know the script (e.g. after a restart). */
  async #script(script: string, keys: string[], args: string[]): Promise<unknown> {
    const options = { keys, arguments: args };
    try {
      return await this.client.evalSha(SHAS.get(script) as string, options);
    } catch (err) {
      if (!(err instanceof Error && err.message.startsWith('NOSCRIPT'))) throw err;
      return this.client.eval(script, options);
    }
  }

  async get(key: string): Promise<VersionedValue | undefined> {
    const h = await this.client.hGetAll(`${this.#prefix}v:${key}`);
    if (h.c === undefined || h.w === undefined || h.v === undefined) return undefined;
    return { stamp: { counter: Number(h.c), writer: h.w }, value: h.v };
  }

  async put(key: string, entry: VersionedValue): Promise<boolean> {
    const leaf = leafOf(key, this.leaves);
    const r = await this.#script(
      PUT,
      [`${this.#prefix}v:${key}`, `${this.#prefix}b:${leaf}`],
      [String(entry.stamp.counter), entry.stamp.writer, entry.value, key],
    );
    return r === 1;
  }

  async storeHint(target: string, key: string, entry: VersionedValue): Promise<void> {
    await this.#script(
      PUT,
      [`${this.#prefix}h:${target}:${key}`, `${this.#prefix}hi:${target}`],
      [String(entry.stamp.counter), entry.stamp.writer, entry.value, key],
    );
  }

  async hints(target: string, limit: number): Promise<HintedWrite[]> {
    const index = await this.client.hGetAll(`${this.#prefix}hi:${target}`);
    const out: HintedWrite[] = [];
    for (const key of Object.keys(index)) {
      if (out.length >= limit) break;
      const h = await this.client.hGetAll(`${this.#prefix}h:${target}:${key}`);
      if (h.c === undefined || h.w === undefined || h.v === undefined) continue;
      out.push({ key, entry: { stamp: { counter: Number(h.c), writer: h.w }, value: h.v } });
    }
    return out;
  }

  async dropHint(target: string, key: string, stamp: VersionStamp): Promise<void> {
    await this.#script(
      DROP,
      [`${this.#prefix}h:${target}:${key}`, `${this.#prefix}hi:${target}`],
      [key, formatStamp(stamp)],
    );
  }

  async rangeDigests(): Promise<string[]> {
    const r = await this.#script(DIGESTS, [], [this.#prefix, String(this.leaves)]);
    return (r as unknown[]).map(String);
  }

  async rangeStamps(leaf: number): Promise<Map<string, VersionStamp>> {
    const h = await this.client.hGetAll(`${this.#prefix}b:${leaf}`);
    return new Map(Object.entries(h).map(([k, s]) => [k, parseStamp(s)]));
  }

  /** Delete every key under this node's prefix (tests and demos start clean). */
  async clear(): Promise<void> {
    let cursor = '0';
    do {
      const r = await this.client.scan(cursor, { MATCH: `${this.#prefix}*`, COUNT: 1000 });
      cursor = String(r.cursor);
      if (r.keys.length > 0) await this.client.del(r.keys);
    } while (cursor !== '0');
  }

  async close(): Promise<void> {
    if (this.#ownsClient) this.client.destroy();
  }
}

export interface OpenRedisQuorumNodesOptions {
  readonly prefix?: string;
  readonly leaves?: number;
  /** The variable the URLs came from, named in connection errors. */
  readonly variable?: string;
  /** Give up a node's first connection after this many ms. Default 5000. */
  readonly connectTimeoutMs?: number;
}

/** Connect one node per Redis URL (in parallel); node ids are host:port. Each node owns its client. */
export async function openRedisQuorumNodes(
  urls: readonly string[],
  options: OpenRedisQuorumNodesOptions = {},
): Promise<RedisQuorumNode[]> {
  const settled = await Promise.allSettled(
    urls.map((url) =>
      connectRedis({
        url,
        name: 'cdp-quorum',
        ...(options.variable ? { variable: options.variable } : {}),
        ...(options.connectTimeoutMs ? { connectTimeoutMs: options.connectTimeoutMs } : {}),
      }),
    ),
  );
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed) {
    for (const s of settled) if (s.status === 'fulfilled') s.value.destroy();
    throw (failed as PromiseRejectedResult).reason;
  }
  return settled.map((s, i) => {
    const u = new URL(urls[i] as string);
    return new RedisQuorumNode({
      id: `${u.hostname}:${u.port || '6379'}`,
      client: (s as PromiseFulfilledResult<RedisClient>).value,
      ownsClient: true,
      ...(options.prefix !== undefined ? { prefix: options.prefix } : {}),
      ...(options.leaves !== undefined ? { leaves: options.leaves } : {}),
    });
  });
}
