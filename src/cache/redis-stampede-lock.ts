import { randomUUID } from 'node:crypto';
import type { RedisClient } from '../engines/redis/index.js';
import type { StampedeLock } from './stampede-lock.js';

const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`;

/** SET NX PX with a random token; released only by its holder (compare-and-delete in Lua). */
export class RedisStampedeLock implements StampedeLock {
  readonly #client: RedisClient;
  readonly #prefix: string;

  constructor(options: { client: RedisClient; prefix: string }) {
    this.#client = options.client;
    this.#prefix = options.prefix;
  }

  async tryAcquire(key: string, ttlMs: number): Promise<string | undefined> {
    const token = randomUUID();
    const ok = await this.#client.set(`${this.#prefix}${key}`, token, {
      condition: 'NX',
      expiration: { type: 'PX', value: Math.max(1, Math.ceil(ttlMs)) },
    });
    return ok === 'OK' ? token : undefined;
  }

  async release(key: string, token: string): Promise<void> {
    await this.#client.eval(RELEASE, { keys: [`${this.#prefix}${key}`], arguments: [token] });
  }
}
