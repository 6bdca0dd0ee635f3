/**
 * A/B of how the append statement travels, against a plain one-row INSERT:
 * - described: the fast-path statement run as `pg` runs a named query (Bind, Describe, Execute,
 *   Sync each time, rows built through its type parsers);
 * - raw: the same statement through `PgSqlClient.preparedRows` (Bind, Execute, Sync, rows as
 *   text), what the store does;
 * - insert: `INSERT INTO bench_plain (stream_id, type, data)`, the events benchmark's peer.
 * One connection each, sequential, one event to 1,000 streams each, the variants alternating
 * within each round; prints rates per round, medians, the ratio to INSERT and, per round, the
 * ratio to `described` (its median).
 *
 *   CDP_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npx tsx bench/ab/append-protocol.ts
 *   (AB_ROUNDS=11, AB_MS=1000 by default)
 */
import pg from 'pg';
import { tempDb } from '../../src/bench/harness.js';
import { systemClock } from '../../src/core/clock.js';
import { UuidV7Generator } from '../../src/core/ids.js';
import { PgSqlClient } from '../../src/engines/sql/pg-sql-client.js';
import { SqlEventStore } from '../../src/events/sql-event-store.js';

const url = process.env.CDP_DATABASE_URL;
if (!url) throw new Error('set CDP_DATABASE_URL to a PostgreSQL database this run may use');
const rounds = Number(process.env.AB_ROUNDS ?? 11);
const ms = Number(process.env.AB_MS ?? 1000);

const db = await tempDb(url, 'ab_protocol');
const sql = await PgSqlClient.connect({ url: db.url, max: 1 });
const described = new pg.Pool({ connectionString: db.url, max: 1 });
const plain = new pg.Pool({ connectionString: db.url, max: 1 });
const ids = new UuidV7Generator(systemClock);
try {
  const store = await SqlEventStore.open(sql, { notify: false });
  await store.append('ab-warmup', [{ type: 'W', data: 1 }]);
  await plain.query(
    'CREATE TABLE bench_plain (id bigserial PRIMARY KEY, stream_id text NOT NULL, type text NOT NULL, data jsonb NOT NULL)',
  );
  // The statement the store prepared for a one-event append with expectation `any`.
  const { rows } = await sql.query<{ statement: string }>(
    "SELECT statement FROM pg_prepared_statements WHERE name = 'cdp_events_fast_any_1'",
  );
  const text = rows[0]!.statement;
  let seq = 0;
  const data = () => JSON.stringify({ courseId: 'c-42', studentId: `s-${seq}`, rating: 4 });
  const values = (prefix: string) => [
    `${prefix}-${seq++ % 1000}`,
    ids.next(),
    'Rated',
    data(),
    '{}',
    1,
    new Date().toISOString(),
  ];
  const variants: Record<string, () => Promise<unknown>> = {
    described: () => described.query({ name: 'ab_described', text, values: values('d') }),
    raw: () => sql.preparedRows({ name: 'ab_raw', text }, values('r')),
    insert: () =>
      plain.query('INSERT INTO bench_plain (stream_id, type, data) VALUES ($1, $2, $3)', [
        `one-${seq++ % 1000}`,
        'Rated',
        data(),
      ]),
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
    const paired = rates[name]!.map((x, i) => x / rates.described![i]!);
    console.log(
      `${name.padEnd(9)} ${rates[name]!.join(' ')}  median ${median(rates[name]!)}/s` +
        `  vs INSERT ${(median(rates[name]!) / median(rates.insert!)).toFixed(2)}x` +
        `  vs described (per round) ${median(paired).toFixed(2)}x`,
    );
  }
  await store.close();
} finally {
  await sql.close();
  await described.end();
  await plain.end();
  await db.drop();
}
