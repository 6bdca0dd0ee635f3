import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EngineUnavailableError } from '../../../src/core/errors.js';
import { migrate, PgliteSqlClient, SqlError } from '../../../src/engines/sql/index.js';
import { sqlClientContract } from '../../../src/testing/index.js';

sqlClientContract('PGlite (in memory)', async () => {
  const client = await PgliteSqlClient.open({});
  return {
    client,
    open: () => PgliteSqlClient.open({}),
    peers: async (n) => ({
      clients: Array.from({ length: n }, () => client),
      close: async () => {},
    }),
    cleanup: () => client.close(),
  };
});

describe('PGlite in a data folder', () => {
  it('keeps data across a clean close and reopen, and locks the folder while open', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cdp-pglite-'));
    try {
      const a = await PgliteSqlClient.open({ dataDir: dir });
      await migrate(a, [
        { module: 'persist', version: 1, name: 'create', sql: 'CREATE TABLE p (v text)' },
      ]);
      await a.query("INSERT INTO p VALUES ('kept')");
      const second = await PgliteSqlClient.open({ dataDir: dir }).catch((e: unknown) => e);
      expect(second).toBeInstanceOf(EngineUnavailableError);
      expect((second as Error).message).toMatch(/in use by process \d+.*CDP_DATA_DIR/);
      await a.close();

      const b = await PgliteSqlClient.open({ dataDir: dir });
      expect((await b.query('SELECT v FROM p')).rows).toEqual([{ v: 'kept' }]);
      const again = await migrate(b, [
        { module: 'persist', version: 1, name: 'create', sql: 'CREATE TABLE p (v text)' },
      ]);
      expect(again.skipped).toBe(1);
      await b.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('takes over a lock left by a process that died', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cdp-pglite-'));
    try {
      const { mkdir } = await import('node:fs/promises');
      await mkdir(join(dir, 'pglite'), { recursive: true });
      await writeFile(join(dir, 'pglite', 'cdp.lock'), '2147483646');
      const c = await PgliteSqlClient.open({ dataDir: dir });
      expect((await c.query('SELECT 1 AS x')).rows).toEqual([{ x: 1 }]);
      await c.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('says what to do when the client is used inside its own transaction callback', async () => {
    const c = await PgliteSqlClient.open({});
    try {
      const err = await c.transaction(async () => c.query('SELECT 1')).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SqlError);
      expect((err as Error).message).toMatch(/use the `tx` handle/);
      expect((await c.query('SELECT 2 AS x')).rows).toEqual([{ x: 2 }]);
    } finally {
      await c.close();
    }
  });

  it("keeps a statement outside a transaction out of another caller's open transaction", async () => {
    const c = await PgliteSqlClient.open({});
    try {
      await c.exec('CREATE TABLE held (id int)');
      let inserted!: () => void;
      const insertedP = new Promise<void>((r) => {
        inserted = r;
      });
      let release!: () => void;
      const releaseP = new Promise<void>((r) => {
        release = r;
      });
      const tx = c
        .transaction(async (t) => {
          await t.query('INSERT INTO held VALUES ($1)', [1]);
          inserted();
          await releaseP;
          // Queued on PGlite's query lock after the outside statement: without the client's
          // own lock, that statement would run first, inside this open transaction.
          await t.query('SELECT 1');
          throw new Error('roll back');
        })
        .catch((e: unknown) => e);
      await insertedP;
      // Sent from another async context while the transaction is open: it waits for the
      // transaction, and then sees nothing of the rolled-back row.
      const count = c.query<{ n: number }>('SELECT count(*)::int AS n FROM held');
      release();
      expect(((await tx) as Error).message).toBe('roll back');
      expect((await count).rows).toEqual([{ n: 0 }]);
    } finally {
      await c.close();
    }
  });

  it("refuses a statement on a transaction's handle after its callback returned", async () => {
    const c = await PgliteSqlClient.open({});
    try {
      let kept: { query: (t: string) => Promise<unknown> } | undefined;
      await c.transaction(async (t) => {
        kept = t;
      });
      await expect(kept!.query('SELECT 1')).rejects.toThrow(/the transaction has ended/);
    } finally {
      await c.close();
    }
  });

  it("runs a statement again after a schema change altered its parameter's type", async () => {
    const c = await PgliteSqlClient.open({});
    try {
      await c.exec('CREATE TABLE altered (x int)');
      const insert = 'INSERT INTO altered (x) VALUES ($1)';
      await c.query(insert, [5]);
      await c.exec('ALTER TABLE altered ALTER COLUMN x TYPE text');
      await c.query(insert, ['five']);
      const { rows } = await c.query<{ x: string }>('SELECT x FROM altered ORDER BY x');
      expect(rows.map((r) => r.x)).toEqual(['5', 'five']);
    } finally {
      await c.close();
    }
  });
});
