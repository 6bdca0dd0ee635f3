/**
 * An append's client side, against a plain one-row INSERT and, optionally, against the store of
 * an earlier commit: appends/s and this process's CPU (user + system) per operation, one
 * connection each, sequential, one event to 1,000 streams, the variants rotating within each
 * round. Ratios are medians of per-round ratios (the variants of a round run back to back).
 *
 *   CDP_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npx tsx bench/ab/append-client.ts
 *   (AB_ROUNDS=15, AB_OPS=1000; AB_ASYNC=1 runs all with synchronous_commit = off)
 *
 * An earlier commit's store, e.g. d874d74 (before the client trim of 2026-12-03), from an
 * extract inside this checkout (so that it finds node_modules; scratch/ is git-ignored):
 *
 *   mkdir -p scratch/baseline && git archive d874d74 src | tar -x -C scratch/baseline
 *   AB_BASELINE=scratch/baseline npx tsx bench/ab/append-client.ts
 *
 * The baseline must use the same migrations as this checkout (both append to one database).
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { benchDatabaseName } from '../../src/bench/harness.js';
import { PLAIN_TABLE, plainInsert, ratingData } from '../../src/bench/plain-insert.js';
import { PgSqlClient } from '../../src/engines/sql/pg-sql-client.js';
import { SqlEventStore } from '../../src/events/sql-event-store.js';
import { createTempDatabase } from '../../src/testing/temp-database.js';

const url = process.env.CDP_DATABASE_URL;
if (!url) throw new Error('set CDP_DATABASE_URL to a PostgreSQL database this run may use');
const rounds = Number(process.env.AB_ROUNDS ?? 15);
const ops = Number(process.env.AB_OPS ?? 1000);
const baselineDir = process.env.AB_BASELINE;

interface Appender {
  append(streamId: string, events: { type: string; data: unknown }[]): Promise<unknown>;
  close(): Promise<void>;
}
interface Closable {
  close(): Promise<void>;
}

const db = await createTempDatabase(url, { name: benchDatabaseName('ab_client') });
const dbUrl = new URL(db.url);
if (process.env.AB_ASYNC === '1') dbUrl.searchParams.set('options', '-c synchronous_commit=off');
const closing: Closable[] = [];
const plain = new pg.Pool({ connectionString: dbUrl.toString(), max: 1 });
try {
  const sql = await PgSqlClient.open({ url: dbUrl.toString(), max: 1 });
  closing.push(sql);
  await SqlEventStore.open(sql);
  // No subscribers here: leave the wake-up out, to compare the append itself.
  const stores: Record<string, Appender> = { store: new SqlEventStore(sql, { notify: false }) };
  if (baselineDir) {
    const from = (p: string) => pathToFileURL(resolve(baselineDir, p)).href;
    const old = await import(from('src/engines/sql/pg-sql-client.ts'));
    const oldStore = await import(from('src/events/sql-event-store.ts'));
    const oldSql = await old.PgSqlClient.open({ url: dbUrl.toString(), max: 1 });
    closing.push(oldSql);
    stores.baseline = new oldStore.SqlEventStore(oldSql, { notify: false });
  }
  await plain.query(PLAIN_TABLE);
  let seq = 0;
  const data = () => ratingData(seq);
  const variants: Record<string, () => Promise<unknown>> = {
    ...Object.fromEntries(
      Object.entries(stores).map(([name, s]) => [
        name,
        () => s.append(`${name}-${seq++ % 1000}`, [{ type: 'Rated', data: data() }]),
      ]),
    ),
    insert: () => plainInsert(plain, `one-${seq++ % 1000}`, data()),
  };
  for (const op of Object.values(variants)) for (let i = 0; i < 500; i++) await op();
  const names = Object.keys(variants);
  const rate: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  const cpu: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  for (let r = 0; r < rounds; r++) {
    for (const name of names.map((_, i) => names[(i + r) % names.length]!)) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      for (let i = 0; i < ops; i++) await variants[name]!();
      const wall = performance.now() - t0;
      const c = process.cpuUsage(c0);
      rate[name]!.push((ops * 1000) / wall);
      cpu[name]!.push((c.user + c.system) / ops);
    }
  }
  const median = (v: number[]) => [...v].sort((a, b) => a - b)[v.length >> 1]!;
  const per = (a: number[], b: number[]) => median(a.map((x, i) => x / b[i]!)).toFixed(3);
  console.log(
    `synchronous_commit ${process.env.AB_ASYNC === '1' ? 'off' : 'on'}; ${rounds} rounds of ${ops}`,
  );
  for (const name of names) {
    console.log(
      `${name.padEnd(8)} ${median(rate[name]!).toFixed(0).padStart(6)}/s` +
        `  client CPU ${median(cpu[name]!).toFixed(1).padStart(6)} us/op` +
        `  vs INSERT ${per(rate[name]!, rate.insert!)}x` +
        (stores.baseline ? `  vs baseline ${per(rate[name]!, rate.baseline!)}x` : ''),
    );
  }
  for (const s of Object.values(stores)) await s.close();
} finally {
  for (const c of closing) await c.close();
  await plain.end();
  await db.drop();
}
