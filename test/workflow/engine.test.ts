import { afterAll, beforeAll, describe } from 'vitest';
import { PgSqlClient } from '../../src/engines/sql/pg-sql-client.js';
import { PgliteSqlClient } from '../../src/engines/sql/pglite-sql-client.js';
import type { SqlClient } from '../../src/engines/sql/sql-client.js';
import { createTempDatabase, type TempDatabase } from '../../src/testing/index.js';
import { describeServer } from '../support/servers.js';
import { workflowEngineSuite } from './engine-suite.js';

describe('workflow engine: PGlite', () => {
  let sql: SqlClient;
  beforeAll(async () => {
    sql = await PgliteSqlClient.open();
  });
  afterAll(() => sql.close());
  workflowEngineSuite(() => sql);
});

describeServer('workflow engine: PostgreSQL', 'CDP_DATABASE_URL', (url) => {
  let db: TempDatabase;
  let sql: SqlClient;
  beforeAll(async () => {
    db = await createTempDatabase(url, { prefix: 'cdp_wf' });
    sql = await PgSqlClient.open({ url: db.url });
  });
  afterAll(async () => {
    await sql.close();
    await db.drop();
  });
  workflowEngineSuite(() => sql);
});
