import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SqlClient } from '../../src/engines/sql/sql-client.js';
import {
  addShard,
  countRowsByUnit,
  findHotUnits,
  installShardMap,
  parseShardUrl,
  planRebalance,
  ShardMover,
  ShardRouter,
  ShardUnavailableError,
} from '../../src/sharding/index.js';
import { pgliteBed, type ShardBed } from './backends.js';

describe('rebalancing on PGlite shards: add a shard, plan, move, hot spots', () => {
  let b: ShardBed;
  let router: ShardRouter;
  const ROWS = 400;

  beforeAll(async () => {
    b = await pgliteBed(3);
    for (const c of Object.values(b.shards))
      await c.exec('CREATE TABLE kv (k bigint PRIMARY KEY, v integer NOT NULL)');
    const { s2: _spare, ...two } = b.shards;
    await installShardMap(b.catalog, two, {
      name: 'kv',
      strategy: 'hash',
      keyType: 'bigint',
      slotCount: 12,
      shards: [
        { id: 's0', location: b.locations.s0! },
        { id: 's1', location: b.locations.s1! },
      ],
      tables: [{ name: 'kv', keyColumn: 'k' }],
    });
    router = await ShardRouter.open({
      catalog: b.catalog,
      map: 'kv',
      shards: b.shards,
      refreshMs: 20,
    });
    for (let k = 0; k < ROWS; k++)
      await router.query(k, 'INSERT INTO kv (k, v) VALUES ($1, $2)', [k, k]);
  });
  afterAll(async () => {
    await router?.close();
    await b?.close();
  });

  it('refuses a shard URL that does not parse, or a shard that does not answer, naming it; nothing changes', async () => {
    expect(() => parseShardUrl('not a url')).toThrow(/"not a url" does not parse/);
    expect(() => parseShardUrl('http://x/y')).toThrow(/not a postgres:\/\/ URL/);
    const dead: SqlClient = Object.create(b.shards.s2!, {
      ping: { value: () => Promise.reject(new Error('connection refused')) },
    });
    const before = await router.catalog.version('kv');
    await expect(
      addShard(b.catalog, 'kv', { id: 's9', location: 'postgres://10.255.255.1/x' }, dead),
    ).rejects.toThrow(/shard "s9" \(postgres:\/\/10\.255\.255\.1\/x\) does not answer/);
    await expect(
      addShard(b.catalog, 'kv', { id: 's9', location: 'x' }, dead),
    ).rejects.toBeInstanceOf(ShardUnavailableError);
    expect(await router.catalog.version('kv')).toBe(before);
  });

  it('adds a shard, plans the moves with their row counts before anything moves, then runs them', async () => {
    await addShard(b.catalog, 'kv', { id: 's2', location: b.locations.s2! }, b.shards.s2!);
    const state = await router.catalog.load('kv');
    const rows = await countRowsByUnit(b.catalog, 'kv', b.shards);
    const plan = planRebalance(state, rows);
    expect(plan.moves.length).toBe(4);
    expect(plan.unitsAfter).toEqual({ s0: 4, s1: 4, s2: 4 });
    expect(plan.rowsTotal).toBe(ROWS);
    expect(plan.rowsMoved).toBe(plan.moves.reduce((s, m) => s + (rows.get(m.unit) ?? 0), 0));
    // Planning moved nothing.
    expect((await b.shards.s2!.query('SELECT 1 FROM kv')).rows.length).toBe(0);
    const mover = new ShardMover({
      catalog: b.catalog,
      map: 'kv',
      shards: b.shards,
      rowsPerSecond: 100_000,
    });
    for (const m of plan.moves) expect((await mover.move(m.unit, m.target)).phase).toBe('done');
    const onNew = Number(
      (await b.shards.s2!.query<{ n: number }>('SELECT count(*)::int AS n FROM kv')).rows[0]!.n,
    );
    expect(onNew).toBe(plan.rowsMoved);
    for (let k = 0; k < ROWS; k += 7) {
      const [row] = await router.query<{ v: number }>(k, 'SELECT v FROM kv WHERE k = $1', [k]);
      expect(row!.v).toBe(k);
    }
  });

  it('rolls back a planned move: the source keeps the unit', async () => {
    const mover = new ShardMover({ catalog: b.catalog, map: 'kv', shards: b.shards });
    const unit = router.route(1).unit;
    const from = router.route(1).shard;
    const planned = await mover.plan(unit, from === 's0' ? 's1' : 's0');
    const back = await mover.rollback(planned.id);
    expect(back.phase).toBe('rolled-back');
    expect(await mover.running()).toBeUndefined();
    const owned = await b.shards[from]!.query(
      'SELECT 1 FROM cdp_shard_owned WHERE map = $1 AND unit = $2',
      ['kv', unit],
    );
    expect(owned.rows.length).toBe(1);
  });

  it('finds a hot slot from per-slot counters and suggests what to do', async () => {
    for (let i = 0; i < 300; i++) await router.query(5, 'UPDATE kv SET v = v WHERE k = 5');
    const hot = findHotUnits(router.unitCounts(), 3);
    expect(hot[0]!.unit).toBe(router.route(5).unit);
    expect(hot[0]!.suggestion).toMatch(/move slot:\d+ to the least busy shard/);
  });
});
