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
});
