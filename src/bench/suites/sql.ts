import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { PgSqlClient } from '../../engines/sql/pg-sql-client.js';
import { PgliteSqlClient } from '../../engines/sql/pglite-sql-client.js';
import type { SqlClient } from '../../engines/sql/sql-client.js';
import { type BenchSuite, interleave, opsPerSecond, result, timeMs } from '../harness.js';

const ROWS = 1000;
const TABLE = 'cdp_bench_sql';

async function insertOurs(sql: SqlClient): Promise<number> {
  await sql.query(`TRUNCATE ${TABLE}`);
  return timeMs(() =>
    sql.transaction(async (tx) => {
      for (let i = 0; i < ROWS; i++)
        await tx.query(`INSERT INTO ${TABLE} (id, body) VALUES ($1, $2)`, [i, `row ${i}`]);
    }),
  );
}

async function insertRaw(pool: pg.Pool): Promise<number> {
  await pool.query(`TRUNCATE ${TABLE}`);
  return timeMs(async () => {
    const c = await pool.connect();
    try {
      await c.query('BEGIN');
      for (let i = 0; i < ROWS; i++)
        await c.query(`INSERT INTO ${TABLE} (id, body) VALUES ($1, $2)`, [i, `row ${i}`]);
      await c.query('COMMIT');
    } finally {
      c.release();
    }
  });
}

/** The same inserts through PGlite's own API (the peer of our PGlite client). */
async function insertRawLite(db: PGlite): Promise<number> {
  await db.query(`TRUNCATE ${TABLE}`);
  return timeMs(() =>
    db.transaction(async (tx) => {
      for (let i = 0; i < ROWS; i++)
        await tx.query(`INSERT INTO ${TABLE} (id, body) VALUES ($1, $2)`, [i, `row ${i}`]);
    }),
  );
}

const suite: BenchSuite = {
  name: 'sql',
  description:
    'SqlClient round trip and a 1,000-row insert: on PostgreSQL vs raw pg (same pool size), and on PGlite vs raw PGlite',
  requires: ['CDP_DATABASE_URL'],
  async run(ctx) {
    const url = ctx.env.CDP_DATABASE_URL!;
    const rounds = ctx.quick ? 5 : 15;
    const durationMs = ctx.quick ? 400 : 1500;
    const insertRepeats = ctx.quick ? 2 : 5;
    const ours = await PgSqlClient.open({ url, max: 10 });
    const raw = new pg.Pool({ connectionString: url, max: 10 });
    let lite: SqlClient | undefined;
    let rawLite: PGlite | undefined;
    try {
      await ours.exec(
        `DROP TABLE IF EXISTS ${TABLE}; CREATE TABLE ${TABLE} (id int PRIMARY KEY, body text NOT NULL)`,
      );
      // Ours against raw pg first, with PGlite not even open: its WASM heap and GC would land
      // on whichever contender runs next and blur a comparison of a few percent.
      ctx.progress(`round trips: ${rounds} interleaved rounds of ${durationMs} ms`);
      const rtPg = await interleave(
        {
          ours: () => opsPerSecond(() => ours.query('SELECT 1'), durationMs),
          raw: () => opsPerSecond(() => raw.query('SELECT 1'), durationMs),
        },
        rounds,
      );
      ctx.progress(`1,000-row inserts: ${rounds * insertRepeats} interleaved pairs`);
      const best = async (f: () => Promise<number>) => {
        const xs: number[] = [];
        for (let i = 0; i < insertRepeats; i++) xs.push(await f());
        return Math.min(...xs);
      };
      // Many short alternating pairs (median of each side): robust to the drift of a shared
      // machine, which moves a 1,000-row transaction by more than the few percent compared.
      const insPg = await interleave(
        { ours: () => insertOurs(ours), raw: () => insertRaw(raw) },
        rounds * insertRepeats,
        3,
      );
      ctx.progress('PGlite: round trips and 1,000-row inserts');
      const db = await PgliteSqlClient.open({});
      lite = db;
      await db.exec(`CREATE TABLE ${TABLE} (id int PRIMARY KEY, body text NOT NULL)`);
      // Raw PGlite (its own query API, a database of its own) interleaved with ours.
      const peerLite = await PGlite.create();
      rawLite = peerLite;
      await peerLite.exec(`CREATE TABLE ${TABLE} (id int PRIMARY KEY, body text NOT NULL)`);
      const liteRounds = Math.max(3, Math.round(rounds / 3));
      const rtLite = await interleave(
        {
          lite: () => opsPerSecond(() => db.query('SELECT $1::int', [1]), durationMs),
          rawLite: () => opsPerSecond(() => peerLite.query('SELECT $1::int', [1]), durationMs),
        },
        liteRounds,
      );
      const insLite = await interleave(
        {
          lite: () => best(() => insertOurs(db)),
          rawLite: () => best(() => insertRawLite(peerLite)),
        },
        liteRounds,
      );
      const rt = { ...rtPg, ...rtLite };
      const ins = { ...insPg, ...insLite };
      const params = { rounds, poolSize: 10, rows: ROWS, server: 'PostgreSQL on 127.0.0.1' };
      return [
        result({
          id: 'sql.roundtrip',
          metric: 'SELECT 1 round trips, sequential',
          unit: 'ops/s',
          ours: Math.round(rt.ours),
          peer: { name: 'raw pg', value: Math.round(rt.raw) },
          higherIsBetter: true,
          params: {
            ...params,
            engine: 'postgres',
            overheadPct: Math.round((rt.raw / rt.ours - 1) * 1000) / 10,
          },
        }),
        result({
          id: 'sql.roundtrip.pglite',
          metric: 'SELECT $1 round trips, sequential (embedded PGlite vs raw PGlite)',
          unit: 'ops/s',
          ours: Math.round(rt.lite),
          peer: { name: 'raw PGlite (query)', value: Math.round(rt.rawLite) },
          higherIsBetter: true,
          params: {
            ...params,
            engine: 'pglite',
            server: 'none (in process)',
            vsServerOverLoopback: { rawPgSelect1: Math.round(rt.raw) },
          },
        }),
        result({
          id: 'sql.insert-1000',
          metric: '1,000 single-row INSERTs in one transaction',
          unit: 'ms',
          ours: Math.round(ins.ours * 100) / 100,
          peer: { name: 'raw pg', value: Math.round(ins.raw * 100) / 100 },
          higherIsBetter: false,
          params: {
            ...params,
            engine: 'postgres',
            overheadPct: Math.round((ins.ours / ins.raw - 1) * 1000) / 10,
          },
        }),
        result({
          id: 'sql.insert-1000.pglite',
          metric: '1,000 single-row INSERTs in one transaction (embedded PGlite)',
          unit: 'ms',
          ours: Math.round(ins.lite * 100) / 100,
          peer: {
            name: 'raw PGlite (transaction, query)',
            value: Math.round(ins.rawLite * 100) / 100,
          },
          higherIsBetter: false,
          params: { ...params, engine: 'pglite', server: 'none (in process)' },
        }),
      ];
    } finally {
      await ours.exec(`DROP TABLE IF EXISTS ${TABLE}`).catch(() => {});
      await ours.close();
      await raw.end();
      await lite?.close();
      await rawLite?.close();
    }
  },
};

export default suite;
