/**
 * Appends from several processes at once, the default store (which wakes subscribers with a
 * throttled NOTIFY of its own) against `notify: false`: AB_PROCESSES processes of AB_WRITERS
 * concurrent writers each (distinct streams), AB_MS ms per round, the two alternating for
 * AB_ROUNDS rounds; prints events/s per round and the median. To compare another version of
 * the store, run this script from that checkout.
 *
 *   CDP_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npx tsx bench/ab/append-processes.ts
 *   (AB_PROCESSES=4, AB_WRITERS=8, AB_MS=8000, AB_ROUNDS=3 by default)
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { benchDatabaseName } from '../../src/bench/harness.js';
import { PgSqlClient } from '../../src/engines/sql/pg-sql-client.js';
import { SqlEventStore } from '../../src/events/sql-event-store.js';
import { createTempDatabase } from '../../src/testing/temp-database.js';

const ms = Number(process.env.AB_MS ?? 8000);

if (process.env.AB_CHILD) {
  // One writer process: AB_WRITERS concurrent appenders for AB_MS; prints how many it appended.
  const sql = await PgSqlClient.open({ url: process.env.AB_DB!, max: 10 });
  const store = new SqlEventStore(sql, { notify: process.env.AB_CHILD === 'wake' });
  const end = Date.now() + ms;
  let n = 0;
  let seq = 0;
  await Promise.all(
    Array.from({ length: Number(process.env.AB_WRITERS ?? 8) }, async (_, w) => {
      while (Date.now() < end) {
        await store.append(`p-${process.pid}-${w}-${seq++ % 20}`, [{ type: 'T', data: { seq } }]);
        n++;
      }
    }),
  );
  console.log(n);
  await store.close();
  await sql.close();
} else {
  const url = process.env.CDP_DATABASE_URL;
  if (!url) throw new Error('set CDP_DATABASE_URL to a PostgreSQL database this run may use');
  const run = promisify(execFile);
  const db = await createTempDatabase(url, { name: benchDatabaseName('ab_proc') });
  const dbUrl = new URL(db.url);
  try {
    const sql = await PgSqlClient.open({ url: dbUrl.toString(), max: 2 });
    await SqlEventStore.open(sql);
    await sql.close();
    const script = fileURLToPath(import.meta.url);
    const rates: Record<string, number[]> = { wake: [], off: [] };
    for (let r = 0; r < Number(process.env.AB_ROUNDS ?? 3); r++) {
      for (const variant of ['wake', 'off']) {
        const outs = await Promise.all(
          Array.from({ length: Number(process.env.AB_PROCESSES ?? 4) }, () =>
            run('npx', ['tsx', script], {
              env: { ...process.env, AB_CHILD: variant, AB_DB: dbUrl.toString() },
            }),
          ),
        );
        const total = outs.reduce((a, o) => a + Number(o.stdout.trim().split('\n').pop()), 0);
        rates[variant]!.push(Math.round(total / (ms / 1000)));
      }
    }
    for (const [variant, v] of Object.entries(rates)) {
      const median = [...v].sort((a, b) => a - b)[v.length >> 1];
      console.log(`${variant.padEnd(5)} ${v.join(' ')}  median ${median} events/s`);
    }
  } finally {
    await db.drop();
  }
}
