/**
 * Where an append's time goes, against a one-row INSERT: per operation, the wall time, the CPU
 * of this (client) process and the CPU of the server process serving it (read from /proc, so
 * the server must run on this machine). One connection each, sequential operations, the two
 * alternating for AB_ROUNDS rounds of AB_OPS operations. AB_ASYNC=1 runs both with
 * `synchronous_commit = off`, which takes the commit's flush (and its kernel time) out.
 *
 *   CDP_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npx tsx bench/ab/append-cpu.ts
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
const rounds = Number(process.env.AB_ROUNDS ?? 3);
const ops = Number(process.env.AB_OPS ?? 5000);
const async = process.env.AB_ASYNC === '1';

/** utime + stime of a process, in us. */
function cpuUs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

const db = await createTempDatabase(url, { name: benchDatabaseName('ab_cpu') });
const dbUrl = new URL(db.url);
if (async) dbUrl.searchParams.set('options', '-c synchronous_commit=off');
const sql = await PgSqlClient.open({ url: dbUrl.toString(), max: 1 });
const plain = new pg.Pool({ connectionString: dbUrl.toString(), max: 1, idleTimeoutMillis: 0 });
try {
  await SqlEventStore.open(sql);
  // No subscribers here: leave the wake-up out, to compare the append itself.
  const store = new SqlEventStore(sql, { notify: false });
  await plain.query(PLAIN_TABLE);
  let seq = 0;
  const data = () => ratingData(seq);
  const variants = {
    append: () => store.append(`one-${seq++ % 1000}`, [{ type: 'Rated', data: data() }]),
    insert: () => plainInsert(plain, `one-${seq++ % 1000}`, data()),
  };
  const pidOf = async (q: Promise<{ rows: { pid: number }[] }>) => (await q).rows[0]!.pid;
  const pids = {
    append: await pidOf(sql.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')),
    insert: await pidOf(plain.query('SELECT pg_backend_pid() AS pid')),
  };
  for (const op of Object.values(variants)) for (let i = 0; i < 500; i++) await op();
  console.log(`synchronous_commit ${async ? 'off' : 'on'}; us per operation`);
  for (let r = 0; r < rounds; r++) {
    for (const name of ['append', 'insert'] as const) {
      const client0 = process.cpuUsage();
      const server0 = cpuUs(pids[name]);
      const t0 = performance.now();
      for (let i = 0; i < ops; i++) await variants[name]();
      const wall = ((performance.now() - t0) * 1000) / ops;
      const c = process.cpuUsage(client0);
      const client = (c.user + c.system) / ops;
      const server = (cpuUs(pids[name]) - server0) / ops;
      console.log(
        `${name.padEnd(6)} wall ${wall.toFixed(0).padStart(5)}  client CPU ${client.toFixed(0).padStart(4)}  server CPU ${server.toFixed(0).padStart(4)}`,
      );
    }
  }
  await store.close();
} finally {
  await sql.close();
  await plain.end();
  await db.drop();
}
