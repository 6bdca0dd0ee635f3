import { afterAll, beforeAll, describe } from 'vitest';
import { migrate, PgliteSqlClient, type SqlClient } from '../../src/engines/sql/index.js';
import { PgSqlClient } from '../../src/engines/sql/pg.js';
import { idempotencyMigrations, SqlIdempotencyStore } from '../../src/idempotency/index.js';
import { idempotencyStoreContract, type TempDatabase } from '../../src/testing/index.js';
import { createTempDatabase, describeServer } from '../support/servers.js';

describe('IdempotencyStore contract: PGlite', () => {
  let sql: SqlClient;
  let store: SqlIdempotencyStore;
  beforeAll(async () => {
    sql = await PgliteSqlClient.open();
    await migrate(sql, idempotencyMigrations);
    store = new SqlIdempotencyStore({ sql });
  });
  afterAll(async () => {
    await sql?.close();
  });
  idempotencyStoreContract(() => store);
});

describeServer('IdempotencyStore contract: PostgreSQL', 'CDP_DATABASE_URL', (url) => {
  let db: TempDatabase;
  let sql: SqlClient;
  let store: SqlIdempotencyStore;
  beforeAll(async () => {
    db = await createTempDatabase(url, 'cdp_idem');
    sql = await PgSqlClient.open({ url: db.url });
    await migrate(sql, idempotencyMigrations);
    store = new SqlIdempotencyStore({ sql });
  });
  afterAll(async () => {
    await sql?.close();
    await db?.drop();
  });
  idempotencyStoreContract(() => store);
});

describeServer(
  'IdempotencyStore contract: PostgreSQL, begin committed without waiting for its flush',
  'CDP_DATABASE_URL',
  (url) => {
    let db: TempDatabase;
    let sql: SqlClient;
    let store: SqlIdempotencyStore;
    beforeAll(async () => {
      db = await createTempDatabase(url, 'cdp_idem');
      sql = await PgSqlClient.open({ url: db.url });
      await migrate(sql, idempotencyMigrations);
      store = new SqlIdempotencyStore({ sql, deferBeginFlush: true });
    });
    afterAll(async () => {
      await sql?.close();
      await db?.drop();
    });
    idempotencyStoreContract(() => store);
  },
);
