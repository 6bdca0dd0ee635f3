/**
 * Benchmark `sharding`: rows moved when a shard joins (hash slots against `hash % n` and jump
 * consistent hash), the longest write stall at a cut-over, index-table lookup against a fan-out
 * scan, ordered top-100 fan-out against one table holding every row, and routing decisions per
 * second against jump consistent hash, and foreground p99 during a throttled move. Shards are PostgreSQL databases on the servers in
 * CDP_SHARD_TEST_URLS when set (at least two servers), otherwise embedded PGlite instances.
 */
import { PgliteSqlClient } from '../../engines/sql/pglite-sql-client.js';
import type { SqlClient } from '../../engines/sql/sql-client.js';
import {
  IndexTables,
  installShardMap,
  jumpConsistentHash,
  keyHash32,
  planRebalance,
  type ShardMapState,
  ShardMover,
  ShardRouter,
  slotOf,
} from '../../sharding/index.js';
import { createTempDatabase, type TempDatabase } from '../../testing/temp-database.js';
import {
  type BenchContext,
  type BenchResult,
  type BenchSuite,
  interleave,
  opsPerSecond,
  percentile,
  result,
} from '../harness.js';

interface Bed {
  kind: 'postgres' | 'pglite';
  open(tag: string, server: number): Promise<SqlClient>;
  close(): Promise<void>;
}

async function bed(ctx: BenchContext): Promise<Bed> {
  const urls = (ctx.env.CDP_SHARD_TEST_URLS ?? '').split(',').filter((u) => u.length > 0);
  const clients: SqlClient[] = [];
  const dbs: TempDatabase[] = [];
  if (urls.length >= 2) {
    const { PgSqlClient } = await import('../../engines/sql/pg-sql-client.js');
    return {
      kind: 'postgres',
      async open(tag, server) {
        const db = await createTempDatabase(urls[server % urls.length]!, {
          name: `cdp_bench_sh_${tag}_${process.pid}`,
        });
        dbs.push(db);
        const c = await PgSqlClient.open({ url: db.url, max: 12 });
        clients.push(c);
        return c;
      },
      async close() {
        for (const c of clients) await c.close();
        for (const d of dbs) await d.drop();
      },
    };
  }
  return {
    kind: 'pglite',
    async open() {
      const c = await PgliteSqlClient.open({});
      clients.push(c);
      return c;
    },
    async close() {
      for (const c of clients) await c.close();
    },
  };
}

function movedVsOptimal(rows: number): BenchResult[] {
  const slotCount = 4096;
  const perSlot = new Map<string, number>();
  let hashModMoved = 0;
  let jumpMoved = 0;
  for (let k = 0; k < rows; k++) {
    const text = String(k);
    const slot = slotOf(text, slotCount);
    perSlot.set(`slot:${slot}`, (perSlot.get(`slot:${slot}`) ?? 0) + 1);
    const h = keyHash32(text);
    if (h % 4 !== h % 5) hashModMoved++;
    if (jumpConsistentHash(BigInt(h), 4) !== jumpConsistentHash(BigInt(h), 5)) jumpMoved++;
  }
  const ids = ['s0', 's1', 's2', 's3'];
  const state: ShardMapState = {
    name: 'bench',
    strategy: 'hash',
    keyType: 'bigint',
    slotCount,
    version: 1,
    shards: [...ids, 's4'].map((id) => ({ id, location: id })),
    slots: Array.from({ length: slotCount }, (_, s) => ids[Math.floor((s * 4) / slotCount)]!),
    ranges: [],
    directory: new Map(),
  };
  const plan = planRebalance(state, perSlot);
  const optimal = rows / 5;
  const ours = Math.round((plan.rowsMoved / optimal) * 1000) / 1000;
  const params = {
    rows,
    slots: slotCount,
    from: 4,
    to: 5,
    movesPlanned: plan.moves.length,
    jumpMovedVsOptimal: Math.round((jumpMoved / optimal) * 1000) / 1000,
  };
  return [
    result({
      id: 'rebalance.moved-vs-optimal',
      metric: 'rows moved / optimum (1/5), adding a 5th shard to 4',
      unit: 'x',
      ours,
      peer: { name: 'hash % n', value: Math.round((hashModMoved / optimal) * 1000) / 1000 },
      higherIsBetter: false,
      params,
    }),
  ];
}

function routeOps(ctx: BenchContext): BenchResult {
  const ms = ctx.quick ? 300 : 1500;
  const state: ShardMapState = {
    name: 'bench',
    strategy: 'hash',
    keyType: 'bigint',
    slotCount: 4096,
    version: 1,
    shards: ['a', 'b', 'c', 'd'].map((id) => ({ id, location: id })),
    slots: Array.from({ length: 4096 }, (_, s) => 'abcd'[s % 4]!),
    ranges: [],
    directory: new Map(),
  };
  const count = (fn: (k: number) => unknown) => {
    let n = 0;
    const end = performance.now() + ms;
    while (performance.now() < end) {
      for (let i = 0; i < 1000; i++) fn(n++);
    }
    return n / (ms / 1000);
  };
  // Same input for both: the key's 32-bit hash, which jump consistent hash also needs for a text key.
  const ours = count((k) => state.slots[keyHash32(String(k)) % 4096]);
  const jump = count((k) => jumpConsistentHash(BigInt(keyHash32(String(k))), 4));
  return result({
    id: 'route.ops',
    metric: 'routing decisions per second (hash the key, pick the shard)',
    unit: 'ops/s',
    ours: Math.round(ours),
    peer: { name: 'jump consistent hash', value: Math.round(jump) },
    higherIsBetter: true,
    params: { ms, keys: 'integers as text' },
  });
}

async function writePause(ctx: BenchContext, b: Bed): Promise<BenchResult> {
  const catalog = await b.open('wp_cat', 0);
  const shards = { s0: await b.open('wp_s0', 0), s1: await b.open('wp_s1', 1) };
  for (const c of Object.values(shards))
    await c.exec('CREATE TABLE kv (k bigint PRIMARY KEY, v bigint NOT NULL)');
  await installShardMap(catalog, shards, {
    name: 'kv',
    strategy: 'hash',
    keyType: 'bigint',
    shards: [
      { id: 's0', location: 's0' },
      { id: 's1', location: 's1' },
    ],
    tables: [{ name: 'kv', keyColumn: 'k' }],
  });
  const rows = ctx.quick ? 20_000 : 100_000;
  for (const c of Object.values(shards)) {
    await c.query(
      `INSERT INTO kv SELECT g, 0 FROM generate_series(1, $1::int) g
       WHERE ('slot:' || cdp_shard_slot(g::text, 4096)) IN (SELECT unit FROM cdp_shard_owned)`,
      [rows],
    );
  }
  const router = await ShardRouter.open({ catalog, map: 'kv', shards, refreshMs: 50 });
  const mover = new ShardMover({ catalog, map: 'kv', shards });
  const moves = ctx.quick ? 5 : 15;
  const stalls: number[] = [];
  const fences: number[] = [];
  for (let i = 0; i < moves; i++) {
    const slot = (i * 97) % 4096;
    const keys: number[] = [];
    for (let k = 1; k <= rows && keys.length < 8; k++)
      if (slotOf(String(k), 4096) === slot) keys.push(k);
    let stop = false;
    let worst = 0;
    const writers = keys.map(async (k) => {
      while (!stop) {
        const t0 = performance.now();
        await router.query(k, 'UPDATE kv SET v = v + 1 WHERE k = $1', [k]);
        worst = Math.max(worst, performance.now() - t0);
      }
    });
    const state = router.map.state;
    const from = state.slots[slot]!;
    const done = await mover.move(`slot:${slot}`, from === 's0' ? 's1' : 's0');
    stop = true;
    await Promise.all(writers);
    stalls.push(worst);
    if (done.fenceMs !== null) fences.push(done.fenceMs);
    ctx.progress(
      `write pause: move ${i + 1}/${moves}, worst write ${worst.toFixed(1)} ms, fence ${done.fenceMs} ms`,
    );
  }
  await router.close();
  return result({
    id: 'rebalance.write-pause.p99',
    metric: 'longest write stall per cut-over, p99 over moves',
    unit: 'ms',
    ours: Math.round(percentile(stalls, 99) * 10) / 10,
    higherIsBetter: false,
    params: { engine: b.kind, rows, moves, writersPerMove: 8, fenceMsP99: percentile(fences, 99) },
  });
}

/**
 * The `people` table (id, email, score) on the given shards and on `one` (indexed by score
 * there), the shards under a hash map named 'people' in `catalog`; returns a router over them.
 * The shards get their score index when their rows are loaded.
 */
export async function peopleOnShards(
  catalog: SqlClient,
  shards: Record<string, SqlClient>,
  one: SqlClient,
): Promise<ShardRouter> {
  const ddl =
    'CREATE TABLE people (id bigint PRIMARY KEY, email text NOT NULL, score integer NOT NULL)';
  for (const c of [...Object.values(shards), one]) await c.exec(ddl);
  await one.exec('CREATE INDEX people_score ON people (score)');
  await installShardMap(catalog, shards, {
    name: 'people',
    strategy: 'hash',
    keyType: 'bigint',
    shards: Object.keys(shards).map((id) => ({ id, location: id })),
    tables: [{ name: 'people', keyColumn: 'id' }],
  });
  return ShardRouter.open({ catalog, map: 'people', shards, refreshMs: 1000 });
}

/** A SELECT of `rows` people: ids 1..rows, a unique email each, scores spread by a multiplier. */
export function peopleRows(rows: number): string {
  return `SELECT g AS id, 'u' || g || '@example.org' AS email, ((g::bigint * 7919) % 100003)::int AS score FROM generate_series(1, ${rows}) g`;
}

async function lookupAndTopK(ctx: BenchContext, b: Bed): Promise<BenchResult[]> {
  const rows = ctx.quick ? 100_000 : 1_000_000;
  const catalog = await b.open('ix_cat', 0);
  const shards: Record<string, SqlClient> = {};
  for (let i = 0; i < 4; i++) shards[`s${i}`] = await b.open(`ix_s${i}`, i);
  const one = await b.open('ix_one', 1);
  const router = await peopleOnShards(catalog, shards, one);
  const ix = new IndexTables(router, [
    {
      name: 'people_by_email',
      baseTable: 'people',
      baseKey: 'id',
      column: 'email',
      mode: 'denormalized',
      unique: true,
    },
  ]);
  await ix.install();
  ctx.progress(`index lookup: loading ${rows} rows on 4 shards (${b.kind})`);
  const gen = peopleRows(rows);
  for (const c of Object.values(shards)) {
    await c.exec(`CREATE INDEX people_score ON people (score)`);
    await c.exec(
      `INSERT INTO people SELECT * FROM (${gen}) x WHERE ('slot:' || cdp_shard_slot(x.id::text, 4096)) IN (SELECT unit FROM cdp_shard_owned);
       INSERT INTO people_by_email (value, key, data)
         SELECT x.email, x.id::text, to_jsonb(x) FROM (${gen}) x
         WHERE ('slot:' || cdp_shard_slot(x.email, 4096)) IN (SELECT unit FROM cdp_shard_owned);
       ANALYZE people; ANALYZE people_by_email;`,
    );
  }
  await one.exec(`INSERT INTO people ${gen}; ANALYZE people;`);
  const ms = ctx.quick ? 1500 : 4000;
  let i = 0;
  const pick = () => `u${1 + ((i++ * 104729) % rows)}@example.org`;
  const m = await interleave(
    {
      index: () => opsPerSecond(() => ix.lookup('people_by_email', pick()), ms),
      fanout: () =>
        opsPerSecond(() => router.fanOut('SELECT * FROM people WHERE email = $1', [pick()]), ms),
    },
    ctx.quick ? 1 : 3,
    0,
  );
  const topSql = 'SELECT id, score FROM people';
  const t = await interleave(
    {
      fanout: () =>
        opsPerSecond(
          () =>
            router.fanOut(topSql, [], {
              orderBy: [{ column: 'score', direction: 'desc' }, { column: 'id' }],
              limit: 100,
            }),
          ms,
        ),
      single: () =>
        opsPerSecond(() => one.query(`${topSql} ORDER BY score DESC, id LIMIT 100`), ms),
      // Every shard asked for all 100 rows at once (the fan-out before the adaptive limit).
      full: () =>
        opsPerSecond(
          () =>
            router.fanOut(topSql, [], {
              orderBy: [{ column: 'score', direction: 'desc' }, { column: 'id' }],
              limit: 100,
              perShardLimit: 'full',
            }),
          ms,
        ),
    },
    ctx.quick ? 1 : 3,
    0,
  );
  await router.close();
  return [
    result({
      id: 'index.lookup-vs-fanout',
      metric: 'lookups by a secondary attribute per second: index table vs fan-out scan',
      unit: 'ops/s',
      ours: Math.round(m.index),
      peer: { name: 'fan-out scan of 4 shards', value: Math.round(m.fanout) },
      higherIsBetter: true,
      params: { engine: b.kind, rows, shards: 4, ms },
    }),
    result({
      id: 'fanout.topk.overhead',
      metric: 'top-100 ordered query: 4-shard fan-out (k-way merge) vs one table with every row',
      unit: 'ms/query',
      ours: Math.round((1000 / t.fanout) * 1000) / 1000,
      peer: {
        name: 'one table holding every row',
        value: Math.round((1000 / t.single) * 1000) / 1000,
      },
      higherIsBetter: false,
      params: {
        engine: b.kind,
        rows,
        shards: 4,
        ms,
        perShardLimit: 'adaptive',
        fullMsPerQuery: Math.round((1000 / t.full) * 1000) / 1000,
      },
    }),
  ];
}

/**
 * Foreground p99 while a throttled move copies a big slot: writers update rows of the source
 * shard outside the moving slot; their p99 during the move against the same writers with no move.
 * 16 slots so that one slot holds enough rows for the move to last.
 */
async function throttledMove(ctx: BenchContext, b: Bed): Promise<BenchResult> {
  const catalog = await b.open('th_cat', 0);
  const shards = { s0: await b.open('th_s0', 0), s1: await b.open('th_s1', 1) };
  for (const c of Object.values(shards))
    await c.exec('CREATE TABLE kv (k bigint PRIMARY KEY, v bigint NOT NULL, pad text NOT NULL)');
  const slotCount = 16;
  await installShardMap(catalog, shards, {
    name: 'kvt',
    strategy: 'hash',
    keyType: 'bigint',
    slotCount,
    shards: [
      { id: 's0', location: 's0' },
      { id: 's1', location: 's1' },
    ],
    tables: [{ name: 'kv', keyColumn: 'k' }],
  });
  const rows = ctx.quick ? 40_000 : 160_000;
  for (const c of Object.values(shards)) {
    await c.query(
      `INSERT INTO kv SELECT g, 0, repeat('x', 200) FROM generate_series(1, $1::int) g
       WHERE ('slot:' || cdp_shard_slot(g::text, ${slotCount})) IN (SELECT unit FROM cdp_shard_owned)`,
      [rows],
    );
    await c.exec('ANALYZE kv');
  }
  const router = await ShardRouter.open({ catalog, map: 'kvt', shards, refreshMs: 100 });
  const rowsPerSecond = ctx.quick ? 4_000 : 8_000;
  // Slots 0-7 start on s0: slot 0 moves; the writers update keys of slots 1-7.
  const keys: number[] = [];
  for (let k = 1; k <= rows && keys.length < 2000; k++) {
    const slot = slotOf(String(k), slotCount);
    if (slot >= 1 && slot < slotCount / 2) keys.push(k);
  }
  const foreground = async (during: () => Promise<unknown>) => {
    let stop = false;
    const lat: number[] = [];
    let i = 0;
    const writers = Array.from({ length: 4 }, async () => {
      while (!stop) {
        const k = keys[(i++ * 7919) % keys.length]!;
        const t0 = performance.now();
        await router.query(k, 'UPDATE kv SET v = v + 1 WHERE k = $1', [k]);
        lat.push(performance.now() - t0);
      }
    });
    try {
      await during();
    } finally {
      stop = true;
      await Promise.all(writers);
    }
    return lat;
  };
  const seconds = ctx.quick ? 2 : 5;
  const base = await foreground(() => new Promise((r) => setTimeout(r, seconds * 1000)));
  const move = async (slot: number, throttle: number) => {
    const mover = new ShardMover({
      catalog,
      map: 'kvt',
      shards,
      rowsPerSecond: throttle,
      batchKeys: 200,
    });
    const t0 = performance.now();
    const m = await mover.move(`slot:${slot}`, 's1');
    return { ms: performance.now() - t0, rows: m.rowsCopied, fenceMs: m.fenceMs };
  };
  let throttled = { ms: 0, rows: 0, fenceMs: null as number | null };
  const during = await foreground(async () => {
    throttled = await move(0, rowsPerSecond);
  });
  ctx.progress(
    `throttled move: ${throttled.rows} rows in ${Math.round(throttled.ms)} ms, foreground p99 ${percentile(during, 99).toFixed(1)} ms (no move ${percentile(base, 99).toFixed(1)} ms)`,
  );
  let unthrottled = { ms: 0, rows: 0, fenceMs: null as number | null };
  const free = await foreground(async () => {
    unthrottled = await move(slotCount / 2 - 1, 0);
  });
  await router.close();
  const r1 = (x: number) => Math.round(x * 10) / 10;
  return result({
    id: 'rebalance.throttle.p99',
    metric: 'foreground write p99 while a throttled move copies a slot, vs no move',
    unit: 'ms',
    ours: r1(percentile(during, 99)),
    peer: { name: 'the same writers, no move', value: r1(percentile(base, 99)) },
    higherIsBetter: false,
    params: {
      engine: b.kind,
      rows,
      slotRows: throttled.rows,
      rowsPerSecond,
      moveMs: Math.round(throttled.ms),
      fenceMs: throttled.fenceMs,
      writers: 4,
      unthrottledP99: r1(percentile(free, 99)),
      unthrottledMoveMs: Math.round(unthrottled.ms),
      baseP50: r1(percentile(base, 50)),
      throttledP50: r1(percentile(during, 50)),
    },
  });
}

const suite: BenchSuite = {
  name: 'sharding',
  description:
    'hash slots vs hash % n and jump hash, cut-over write stall, index table vs fan-out, top-k fan-out, routing',
  async run(ctx) {
    const out: BenchResult[] = [];
    ctx.progress('moved vs optimal');
    out.push(...movedVsOptimal(ctx.quick ? 200_000 : 1_000_000));
    out.push(routeOps(ctx));
    const b = await bed(ctx);
    try {
      out.push(await writePause(ctx, b));
      out.push(await throttledMove(ctx, b));
      out.push(...(await lookupAndTopK(ctx, b)));
    } finally {
      await b.close();
    }
    return out;
  },
};

export default suite;
