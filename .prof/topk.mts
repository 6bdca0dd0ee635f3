import { PgSqlClient } from '../src/engines/sql/pg-sql-client.js';
import { installShardMap, ShardRouter } from '../src/sharding/index.js';
import { createTempDatabase } from '../src/testing/temp-database.js';
const urls = ['postgres://postgres@127.0.0.1:5441/postgres', 'postgres://postgres@127.0.0.1:5442/postgres'];
const rows = 100_000;
const dbs: any[] = []; const cl: any[] = [];
const open = async (tag: string, s: number) => { const d = await createTempDatabase(urls[s % 2]!, { name: `cdp_shardplat_prof_${tag}` }); dbs.push(d); const c = await PgSqlClient.open({ url: d.url, max: 12 }); cl.push(c); return c; };
try {
const catalog = await open('cat', 0);
const shards: Record<string, any> = {};
for (let i = 0; i < 4; i++) shards[`s${i}`] = await open(`s${i}`, i);
const one = await open('one', 1);
for (const c of [...Object.values(shards), one]) await c.exec('CREATE TABLE people (id bigint PRIMARY KEY, email text NOT NULL, score integer NOT NULL); CREATE INDEX people_score ON people (score)');
await installShardMap(catalog, shards, { name: 'people', strategy: 'hash', keyType: 'bigint', shards: Object.keys(shards).map((id) => ({ id, location: id })), tables: [{ name: 'people', keyColumn: 'id' }] });
const gen = `SELECT g AS id, 'u' || g || '@example.org' AS email, ((g::bigint * 7919) % 100003)::int AS score FROM generate_series(1, ${rows}) g`;
for (const c of Object.values(shards)) await c.exec(`INSERT INTO people SELECT * FROM (${gen}) x WHERE ('slot:' || cdp_shard_slot(x.id::text, 4096)) IN (SELECT unit FROM cdp_shard_owned); ANALYZE people;`);
await one.exec(`INSERT INTO people ${gen}; ANALYZE people;`);
const router = await ShardRouter.open({ catalog, map: 'people', shards, refreshMs: 1000 });
const topSql = 'SELECT id, score FROM people';
const q = (k: number) => `SELECT * FROM (${topSql}) AS cdp_q ORDER BY cdp_q.score DESC, cdp_q.id ASC LIMIT ${k}`;
const variants: Record<string, () => Promise<unknown>> = {
  single: () => one.query(`${topSql} ORDER BY score DESC, id LIMIT 100`),
  fanout: () => router.fanOut(topSql, [], { orderBy: [{ column: 'score', direction: 'desc' }, { column: 'id' }], limit: 100 }),
  par100: () => Promise.all(Object.values(shards).map((c: any) => c.query(q(100)))),
  par40: () => Promise.all(Object.values(shards).map((c: any) => c.query(q(40)))),
  seq100: async () => { for (const c of Object.values(shards)) await (c as any).query(q(100)); },
  sel1: () => one.query('SELECT 1'),
  par_sel1: () => Promise.all(Object.values(shards).map((c: any) => c.query('SELECT 1'))),
  two_sel1_same_server: () => Promise.all([shards.s0, shards.s2].map((c: any) => c.query('SELECT 1'))),
};
const res: Record<string, number[]> = {};
for (let r = 0; r < 7; r++) for (const [k, f] of Object.entries(variants)) { for (let i = 0; i < 10; i++) await f(); const t = performance.now(); for (let i = 0; i < 60; i++) await f(); (res[k] ??= []).push((performance.now() - t) / 60); }
const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
for (const [k, a] of Object.entries(res)) console.log(k.padEnd(22), med(a).toFixed(3), 'ms  min', Math.min(...a).toFixed(3));
const f = med(res.fanout!), s = med(res.single!);
const ex = await shards.s0.query(`EXPLAIN ANALYZE SELECT * FROM (${topSql}) AS cdp_q ORDER BY cdp_q.score DESC, cdp_q.id ASC LIMIT 100`);
console.log(ex.rows.map((r: any) => r['QUERY PLAN']).join('\n'));
console.log('ratio', (f / s).toFixed(2));
await router.close();
} finally { for (const c of cl) await c.close(); for (const d of dbs) await d.drop(); }
