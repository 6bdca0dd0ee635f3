/**
 * cloud-data-patterns: the root export carries the foundation, by name: core (clock, config,
 * errors, ids, lifecycle, logging, metrics, retry) and the SQL engine's port, its embedded
 * adapter and migrations. Each pattern module has its own subpath: `cloud-data-patterns/<module>`.
 */
export type { Clock } from './core/clock.js';
export { ManualClock, SystemClock, systemClock, withTimeout } from './core/clock.js';
export type { Config } from './core/config.js';
export { loadConfig } from './core/config.js';
export {
  CdpError,
  ClosedError,
  ConcurrencyError,
  ConfigError,
  EngineUnavailableError,
  TimeoutError,
  ValidationError,
} from './core/errors.js';
export type { IdGenerator } from './core/ids.js';
export { newId, UuidV7Generator } from './core/ids.js';
export type { Closeable } from './core/lifecycle.js';
export { closeOnSignals, Lifecycle } from './core/lifecycle.js';
export type { Logger } from './core/logger.js';
export { createLogger, silentLogger } from './core/logger.js';
export type { Registry } from './core/metrics.js';
export { createRegistry } from './core/metrics.js';
export { importOptional, MissingDependencyError } from './core/optional-dependency.js';
export type { RetryOptions } from './core/retry.js';
export { retry } from './core/retry.js';
export type { AppliedMigration, MigrateResult, Migration } from './engines/sql/migrations.js';
export {
  appliedMigrations,
  MigrationError,
  migrate,
  SchemaTooNewError,
} from './engines/sql/migrations.js';
export { openSql } from './engines/sql/open.js';
export type { PgliteSqlClientOptions } from './engines/sql/pglite-sql-client.js';
export { PgliteSqlClient } from './engines/sql/pglite-sql-client.js';
export type {
  IsolationLevel,
  ListenOptions,
  NotificationHandler,
  PipelineStep,
  PreparedStatement,
  Queryable,
  QueryResult,
  SqlClient,
  SqlTransaction,
  SqlValue,
  TextRows,
  TransactionOptions,
} from './engines/sql/sql-client.js';
export { SqlError } from './engines/sql/sql-client.js';
