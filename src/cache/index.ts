/**
 * cloud-data-patterns/cache: cache-aside over an in-process L1 and an optional shared L2, with
 * invalidation across instances, stampede protection and write-behind. The Redis tier (store,
 * invalidation bus, stampede lock) is the subpath `cloud-data-patterns/cache/redis`, so that this
 * entry needs no engine client.
 */
export { Cache, CacheLoadError } from './cache.js';
export type { CacheEntry, CacheOptions, GetOrLoadOptions, Loader } from './cache-options.js';
export type { CacheStats } from './cache-stats.js';
export type { CacheSetOptions, CacheStore } from './cache-store.js';
export type { Invalidation, InvalidationBus } from './invalidation-bus.js';
export type {
  EvictionCause,
  EvictionPolicy,
  LocalStoreDumpEntry,
  LocalStoreOptions,
  LocalStoreSetOptions,
  LocalStoreStats,
} from './local-store.js';
export { LocalStore } from './local-store.js';
export { MemoryCacheStore } from './memory-cache-store.js';
export { MemoryBusHub } from './memory-invalidation-bus.js';
export type { Serializer } from './serializer.js';
export { jsonSerializer, SerializationError } from './serializer.js';
export type { StampedeLock } from './stampede-lock.js';
export type { WriteBehindOptions } from './write-behind.js';
export { WriteBehind } from './write-behind.js';
