/**
 * cloud-data-patterns/cache/redis: the cache's Redis tier (L2 store, invalidation bus, stampede
 * lock) on a node-redis client from `cloud-data-patterns/redis`. `redis` is an optional peer
 * dependency: importing this entry without it installed fails with a `MissingDependencyError`
 * that names the package to install.
 */
import { importOptional } from '../core/optional-dependency.js';

await importOptional(
  'redis',
  'the Redis cache tier (cloud-data-patterns/cache/redis)',
  () => import('redis'),
);

export type { RedisCacheStoreOptions } from './redis-cache-store.js';
export { RedisCacheStore } from './redis-cache-store.js';
export type { RedisInvalidationBusOptions } from './redis-invalidation-bus.js';
export { RedisInvalidationBus } from './redis-invalidation-bus.js';
export { RedisStampedeLock } from './redis-stampede-lock.js';
