// The SqlClient port, its embedded adapter (PGlite), migrations and `openSql`. The PostgreSQL
// adapter, on the optional `pg` package, is the subpath entry `./pg.ts`.
export type { AppliedMigration, MigrateResult, Migration } from './migrations.js';
export { appliedMigrations, MigrationError, migrate, SchemaTooNewError } from './migrations.js';
export { openSql } from './open.js';
export type { PgliteSqlClientOptions } from './pglite-sql-client.js';
export { PgliteSqlClient } from './pglite-sql-client.js';
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
} from './sql-client.js';
export { SqlError } from './sql-client.js';
