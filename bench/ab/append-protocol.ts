/**
 * A/B of how an autocommitted one-event append travels, against a plain one-row INSERT:
 * - row-described: migration 4's one statement (the stream's version kept in a stream row,
 *   `INSERT ... ON CONFLICT DO UPDATE` on `cdp_event_streams`), run as `pg` runs a named query
 *   (Bind, Describe, Execute, Sync each time, rows built through its type parsers);
 * - row-raw: the same statement through `PgSqlClient.preparedRows` (Bind, Execute, Sync, rows as
 *   text): what the store did up to migration 4;
 * - pipeline: `SqlEventStore.append` (migration 5): the stream's lock, then the version read
 *   from the stream's last event and the insert, two statements in one round trip
 *   (`PgSqlClient.preparedPipeline`), no stream row;
 * - insert: `INSERT INTO bench_plain (stream_id, type, data)`, the events benchmark's peer.
 * One connection each, sequential, one event to 1,000 streams each, the variants alternating
 * within each round; prints rates per round, medians, the ratio to INSERT and, per round, the
 * ratio to `row-raw` (its median). The stream table, gone since migration 5, is recreated here
 * for the row variants.
 *
 *   CDP_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npx tsx bench/ab/append-protocol.ts
 *   (AB_ROUNDS=11, AB_MS=1000 by default)
 */
import pg from 'pg';
import { benchDatabaseName } from '../../src/bench/harness.js';
import { PLAIN_TABLE, plainInsert, ratingData } from '../../src/bench/plain-insert.js';
import { systemClock } from '../../src/core/clock.js';
import { UuidV7Generator } from '../../src/core/ids.js';
import { PgSqlClient } from '../../src/engines/sql/pg-sql-client.js';
import { SqlEventStore } from '../../src/events/sql-event-store.js';
import { createTempDatabase } from '../../src/testing/temp-database.js';
import { ROW_STATEMENT, STREAM_TABLE } from './row-statement.js';

const url = process.env.CDP_DATABASE_URL;
if (!url) throw new Error('set CDP_DATABASE_URL to a PostgreSQL database this run may use');
const rounds = Number(process.env.AB_ROUNDS ?? 11);
const ms = Number(process.env.AB_MS ?? 1000);

const db = await createTempDatabase(url, { name: benchDatabaseName('ab_protocol') });
const sql = await PgSqlClient.open({ url: db.url, max: 1 });
const rowSql = await PgSqlClient.open({ url: db.url, max: 1 });
const described = new pg.Pool({ connectionString: db.url, max: 1 });
const plain = new pg.Pool({ connectionString: db.url, max: 1 });
const ids = new UuidV7Generator(systemClock);
try {
  const store = await SqlEventStore.open(sql, { notify: false });
  await store.append('ab-warmup', [{ type: 'W', data: 1 }]);
  await plain.query(PLAIN_TABLE);
  await plain.query(STREAM_TABLE);
  let seq = 0;
  const data = () => ratingData(seq);
  const values = (prefix: string) => [
    `${prefix}-${seq++ % 1000}`,
    ids.next(),
    'Rated',
    JSON.stringify(data()),
    '{}',
    1,
    new Date().toISOString(),
  ];
  const variants: Record<string, () => Promise<unknown>> = {
    'row-described': () =>
      described.query({ name: 'ab_described', text: ROW_STATEMENT, values: values('d') }),
    'row-raw': () => rowSql.preparedRows({ name: 'ab_raw', text: ROW_STATEMENT }, values('r')),
    pipeline: () => store.append(`p-${seq++ % 1000}`, [{ type: 'Rated', data: data() }]),
    insert: () => plainInsert(plain, `one-${seq++ % 1000}`, data()),
  };
  for (const op of Object.values(variants)) for (let i = 0; i < 300; i++) await op();
  const names = Object.keys(variants);
  const rates: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  for (let r = 0; r < rounds; r++) {
    for (const [name, op] of Object.entries(variants)) {
      const end = performance.now() + ms;
      let n = 0;
      while (performance.now() < end) {
        await op();
        n++;
      }
      rates[name]!.push(Math.round((n * 1000) / ms));
    }
  }
  const median = (v: number[]) => [...v].sort((a, b) => a - b)[v.length >> 1]!;
  for (const name of names) {
    const paired = rates[name]!.map((x, i) => x / rates['row-raw']![i]!);
    console.log(
      `${name.padEnd(13)} ${rates[name]!.join(' ')}  median ${median(rates[name]!)}/s` +
        `  vs INSERT ${(median(rates[name]!) / median(rates.insert!)).toFixed(2)}x` +
        `  vs row-raw (per round) ${median(paired).toFixed(2)}x`,
    );
  }
  await store.close();
} finally {
  await sql.close();
  await rowSql.close();
  await described.end();
  await plain.end();
  await db.drop();
}
