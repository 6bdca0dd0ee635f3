import type { Logger } from 'pino';
import type { Config } from '../../core/config.js';
import { importOptional } from '../../core/optional-dependency.js';
import { PgliteSqlClient } from './pglite-sql-client.js';
import type { SqlClient } from './sql-client.js';

/**
 * Open the SQL engine that the configuration selects: a PostgreSQL server (through `pg`, an
 * optional peer dependency loaded only here), or embedded PGlite.
 */
export async function openSql(
  database: Config['database'],
  options: {
    logger?: Logger;
    max?: number;
    /** PGlite only: allow this many prepared transactions (two-phase commit). Default 0. */
    maxPreparedTransactions?: number;
  } = {},
): Promise<SqlClient> {
  if (database.kind === 'postgres') {
    const { PgSqlClient } = await importOptional(
      'pg',
      'the PostgreSQL engine (CDP_DATABASE_URL)',
      () => import('./pg-sql-client.js'),
    );
    return PgSqlClient.open({ url: database.url, logger: options.logger, max: options.max });
  }
  return PgliteSqlClient.open({
    dataDir: database.dataDir,
    ...(options.maxPreparedTransactions
      ? { maxPreparedTransactions: options.maxPreparedTransactions }
      : {}),
  });
}
