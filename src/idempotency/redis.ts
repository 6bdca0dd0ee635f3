/**
 * cloud-data-patterns/idempotency/redis: idempotency keys in Redis, on a node-redis client from
 * `cloud-data-patterns/redis`. `redis` is an optional peer dependency: importing this entry
 * without it installed fails with a `MissingDependencyError` that names the package to install.
 */
import { importOptional } from '../core/optional-dependency.js';

await importOptional(
  'redis',
  'the Redis idempotency store (cloud-data-patterns/idempotency/redis)',
  () => import('redis'),
);

export type { RedisIdempotencyStoreOptions } from './redis-idempotency-store.js';
export { RedisIdempotencyStore } from './redis-idempotency-store.js';
