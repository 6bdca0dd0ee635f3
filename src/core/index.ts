/**
 * cloud-data-patterns/core: what every module builds on and a user passes in or catches: the
 * clock, configuration, coded errors, ids, lifecycle, logging, metrics registry, retry, and the
 * error for a missing optional engine client. Helpers the modules share (metric constructors,
 * backoff arithmetic, URL redaction, time formatting) are imported by file, not exported here.
 */
export type { Clock } from './clock.js';
export { ManualClock, SystemClock, systemClock, withTimeout } from './clock.js';
export type { Config } from './config.js';
export { loadConfig } from './config.js';
export {
  CdpError,
  ClosedError,
  ConcurrencyError,
  ConfigError,
  EngineUnavailableError,
  TimeoutError,
  ValidationError,
} from './errors.js';
export type { IdGenerator } from './ids.js';
export { newId, UuidV7Generator } from './ids.js';
export type { Closeable } from './lifecycle.js';
export { closeOnSignals, Lifecycle } from './lifecycle.js';
export type { Logger } from './logger.js';
export { createLogger, silentLogger } from './logger.js';
export type { Registry } from './metrics.js';
export { createRegistry } from './metrics.js';
export { importOptional, MissingDependencyError } from './optional-dependency.js';
export type { RetryOptions } from './retry.js';
export { retry } from './retry.js';
