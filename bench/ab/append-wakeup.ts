/**
 * A/B of what waking subscribers costs sequential appends, against a plain one-row INSERT:
 * - wake: a store that wakes subscribers on every append, as one does while a subscription
 *   holds a lease (`subscriberCheckMs: 0`): a throttled `SELECT pg_notify` of its own after
 *   appends (at most one per `notifyIntervalMs`, 2 ms, at most one in flight);
 * - default: the default store with no subscription holding a lease: it looks once a second
 *   and sends no wake-up;
 * - off: `notify: false`, no wake-up and no lookup;
 * - insert: `INSERT INTO bench_plain (stream_id, type, data)`, the events benchmark's peer.
 * Sequential appends of one event to 1,000 streams, the variants alternating within each round;
 * prints the rates per round, the median, the ratio to INSERT and machine-wide CPU time per
 * operation (from /proc/stat, so run it on a quiet machine). See also append-processes.ts.
 *
 *   CDP_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npx tsx bench/ab/append-wakeup.ts
 *   (AB_ROUNDS=9, AB_MS=3000 by default)
 */
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { benchDatabaseName } from '../../src/bench/harness.js';
import { PLAIN_TABLE, plainInsert, ratingData } from '../../src/bench/plain-insert.js';
import { PgSqlClient } from '../../src/engines/sql/pg-sql-client.js';
import { SqlEventStore } from '../../src/events/sql-event-store.js';
import { createTempDatabase } from '../../src/testing/temp-database.js';

const url = process.env.CDP_DATABASE_URL;
if (!url) throw new Error('set CDP_DATABASE_URL to a PostgreSQL database this run may use');
const rounds = Number(process.env.AB_ROUNDS ?? 9);
const ms = Number(process.env.AB_MS ?? 3000);

/** Busy CPU time of the whole machine so far, in us (user, nice, system, irq, softirq). */
function busyUs(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1);
  const [user, nice, system, , , irq, softirq] = f.map(Number);
  return (user! + nice! + system! + irq! + softirq!) * 10_000;
}

const db = await createTempDatabase(url, { name: benchDatabaseName('ab_wakeup') });
const dbUrl = new URL(db.url);
const sql = await PgSqlClient.open({ url: dbUrl.toString(), max: 16 });
const plain = new pg.Pool({ connectionString: dbUrl.toString(), max: 16 });
try {
  await SqlEventStore.open(sql);
  const waking = new SqlEventStore(sql, { subscriberCheckMs: 0 });
  const unsubscribed = new SqlEventStore(sql);
  const silent = new SqlEventStore(sql, { notify: false });
  await plain.query(PLAIN_TABLE);

  let seq = 0;
  const data = () => ratingData(seq);
  const variants: Record<string, () => Promise<unknown>> = {
    wake: () => waking.append(`one-${seq++ % 1000}`, [{ type: 'Rated', data: data() }]),
    default: () => unsubscribed.append(`one-${seq++ % 1000}`, [{ type: 'Rated', data: data() }]),
    off: () => silent.append(`one-${seq++ % 1000}`, [{ type: 'Rated', data: data() }]),
    insert: () => plainInsert(plain, `one-${seq++ % 1000}`, data()),
  };
  for (const op of Object.values(variants)) for (let i = 0; i < 200; i++) await op();

  const names = Object.keys(variants);
  const rates: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  const cpu: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  for (let r = 0; r < rounds; r++) {
    for (const [name, op] of Object.entries(variants)) {
      const before = busyUs();
      const end = performance.now() + ms;
      let n = 0;
      while (performance.now() < end) {
        await op();
        n++;
      }
      rates[name]!.push(Math.round(n / (ms / 1000)));
      cpu[name]!.push(Math.round((busyUs() - before) / n));
    }
  }
  const median = (v: number[]) => [...v].sort((a, b) => a - b)[v.length >> 1]!;
  const insert = median(rates.insert!);
  for (const name of names) {
    console.log(
      `${name.padEnd(9)} ${rates[name]!.join(' ')}  median ${median(rates[name]!)}/s` +
        `  vs INSERT ${(median(rates[name]!) / insert).toFixed(2)}x` +
        `  CPU per op ${median(cpu[name]!)} us`,
    );
  }
  await waking.close();
  await unsubscribed.close();
  await silent.close();
} finally {
  await sql.close();
  await plain.end();
  await db.drop();
}
