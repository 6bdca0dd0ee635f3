import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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

    // The store sends set_config(..., true) before its statement in one pipeline: the setting
    // must hold in that implicit transaction and end with it, or every later statement on the
    // pooled connection would commit without waiting for its flush.
    it('defers the flush of the pipeline it is sent in, and of nothing after it', async () => {
      const one = await PgSqlClient.open({ url: db.url, max: 1 });
      try {
        const set = {
          name: 'test_defer_flush',
          text: "SELECT set_config('synchronous_commit', 'off', true)",
        };
        const show = {
          name: 'test_show_flush',
          text: "SELECT current_setting('synchronous_commit')",
        };
        const [, during] = await one.preparedPipeline([
          { statement: set, values: [] },
          { statement: show, values: [] },
        ]);
        expect(during).toEqual([['off']]);
        expect(await one.preparedRows(show, [])).toEqual([['on']]);
        const { rows } = await one.query<{ s: string }>(
          "SELECT current_setting('synchronous_commit') AS s",
        );
        expect(rows[0]!.s).toBe('on');
      } finally {
        await one.close();
      }
    });
  },
);
