import { afterAll, beforeAll, expect, it } from 'vitest';
import { EngineUnavailableError } from '../../../src/core/errors.js';
import type { SqlError } from '../../../src/engines/sql/index.js';
import { PgSqlClient } from '../../../src/engines/sql/pg.js';
import { createTempDatabase, eventually, sqlClientContract } from '../../../src/testing/index.js';
import { describeServer } from '../../support/servers.js';

describeServer('SqlClient on PostgreSQL', 'CDP_DATABASE_URL', (serverUrl) => {
  sqlClientContract('PostgreSQL server', async () => {
    const db = await createTempDatabase(serverUrl);
    const client = await PgSqlClient.open({ url: db.url });
    return {
      client,
      open: () => PgSqlClient.open({ url: db.url }),
      peers: async (n) => {
        const clients = await Promise.all(
          Array.from({ length: n }, () => PgSqlClient.open({ url: db.url, max: 2 })),
        );
        return {
          clients,
          close: async () => void (await Promise.all(clients.map((c) => c.close()))),
        };
      },
      cleanup: async () => {
        await client.close();
        await db.drop();
      },
    };
  });

  let db: { url: string; drop(): Promise<void> };
  let a: PgSqlClient;
  let b: PgSqlClient;
  beforeAll(async () => {
    db = await createTempDatabase(serverUrl);
    a = await PgSqlClient.open({ url: db.url });
    b = await PgSqlClient.open({ url: db.url });
    await a.exec(
      'CREATE TABLE acct (id int PRIMARY KEY, balance int NOT NULL); INSERT INTO acct VALUES (1, 100), (2, 100)',
    );
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await db?.drop();
  });

  /**
   * Whether session lock (4242, key) becomes free within 5 s, seen from another client (the
   * backend exits shortly after its client closes it; 5 s is under the pool's 10 s idle timeout).
   */
  const lockFreed = (key: number): Promise<boolean> =>
    eventually(
      async () =>
        (
          await b.query<{ got: boolean }>(
            'SELECT CASE WHEN pg_try_advisory_lock(4242, $1) THEN pg_advisory_unlock(4242, $1) ELSE false END AS got',
            [key],
          )
        ).rows[0]!.got,
      `session lock (4242, ${key}) to be free`,
      { timeoutMs: 5000, intervalMs: 50 },
    );

  it('repeatable read sees one snapshot while another client commits', async () => {
    const seen = await a.transaction(
      async (tx) => {
        const before = (
          await tx.query<{ balance: number }>('SELECT balance FROM acct WHERE id = 1')
        ).rows[0]!.balance;
        await b.query('UPDATE acct SET balance = balance + 1 WHERE id = 1');
        const after = (await tx.query<{ balance: number }>('SELECT balance FROM acct WHERE id = 1'))
          .rows[0]!.balance;
        return [before, after];
      },
      { isolation: 'repeatable read' },
    );
    expect(seen[0]).toBe(seen[1]);
    expect(
      (await a.query<{ balance: number }>('SELECT balance FROM acct WHERE id = 1')).rows[0]!
        .balance,
    ).toBe(seen[0]! + 1);
  });

  it('serializable conflicts surface as a retryable SqlError', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let readDone!: () => void;
    const t1Read = new Promise<void>((r) => (readDone = r));
    const t1 = a.transaction(
      async (tx) => {
        await tx.query('SELECT sum(balance) FROM acct');
        readDone();
        await gate;
        await tx.query('UPDATE acct SET balance = balance - 10 WHERE id = 1');
      },
      { isolation: 'serializable' },
    );
    // t1 must have read (and so taken its snapshot) before t2 runs: otherwise t1 could start
    // after t2 committed, see its write, and commit without any conflict.
    await Promise.race([t1Read, t1]);
    const t2 = b.transaction(
      async (tx) => {
        await tx.query('SELECT sum(balance) FROM acct');
        await tx.query('UPDATE acct SET balance = balance - 10 WHERE id = 2');
      },
      { isolation: 'serializable' },
    );
    await t2;
    release();
    const err = (await t1.catch((e: unknown) => e)) as SqlError;
    expect(err.sqlState).toBe('40001');
    expect(err.retryable).toBe(true);
  });

  it('a transaction whose statement is cancelled ends its session, with the session locks it held', async () => {
    // One connection: were it kept, the next transaction would reuse the session holding the lock.
    const c = await PgSqlClient.open({ url: db.url, max: 1 });
    try {
      const err = await c
        .transaction(async (tx) => {
          await tx.query('SELECT pg_advisory_lock(4242, 7)');
          await tx.query("SET LOCAL statement_timeout = '50ms'");
          await tx.query('SELECT pg_sleep(5)');
        })
        .catch((e: unknown) => e);
      expect((err as SqlError).sqlState).toBe('57014');
      // ROLLBACK does not release a session-level lock; ending the session does.
      expect(await lockFreed(7)).toBe(true);
      expect((await c.query<{ one: number }>('SELECT 1 AS one')).rows[0]!.one).toBe(1);
    } finally {
      await c.close();
    }
  });

  it('preparedRows runs a named statement, prepared once per connection, and returns text rows', async () => {
    const c = await PgSqlClient.open({ url: db.url, max: 1 });
    const statement = {
      name: 'cdp_test_prepared_rows',
      text: 'SELECT $1::bigint + 1 AS n, ARRAY[$1::bigint, 2] AS a, NULL::text AS z, $2::text AS t',
    };
    try {
      for (const n of [1, 41]) {
        expect(await c.preparedRows(statement, [n, 'x'])).toEqual([
          [String(n + 1), `{${n},2}`, null, 'x'],
        ]);
      }
      const prepared = await c.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name = $1',
        [statement.name],
      );
      expect(prepared.rows[0]!.n).toBe(1);
      // A name already used for another text is refused, not silently run as the old text.
      await expect(c.preparedRows({ name: statement.name, text: 'SELECT 2' }, [])).rejects.toThrow(
        /already used for another text/,
      );
      await expect(
        c.preparedRows({ name: 'cdp_test_rows_empty', text: 'SELECT 1 WHERE false' }, []),
      ).resolves.toEqual([]);
    } finally {
      await c.close();
    }
  });

  it('preparedRows closes the connection of a failed statement, with the session locks it held', async () => {
    const c = await PgSqlClient.open({ url: db.url, max: 1 });
    try {
      const err = await c
        .preparedRows(
          {
            name: 'cdp_test_rows_fail',
            text: 'SELECT pg_advisory_lock(4242, 8), 1 / (0 * $1::int)',
          },
          [1],
        )
        .catch((e: unknown) => e);
      expect((err as SqlError).sqlState).toBe('22012');
      expect(await lockFreed(8)).toBe(true);
      // The pool opens a new connection, on which the statement is prepared again.
      expect(
        await c.preparedRows({ name: 'cdp_test_rows_fail', text: 'SELECT 1 / $1::int' }, [1]),
      ).toEqual([['1']]);
    } finally {
      await c.close();
    }
  });

  it('preparedPipeline runs its statements in one transaction, each seeing what committed before it started', async () => {
    const c = await PgSqlClient.open({ url: db.url, max: 1 });
    await a.exec('CREATE TABLE pipe_log (n int PRIMARY KEY)');
    try {
      const wait = { name: 'cdp_test_pipe_wait', text: 'SELECT pg_advisory_xact_lock(4242, 9)' };
      const count = { name: 'cdp_test_pipe_count', text: 'SELECT count(*) FROM pipe_log' };
      let holding!: () => void;
      const held = new Promise<void>((r) => (holding = r));
      let release!: () => void;
      const released = new Promise<void>((r) => (release = r));
      // Another transaction holds the lock, and inserts a row before it commits.
      const other = b.transaction(async (tx) => {
        await tx.query('SELECT pg_advisory_xact_lock(4242, 9)');
        holding();
        await released;
        await tx.query('INSERT INTO pipe_log VALUES (1)');
      });
      await held;
      const pipeline = c.preparedPipeline([
        { statement: wait, values: [] },
        { statement: count, values: [] },
      ]);
      // The barrier: the pipeline's first statement is waiting for the lock before the other
      // transaction goes on.
      try {
        await eventually(
          async () =>
            (
              await a.query<{ waiting: boolean }>(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND classid = 4242 AND objid = 9 AND NOT granted) AS waiting",
              )
            ).rows[0]!.waiting,
          'the pipeline to wait for the lock',
          { timeoutMs: 10_000 },
        );
      } finally {
        release();
      }
      const rows = await pipeline;
      await other;
      // The count started after the lock was granted, so it sees the other's row.
      expect(rows).toEqual([[['']], [['1']]]);

      // A failing statement rolls back the ones before it, closes the connection (with its
      // session lock) and leaves the statements usable on the next connection.
      const insert = { name: 'cdp_test_pipe_insert', text: 'INSERT INTO pipe_log VALUES ($1)' };
      const fail = {
        name: 'cdp_test_pipe_fail',
        text: 'SELECT pg_advisory_lock(4242, 10), 1 / (0 * $1::int)',
      };
      const err = await c
        .preparedPipeline([
          { statement: insert, values: [2] },
          { statement: fail, values: [1] },
          { statement: insert, values: [3] },
        ])
        .catch((e: unknown) => e);
      expect((err as SqlError).sqlState).toBe('22012');
      expect(await lockFreed(10)).toBe(true);
      expect(
        await c.preparedPipeline([
          { statement: insert, values: [4] },
          { statement: insert, values: [5] },
          { statement: count, values: [] },
        ]),
      ).toEqual([[], [], [['3']]]);
      const prepared = await c.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name LIKE 'cdp_test_pipe_%'",
      );
      expect(prepared.rows[0]!.n).toBe(2);
    } finally {
      await c.close();
      await a.exec('DROP TABLE pipe_log');
    }
  });

  it('LISTEN survives its connection being killed: re-listens and calls onReconnect', async () => {
    const got: string[] = [];
    let reconnects = 0;
    const stop = await a.listen('cdp_reconnect', (p) => got.push(p), {
      onReconnect: () => reconnects++,
    });
    const killed = await b.query<{ n: number }>(
      "SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'cdp-listen'",
    );
    expect(killed.rows[0]!.n).toBeGreaterThanOrEqual(1);
    await eventually(() => reconnects > 0, 'the listener to reconnect', {
      timeoutMs: 5000,
      intervalMs: 50,
    });
    expect(reconnects).toBe(1);
    await b.notify('cdp_reconnect', 'after');
    await eventually(() => got.length > 0, 'the notification after the reconnect', {
      timeoutMs: 2000,
      intervalMs: 20,
    });
    expect(got).toEqual(['after']);
    await stop();
  });

  it('an unreachable server gives an error naming the variable', async () => {
    const err = await PgSqlClient.open({
      url: 'postgres://postgres@127.0.0.1:1/none',
      connectTimeoutMs: 1000,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EngineUnavailableError);
    expect((err as Error).message).toMatch(/CDP_DATABASE_URL/);
  });
});
