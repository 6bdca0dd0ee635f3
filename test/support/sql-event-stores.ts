import { afterAll, beforeAll, describe } from 'vitest';
import { migrate } from '../../src/engines/sql/migrations.js';
import { PgSqlClient } from '../../src/engines/sql/pg-sql-client.js';
import { PgliteSqlClient } from '../../src/engines/sql/pglite-sql-client.js';
import type { SqlClient } from '../../src/engines/sql/sql-client.js';
import { SqlEventStore } from '../../src/events/index.js';
import { createTempDatabase, type TempDatabase } from '../../src/testing/index.js';
import { describeServer } from './servers.js';

type Migrations = Parameters<typeof migrate>[1];

/**
 * Registers `body` twice, as `<title> on PGlite` and `<title> on PostgreSQL` (a server suite on
 * a temporary database of `CDP_DATABASE_URL`): each with an SqlEventStore and `migrations`
 * applied. `body` reads the client and the store through getters, set once `beforeAll` ran.
 */
export function describeOnSqlEventStores(
  title: string,
  options: { migrations: Migrations; prefix: string; max: number },
  body: (getSql: () => SqlClient, getStore: () => SqlEventStore) => void,
): void {
  describe(`${title} on PGlite`, () => {
    let sql: PgliteSqlClient;
    let store: SqlEventStore;
    beforeAll(async () => {
      sql = await PgliteSqlClient.open({});
      store = await SqlEventStore.open(sql);
      await migrate(sql, options.migrations);
    });
    afterAll(() => sql.close());
    body(
      () => sql,
      () => store,
    );
  });

  describeServer(`${title} on PostgreSQL`, 'CDP_DATABASE_URL', (url) => {
    let db: TempDatabase;
    let sql: PgSqlClient;
    let store: SqlEventStore;
    beforeAll(async () => {
      db = await createTempDatabase(url, { prefix: options.prefix });
      sql = await PgSqlClient.open({ url: db.url, max: options.max });
      store = await SqlEventStore.open(sql);
      await migrate(sql, options.migrations);
    });
    afterAll(async () => {
      await sql?.close();
      await db?.drop();
    });
    body(
      () => sql,
      () => store,
    );
  });
}
