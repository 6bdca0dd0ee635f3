import type { Logger } from 'pino';
import type { CacheEntry } from '../../cache/index.js';
import { RedisCacheStore, RedisInvalidationBus, RedisStampedeLock } from '../../cache/redis.js';
import { connectRedis, type RedisClient } from '../../engines/redis/index.js';

/**
 * The course cache's Redis tier: L2 store, invalidation bus and stampede lock on one client.
 * Loaded only when CDP_REDIS_URL is set, so the platform runs without the `redis` package.
 */
export async function openRedisTier<V>(url: string, logger: Logger) {
  const client: RedisClient = await connectRedis({ url, logger, name: 'cdp-cache' });
  return {
    client,
    l2: new RedisCacheStore<CacheEntry<V>>({ client, prefix: 'cdp:cache:' }),
    bus: new RedisInvalidationBus({ client, channel: 'cdp:cache:bus', logger }),
    lock: new RedisStampedeLock({ client, prefix: 'cdp:cache:lock:' }),
  };
}
