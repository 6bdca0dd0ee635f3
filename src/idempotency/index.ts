/**
 * cloud-data-patterns/idempotency: idempotency keys, framework-free. The Fastify plugin is
 * `cloud-data-patterns/idempotency/fastify`; the Redis store `cloud-data-patterns/idempotency/redis`.
 */
export type { HeldKey, IdempotencyOptions, ReplayedKey } from './idempotency.js';
export { Idempotency, runIdempotent } from './idempotency.js';
export {
  IdempotencyError,
  IdempotencyKeyInProgressError,
  IdempotencyKeyReusedError,
  InvalidIdempotencyKeyError,
} from './idempotency-errors.js';
export type {
  BeginRequest,
  BeginResult,
  IdempotencyStore,
  StoredResponse,
} from './idempotency-store.js';
export { MemoryIdempotencyStore } from './memory-idempotency-store.js';
export {
  maxIdempotencyKeyLength,
  parseIdempotencyKey,
  requestFingerprint,
} from './request-fingerprint.js';
export { idempotencyMigrations } from './sql-idempotency-migrations.js';
export type { SqlIdempotencyStoreOptions } from './sql-idempotency-store.js';
export { SqlIdempotencyStore } from './sql-idempotency-store.js';
