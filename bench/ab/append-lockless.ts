/**
 * A/B of the autocommitted append's statements on the server, without the store's client work
 * (values made here): the store's two-statement pipeline (the append gate and the stream's lock,
 * then the version read and the insert), against the same append as one statement
 * - fn: the locks and the version read in a small PL/pgSQL function called from the statement
 *   (a volatile function's query takes its own snapshot, after the lock);
 * - nolock: no stream lock (the append gate only), the version resting on the unique index of
 *   stream and version alone (a racing append fails there instead of waiting for the lock);
 * and a plain one-row INSERT. One connection each, sequential, one event to 1,000 streams,
 * rotating within each round; ratios are medians of per-round ratios. Statements are copies of
 * the store's with `expected: 'any'`, one event (see `fastAppendSql`).
 *
 *   CDP_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npx tsx bench/ab/append-lockless.ts
 *   (AB_ROUNDS=9, AB_MS=1000; AB_ASYNC=1 runs all with synchronous_commit = off)
 */
import pg from 'pg';
import { benchDatabaseName } from '../../src/bench/harness.js';
import { PLAIN_TABLE, plainInsert, ratingData } from '../../src/bench/plain-insert.js';
import { UuidV7Generator } from '../../src/core/ids.js';
import { PgSqlClient } from '../../src/engines/sql/pg-sql-client.js';
import {
  APPEND_GATE,
  LOCK_CLASS,
  POSITION_LOCK,
  STREAM_LOCK_CLASS,
} from '../../src/events/internal/advisory-locks.js';
import { SqlEventStore } from '../../src/events/sql-event-store.js';
import { createTempDatabase } from '../../src/testing/temp-database.js';

const url = process.env.CDP_DATABASE_URL;
if (!url) throw new Error('set CDP_DATABASE_URL to a PostgreSQL database this run may use');
const rounds = Number(process.env.AB_ROUNDS ?? 9);
const ms = Number(process.env.AB_MS ?? 1000);
const db = await createTempDatabase(url, { name: benchDatabaseName('ab_lockless') });
const u = new URL(db.url);
if (process.env.AB_ASYNC === '1') u.searchParams.set('options', '-c synchronous_commit=off');
const clients: PgSqlClient[] = [];
const mk = async () => {
  const c = await PgSqlClient.open({ url: u.toString(), max: 1 });
  clients.push(c);
  return c;
};
const sql = await mk();
await SqlEventStore.open(sql, { notify: false });
const plain = new pg.Pool({ connectionString: u.toString(), max: 1 });
await plain.query(PLAIN_TABLE);
await plain.query(`CREATE FUNCTION ab_lock_head(p text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE v bigint; BEGIN
 PERFORM pg_advisory_xact_lock_shared(${LOCK_CLASS}, ${APPEND_GATE}), pg_advisory_xact_lock(${STREAM_LOCK_CLASS}, hashtext(p));
 SELECT version INTO v FROM cdp_events WHERE stream_id = p ORDER BY version DESC LIMIT 1;
 RETURN coalesce(v, 0); END $$`);
const LAST =
  'SELECT version FROM cdp_events WHERE stream_id = $1::text ORDER BY version DESC LIMIT 1';
const rest = `l AS MATERIALIZED (
    SELECT h.head, pg_advisory_lock(${LOCK_CLASS}, ${POSITION_LOCK}) AS positions FROM h WHERE true
  ), p AS MATERIALIZED (
    SELECT l.head, pg_current_xact_id() AS xid, nextval('cdp_events_position_seq') AS pos FROM l
  ), u AS MATERIALIZED (
    SELECT p.head, p.xid, p.pos, pg_advisory_unlock(${LOCK_CLASS}, ${POSITION_LOCK}) AS unlocked FROM p
  ), e AS (
    INSERT INTO cdp_events (position, tx_id, stream_id, version, event_id, type, schema_version, data, metadata, recorded_at)
      SELECT u.pos, u.xid, $1, u.head + 1, $2::uuid, $3::text, $6::int, $4::jsonb, $5::jsonb, $7::timestamptz
        FROM u RETURNING position
  )
  SELECT h.head, (SELECT array_agg(e.position ORDER BY e.position) FROM e) AS positions FROM h`;
const CUR = {
  name: 'cur',
  text: `WITH h AS MATERIALIZED (SELECT coalesce((${LAST}), 0) AS head), ${rest}`,
};
const LOCK = {
  name: 'lock',
  text: `SELECT pg_advisory_xact_lock_shared(${LOCK_CLASS}, ${APPEND_GATE}), pg_advisory_xact_lock(${STREAM_LOCK_CLASS}, hashtext($1::text))`,
};
const FN = {
  name: 'fn',
  text: `WITH h AS MATERIALIZED (SELECT ab_lock_head($1) AS head), ${rest}`,
};
const NOLOCK = {
  name: 'nolock',
  text: `WITH g AS MATERIALIZED (SELECT pg_advisory_xact_lock_shared(${LOCK_CLASS}, ${APPEND_GATE})), h AS MATERIALIZED (SELECT coalesce((${LAST}), 0) AS head FROM g), ${rest}`,
};
const ids = new UuidV7Generator();
let seq = 0;
const data = () => ratingData(seq);
const vals = (p: string) => [
  `${p}-${seq++ % 1000}`,
  ids.next(),
  'Rated',
  JSON.stringify(data()),
  '{}',
  1,
  new Date().toISOString(),
];
const [a, b, c] = [await mk(), await mk(), await mk()];
const variants: Record<string, () => Promise<unknown>> = {
  pipeline: () => {
    const v = vals('a');
    return a.preparedPipeline([
      { statement: LOCK, values: [v[0]!] },
      { statement: CUR, values: v },
    ]);
  },
  fn: () => b.preparedRows(FN, vals('b')),
  nolock: () => c.preparedRows(NOLOCK, vals('c')),
  insert: () => plainInsert(plain, `i-${seq++ % 1000}`, data()),
};
for (const op of Object.values(variants)) for (let i = 0; i < 500; i++) await op();
const samples: Record<string, number[]> = {};
for (let r = 0; r < rounds; r++) {
  const keys = Object.keys(variants);
  const order = keys.map((_, i) => keys[(i + r) % keys.length]!);
  for (const k of order) {
    let n = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < ms) {
      for (let i = 0; i < 8; i++) {
        await variants[k]!();
        n++;
      }
    }
    samples[k] ??= [];
    samples[k].push(n / ((performance.now() - t0) / 1000));
  }
}
const med = (xs: number[]) => [...xs].sort((x, y) => x - y)[xs.length >> 1]!;
const ins = samples.insert!;
for (const [k, xs] of Object.entries(samples)) {
  const ratios = xs.map((x, i) => x / ins[i]!);
  console.log(
    k.padEnd(10),
    'median/s',
    med(xs).toFixed(0),
    'vs insert (median of round ratios)',
    med(ratios).toFixed(3),
    ' vs pipeline',
    med(xs.map((x, i) => x / samples.pipeline![i]!)).toFixed(3),
  );
}
for (const c of clients) await c.close();
await plain.end();
await db.drop();
