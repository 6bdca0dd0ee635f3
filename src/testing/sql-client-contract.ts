import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClosedError } from '../core/errors.js';
import {
  appliedMigrations,
  type Migration,
  MigrationError,
  migrate,
  SchemaTooNewError,
  type SqlClient,
  SqlError,
} from '../engines/sql/index.js';
import { eventually } from './eventually.js';

export interface SqlHarness {
  client: SqlClient;
  /** Another client of the same engine kind (it may be a fresh database). */
  open(): Promise<SqlClient>;
  /**
   * `n` clients on this same database, as n processes would have: separate pools on a server;
   * the one client on PGlite, which is a single connection in this process.
   */
  peers(n: number): Promise<{ clients: SqlClient[]; close(): Promise<void> }>;
  cleanup(): Promise<void>;
}

/** Every SqlClient adapter passes this suite: adapters cannot drift apart. */
export function sqlClientContract(name: string, setup: () => Promise<SqlHarness>): void {
  describe(`SqlClient contract: ${name}`, () => {
    let h: SqlHarness;
    let sql: SqlClient;
    beforeAll(async () => {
      h = await setup();
      sql = h.client;
      await sql.exec(`
        CREATE TABLE kv (k text PRIMARY KEY, v integer NOT NULL);
        CREATE TABLE typed (id int8, j jsonb, a int[], t timestamptz, b bytea, n numeric);
      `);
    });
    afterAll(async () => h?.cleanup());

    it('runs parameterised queries and returns the same types on every engine', async () => {
      const when = new Date('2024-05-06T07:08:09.010Z');
      await sql.query('INSERT INTO typed VALUES ($1, $2, $3, $4, $5, $6)', [
        42,
        JSON.stringify({ a: [1, 'x'], b: null }),
        [1, 2, 3],
        when,
        new Uint8Array([0, 255, 7]),
        '1.50',
      ]);
      await sql.query('INSERT INTO typed (id) VALUES ($1)', ['9007199254740993']);
      const { rows } = await sql.query<{
        id: number | bigint;
        j: unknown;
        a: number[];
        t: Date;
        b: Uint8Array;
        n: string;
      }>('SELECT id, j, a, t, b, n FROM typed ORDER BY id');
      expect(rows[0]).toMatchObject({
        id: 42,
        j: { a: [1, 'x'], b: null },
        a: [1, 2, 3],
        n: '1.50',
      });
      expect(rows[0]!.t).toEqual(when);
      expect([...rows[0]!.b]).toEqual([0, 255, 7]);
      expect(rows[1]!.id).toBe(9007199254740993n);
      const arrays = await sql.query<{ a: unknown[]; e: unknown[] }>(
        "SELECT ARRAY[1, NULL, 9007199254740993]::int8[] AS a, '{}'::int8[] AS e",
      );
      expect(arrays.rows[0]!.a).toEqual([1, null, 9007199254740993n]);
      expect(arrays.rows[0]!.e).toEqual([]);
      const nulls = await sql.query<{ x: null }>('SELECT $1::text AS x', [null]);
      expect(nulls.rows[0]!.x).toBeNull();
    });

    it('reports affected rows', async () => {
      expect((await sql.query('INSERT INTO kv VALUES ($1, 1), ($2, 2)', ['a', 'b'])).rowCount).toBe(
        2,
      );
      expect((await sql.query('UPDATE kv SET v = v + 1')).rowCount).toBe(2);
      expect((await sql.query('DELETE FROM kv WHERE k = $1', ['a'])).rowCount).toBe(1);
      await sql.query('DELETE FROM kv');
    });

    it('turns engine errors into SqlError with the SQLSTATE and a stable code', async () => {
      const syntax = await sql.query('SELEC 1').catch((e: unknown) => e);
      expect(syntax).toBeInstanceOf(SqlError);
      expect((syntax as SqlError).sqlState).toBe('42601');
      await sql.query("INSERT INTO kv VALUES ('dup', 1)");
      const dup = await sql.query("INSERT INTO kv VALUES ('dup', 2)").catch((e: unknown) => e);
      expect((dup as SqlError).code).toBe('SQL_UNIQUE_VIOLATION');
      await sql.query('DELETE FROM kv');
    });

    it('runs a script of several statements with exec', async () => {
      await sql.exec(
        "INSERT INTO kv VALUES ('s1', 1); INSERT INTO kv VALUES ('s2', 2); UPDATE kv SET v = 10 WHERE k = 's2';",
      );
      const { rows } = await sql.query<{ v: number }>(
        "SELECT sum(v)::int AS v FROM kv WHERE k LIKE 's%'",
      );
      expect(rows[0]!.v).toBe(11);
      await sql.query('DELETE FROM kv');
    });

    it('commits a transaction and returns its result', async () => {
      const out = await sql.transaction(async (tx) => {
        await tx.query("INSERT INTO kv VALUES ('t1', 1)");
        await tx.query("INSERT INTO kv VALUES ('t2', 2)");
        return 'done';
      });
      expect(out).toBe('done');
      expect((await sql.query("SELECT k FROM kv WHERE k LIKE 't%'")).rowCount).toBe(2);
      await sql.query('DELETE FROM kv');
    });

    it('rolls back everything when the callback throws, and rethrows the same error', async () => {
      const boom = new Error('boom');
      const err = await sql
        .transaction(async (tx) => {
          await tx.query("INSERT INTO kv VALUES ('r1', 1)");
          throw boom;
        })
        .catch((e: unknown) => e);
      expect(err).toBe(boom);
      expect((await sql.query("SELECT 1 FROM kv WHERE k = 'r1'")).rowCount).toBe(0);
    });

    it('rolls back on a failing statement and the client stays usable', async () => {
      const err = await sql
        .transaction(async (tx) => {
          await tx.query("INSERT INTO kv VALUES ('r2', 1)");
          await tx.query("INSERT INTO kv VALUES ('r2', 2)");
        })
        .catch((e: unknown) => e);
      expect((err as SqlError).code).toBe('SQL_UNIQUE_VIOLATION');
      expect((await sql.query("SELECT 1 FROM kv WHERE k = 'r2'")).rowCount).toBe(0);
      expect((await sql.query('SELECT 1 AS one')).rows[0]).toEqual({ one: 1 });
    });

    it('sets the requested isolation level and read-only mode', async () => {
      for (const isolation of ['read committed', 'repeatable read', 'serializable'] as const) {
        const level = await sql.transaction(
          async (tx) =>
            (await tx.query<{ transaction_isolation: string }>('SHOW transaction_isolation'))
              .rows[0]!.transaction_isolation,
          { isolation },
        );
        expect(level).toBe(isolation);
      }
      const ro = await sql
        .transaction(async (tx) => tx.query("INSERT INTO kv VALUES ('ro', 1)"), { readOnly: true })
        .catch((e: unknown) => e);
      expect((ro as SqlError).sqlState).toBe('25006');
    });

    it('delivers NOTIFY from a transaction only when it commits', async () => {
      const got: string[] = [];
      // A second listener stays on after the first stops: the barrier for "nothing arrived".
      const after: string[] = [];
      const stopAfter = await sql.listen('cdp_contract', (payload) => after.push(payload));
      const stop = await sql.listen('cdp_contract', (payload) => got.push(payload));
      await sql.transaction(async (tx) => {
        await tx.notify('cdp_contract', 'committed');
        expect(got).toEqual([]);
      });
      await sql
        .transaction(async (tx) => {
          await tx.notify('cdp_contract', 'rolled-back');
          throw new Error('no');
        })
        .catch(() => {});
      await sql.notify('cdp_contract', 'direct');
      // Notifications arrive in commit order: once the marker is here, anything before it is.
      await sql.notify('cdp_contract', 'marker-1');
      await eventually(() => got.includes('marker-1'), 'the first marker notification', {
        timeoutMs: 3000,
      });
      expect(got).toEqual(['committed', 'direct', 'marker-1']);
      await stop();
      await sql.notify('cdp_contract', 'after-stop');
      await sql.notify('cdp_contract', 'marker-2');
      await eventually(() => after.includes('marker-2'), 'the second marker notification', {
        timeoutMs: 3000,
      });
      expect(got).toEqual(['committed', 'direct', 'marker-1']);
      await stopAfter();
    });

    it('rejects a channel name that is not an identifier', async () => {
      await expect(sql.listen('bad; DROP TABLE kv', () => {})).rejects.toThrow(
        /invalid channel name/,
      );
      await expect(sql.notify('x y')).rejects.toThrow(/invalid channel name/);
    });

    describe('migrations', () => {
      const m = (version: number, body: string, module = 'contract'): Migration => ({
        module,
        version,
        name: `step ${version}`,
        sql: body,
      });
      const base = [
        m(1, 'CREATE TABLE mig_a (id int)'),
        m(2, 'ALTER TABLE mig_a ADD COLUMN note text; INSERT INTO mig_a VALUES (1, $$x$$)'),
      ];

      it('applies each migration once and records it', async () => {
        const first = await migrate(sql, base);
        expect(first.applied.map((a) => a.version)).toEqual([1, 2]);
        const second = await migrate(sql, base);
        expect(second.applied).toEqual([]);
        expect(second.skipped).toBe(2);
        expect((await sql.query('SELECT * FROM mig_a')).rowCount).toBe(1);
        expect(
          (await appliedMigrations(sql))
            .filter((a) => a.module === 'contract')
            .map((a) => a.version),
        ).toEqual([1, 2]);
      });

      it('rolls a failing migration back whole and stops there', async () => {
        const failing = [
          ...base,
          m(3, 'CREATE TABLE mig_half (id int); INSERT INTO nope VALUES (1)'),
          m(4, 'CREATE TABLE mig_after (id int)'),
        ];
        const err = await migrate(sql, failing).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(MigrationError);
        expect((err as Error).message).toMatch(/contract#3.*rolled back whole/);
        const tables = await sql.query<{ t: string | null }>(
          "SELECT to_regclass('mig_half')::text AS t UNION ALL SELECT to_regclass('mig_after')::text",
        );
        expect(tables.rows.map((r) => r.t)).toEqual([null, null]);
        expect((await appliedMigrations(sql)).filter((a) => a.module === 'contract').length).toBe(
          2,
        );
      });

      it('refuses a database written by newer code, changing nothing', async () => {
        await migrate(sql, [...base, m(3, 'CREATE TABLE mig_c (id int)')]);
        const err = await migrate(sql, [
          ...base,
          m(1, 'CREATE TABLE other_x (id int)', 'other'),
        ]).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(SchemaTooNewError);
        expect((err as Error).message).toMatch(
          /migration 3 of module "contract".*knows only up to 2/,
        );
        expect((await sql.query("SELECT to_regclass('other_x') AS t")).rows[0]).toEqual({
          t: null,
        });
      });

      it('refuses an applied migration whose text changed, and a gap in numbering', async () => {
        const edited = [
          m(1, 'CREATE TABLE mig_a (id bigint)'),
          base[1]!,
          m(3, 'CREATE TABLE mig_c (id int)'),
        ];
        await expect(migrate(sql, edited)).rejects.toThrow(/changed after it was applied/);
        await expect(
          migrate(sql, [m(1, 'SELECT 1', 'gappy'), m(3, 'SELECT 1', 'gappy')]),
        ).rejects.toThrow(/without gaps/);
      });

      it('applies each migration exactly once when several clients migrate at once', async () => {
        const peers = await h.peers(3);
        const clients = [sql, ...peers.clients];
        const racing: Migration[] = [
          m(1, 'CREATE TABLE race_log (n int)', 'race'),
          ...Array.from({ length: 5 }, (_, i) =>
            m(i + 2, `INSERT INTO race_log VALUES (${i + 2})`, 'race'),
          ),
        ];
        const results = await Promise.all(clients.map((c) => migrate(c, racing)));
        expect(results.reduce((n, r) => n + r.applied.length, 0)).toBe(6);
        const { rows } = await sql.query<{ n: number }>('SELECT n FROM race_log ORDER BY n');
        expect(rows.map((r) => r.n)).toEqual([2, 3, 4, 5, 6]);
        await peers.close();
      });
    });

    it('refuses to run after close', async () => {
      const other = await h.open();
      await other.close();
      await other.close();
      expect(() => other.query('SELECT 1')).toThrow(ClosedError);
    });
  });
}
