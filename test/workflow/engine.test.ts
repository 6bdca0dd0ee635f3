import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgSqlClient } from '../../src/engines/sql/pg-sql-client.js';
import { PgliteSqlClient } from '../../src/engines/sql/pglite-sql-client.js';
import type { SqlClient } from '../../src/engines/sql/sql-client.js';
import { createTempDatabase, type TempDatabase } from '../../src/testing/index.js';
import { defineWorkflow, WorkflowEngine } from '../../src/workflow/index.js';
import { describeServer } from '../support/servers.js';
import { workflowEngineSuite } from './engine-suite.js';
import { workflowOwnershipSuite } from './ownership-suite.js';

describe('workflow engine: PGlite', () => {
  let sql: SqlClient;
  beforeAll(async () => {
    sql = await PgliteSqlClient.open();
  });
  afterAll(() => sql.close());
  workflowEngineSuite(() => sql);
  workflowOwnershipSuite(() => sql);
});

describe('workflow engine: PGlite in a folder', () => {
  it('a process that restarts takes back the runs its previous life held, without waiting for their lease', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cdp-wf-'));
    try {
      let sql = await PgliteSqlClient.open({ dataDir: dir });
      const stuck = defineWorkflow({ name: 'restart' }, async (ctx, n: number) => {
        const a = await ctx.step('first', () => n + 1);
        return ctx.step('second', () => new Promise<number>(() => {}).then(() => a));
      });
      const first = await WorkflowEngine.open({ sql, workflows: [stuck], leaseMs: 600_000 });
      const h = await first.start(stuck, { id: 'held', input: 1 });
      for (;;) {
        if ((await first.get(h.runId)).steps.length === 1) break;
        await new Promise((r) => setTimeout(r, 10));
      }
      // The process "dies": nothing is released, the lease has ten minutes to run.
      await first.close({ timeoutMs: 0 });
      await sql.close();
      sql = await PgliteSqlClient.open({ dataDir: dir });
      const fixed = defineWorkflow({ name: 'restart' }, async (ctx, n: number) => {
        const a = await ctx.step('first', () => -1);
        return ctx.step('second', () => a * 10 + n);
      });
      const again = await WorkflowEngine.open({ sql, workflows: [fixed], leaseMs: 600_000 });
      expect(await again.handle(h.runId).result()).toBe(21);
      expect((await again.get(h.runId)).claims).toBe(2);
      await again.close();
      await sql.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
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
  workflowOwnershipSuite(() => sql);
});
