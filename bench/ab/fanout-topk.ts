/**
 * Where a top-k fan-out's time goes, against its parts: the same ORDER BY ... LIMIT on one table
 * holding every row, the four per-shard queries sent directly in parallel (plain and as named
 * prepared statements), four `SELECT 1` in parallel (the floor of any four-shard round), one
 * shard's query alone, and `ShardRouter.fanOut`. Four shard databases on the two servers of
 * CDP_SHARD_TEST_URLS, 100,000 rows (AB_ROWS), p50 and mean of 1,500 calls each (AB_CALLS), two
 * rounds; the databases are dropped at the end.
 *
 *   CDP_SHARD_TEST_URLS=$(tooling/pg-shard-clusters.sh) npx tsx bench/ab/fanout-topk.ts
 */

import { peopleOnShards, peopleRows } from '../../src/bench/suites/sharding.js';
import { PgSqlClient } from '../../src/engines/sql/pg-sql-client.js';
import { createTempDatabase, type TempDatabase } from '../../src/testing/temp-database.js';

const urls = (process.env.CDP_SHARD_TEST_URLS ?? '').split(',').filter((u) => u.length > 0);
if (urls.length < 2)
  throw new Error(
    'set CDP_SHARD_TEST_URLS to two PostgreSQL servers (tooling/pg-shard-clusters.sh)',
  );
const dbs: TempDatabase[] = [];
const open = async (tag: string, i: number) => {
  const db = await createTempDatabase(urls[i % 2]!, { name: `probe_${tag}_${process.pid}` });
  dbs.push(db);
  return PgSqlClient.open({ url: db.url, max: 12 });
};
const catalog = await open('cat', 0);
const shards: Record<string, PgSqlClient> = {};
for (let i = 0; i < 4; i++) shards[`s${i}`] = await open(`s${i}`, i);
const one = await open('one', 1);
const router = await peopleOnShards(catalog, shards, one);
const gen = peopleRows(Number(process.env.AB_ROWS ?? 100_000));
for (const c of Object.values(shards))
  await c.exec(
    `CREATE INDEX people_score ON people (score);
     INSERT INTO people SELECT * FROM (${gen}) x WHERE ('slot:' || cdp_shard_slot(x.id::text, 4096)) IN (SELECT unit FROM cdp_shard_owned);
     ANALYZE people;`,
  );
await one.exec(`INSERT INTO people ${gen}; ANALYZE people;`);
const per =
  'SELECT * FROM (SELECT id, score FROM people) AS cdp_q ORDER BY cdp_q.score DESC, cdp_q.id ASC LIMIT 46';
const time = async (label: string, fn: () => Promise<unknown>) => {
  for (let i = 0; i < 200; i++) await fn();
  const xs: number[] = [];
  for (let i = 0; i < Number(process.env.AB_CALLS ?? 1500); i++) {
    const s = performance.now();
    await fn();
    xs.push(performance.now() - s);
  }
  xs.sort((a, b) => a - b);
  console.log(
    label.padEnd(30),
    'p50',
    xs[xs.length >> 1]!.toFixed(3),
    'mean',
    (xs.reduce((a, b) => a + b) / xs.length).toFixed(3),
  );
};
try {
  for (let r = 0; r < 2; r++) {
    await time('single', () =>
      one.query('SELECT id, score FROM people ORDER BY score DESC, id LIMIT 100'),
    );
    await time('4x direct query', () =>
      Promise.all(Object.values(shards).map((c) => c.query(per))),
    );
    await time('4x SELECT 1', () =>
      Promise.all(Object.values(shards).map((c) => c.query('SELECT 1'))),
    );
    await time('1x shard query', () => shards.s0!.query(per));
    await time('4x prepared rows', () =>
      Promise.all(
        Object.values(shards).map((c) => c.preparedRows({ name: 'p_topk', text: per }, [])),
      ),
    );
    await time('fanOut', () =>
      router.fanOut('SELECT id, score FROM people', [], {
        orderBy: [{ column: 'score', direction: 'desc' }, { column: 'id' }],
        limit: 100,
      }),
    );
  }
} finally {
  await router.close();
  for (const c of [catalog, one, ...Object.values(shards)]) await c.close();
  for (const d of dbs) await d.drop();
}
