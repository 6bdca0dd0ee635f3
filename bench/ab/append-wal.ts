/**
 * WAL written per operation, sequential, one event to 1,000 streams:
 * - row: migration 4's one statement (`row-statement.ts`: the stream's version in a stream row,
 *   updated by every append), through `PgSqlClient.preparedRows`;
 * - pipeline: `SqlEventStore.append` (migration 5: no stream row);
 * - insert: a one-row INSERT into `bench_plain`, the events benchmark's peer.
 * Each variant runs AB_OPS operations after a CHECKPOINT (so the first change to each page
 * writes a full-page image for every variant alike); the WAL position's advance is divided by
 * the operations. Needs a server this run may CHECKPOINT and nothing else writing meanwhile.
 *
 *   CDP_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npx tsx bench/ab/append-wal.ts
 *   (AB_OPS=5000 by default)
 */
import pg from 'pg';
import { benchDatabaseName } from '../../src/bench/harness.js';
import { PLAIN_TABLE, plainInsert, ratingData } from '../../src/bench/plain-insert.js';
import { PgSqlClient } from '../../src/engines/sql/pg-sql-client.js';
import { SqlEventStore } from '../../src/events/sql-event-store.js';
import { createTempDatabase } from '../../src/testing/temp-database.js';
import { ROW_STATEMENT, STREAM_TABLE } from './row-statement.js';

const url = process.env.CDP_DATABASE_URL;
if (!url) throw new Error('set CDP_DATABASE_URL to a PostgreSQL database this run may use');
const ops = Number(process.env.AB_OPS ?? 5000);

const db = await createTempDatabase(url, { name: benchDatabaseName('ab_wal') });
const sql = await PgSqlClient.open({ url: db.url, max: 1 });
const plain = new pg.Client({ connectionString: db.url });
await plain.connect();
try {
  const store = await SqlEventStore.open(sql, { notify: false });
  await plain.query(STREAM_TABLE);
  await plain.query(PLAIN_TABLE);
  const variants: Record<string, (i: number) => Promise<unknown>> = {
    row: (i) =>
      sql.preparedRows({ name: 'ab_row', text: ROW_STATEMENT }, [
        `r-${i % 1000}`,
        crypto.randomUUID(),
        'Rated',
        JSON.stringify(ratingData(i)),
        '{}',
        1,
        new Date().toISOString(),
      ]),
    pipeline: (i) => store.append(`p-${i % 1000}`, [{ type: 'Rated', data: ratingData(i) }]),
    insert: (i) => plainInsert(plain, `i-${i % 1000}`, ratingData(i)),
  };
  const lsn = async () =>
    (await plain.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l')).rows[0]!.l;
  // Every stream exists and every table has its first pages before measuring.
  for (const op of Object.values(variants)) for (let i = 0; i < 1000; i++) await op(i);
  for (const [name, op] of Object.entries(variants)) {
    await plain.query('CHECKPOINT');
    const before = await lsn();
    for (let i = 0; i < ops; i++) await op(i);
    const after = await lsn();
    const bytes = (
      await plain.query<{ d: string }>('SELECT pg_wal_lsn_diff($1, $2)::text AS d', [after, before])
    ).rows[0]!.d;
    console.log(`${name.padEnd(9)} ${(Number(bytes) / ops).toFixed(0)} WAL bytes per operation`);
  }
  await store.close();
} finally {
  await sql.close();
  await plain.end();
  await db.drop();
}
