import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SqlClient } from '../../src/engines/sql/sql-client.js';
import {
  assignKey,
  createShardMap,
  FanOutDeadlineError,
  installShardMap,
  MoveInProgressError,
  ShardKeyRequiredError,
  ShardKeyTypeError,
  ShardMover,
  ShardRouter,
  type ShardStrategy,
  splitRange,
} from '../../src/sharding/index.js';
import { eventually } from '../../src/testing/index.js';
import type { BedFactory, ShardBed } from './backends.js';

const ROWS = 240;

function keyOf(strategy: ShardStrategy, i: number): string | number {
  return strategy === 'hash' ? i : strategy === 'range' ? i : `tenant${i % 12}-${i}`;
}

/**
 * One contract for every strategy on one backend: routing to exactly one shard, single-shard
 * transactions, refusals, fan-out merges equal to one table holding every row, aggregates,
 * a move under writers that every router notices without restart.
 */
export function describeShardContract(backend: string, bed: BedFactory): void {
  for (const strategy of ['hash', 'range', 'lookup'] as const) {
    describe(`${backend}: ${strategy} map`, () => {
      let b: ShardBed;
      let router: ShardRouter;
      const name = `items_${strategy}`;
      const keyType = strategy === 'lookup' ? 'text' : 'bigint';
      const all = new Map<string, { id: string; grp: string; val: number }>();

      beforeAll(async () => {
        b = await bed(2);
        for (const c of Object.values(b.shards)) {
          await c.exec(
            `CREATE TABLE items (id ${keyType === 'text' ? 'text' : 'bigint'} PRIMARY KEY, sk ${keyType === 'text' ? 'text' : 'bigint'} NOT NULL, grp text NOT NULL, val integer NOT NULL)`,
          );
        }
        await installShardMap(b.catalog, b.shards, {
          name,
          strategy,
          keyType,
          slotCount: 64,
          shards: Object.keys(b.shards).map((id) => ({ id, location: b.locations[id]! })),
          ranges:
            strategy === 'range'
              ? [
                  { lo: null, shard: 's0' },
                  { lo: '120', shard: 's1' },
                ]
              : undefined,
          tables: [{ name: 'items', keyColumn: 'sk' }],
        });
        if (strategy === 'lookup') {
          for (let t = 0; t < 12; t++)
            await assignKey(b.catalog, name, b.shards, `tenant${t}`, t % 2 === 0 ? 's0' : 's1');
        }
        router = await ShardRouter.open({
          catalog: b.catalog,
          map: name,
          shards: b.shards,
          refreshMs: 20,
        });
      });
      afterAll(async () => {
        await router?.close();
        await b?.close();
      });

      // Lookup maps route by tenant: the row key carries the tenant, the shard key is the tenant.
      const shardKey = (id: string | number) =>
        strategy === 'lookup' ? String(id).split('-')[0]! : id;

      it('writes each row on exactly the shard its key routes to', async () => {
        for (let i = 0; i < ROWS; i++) {
          const id = keyOf(strategy, i);
          const row = { id: String(id), grp: `g${i % 5}`, val: (i * 37) % 101 };
          await router.query(
            shardKey(id),
            'INSERT INTO items (id, sk, grp, val) VALUES ($1, $2, $3, $4)',
            [id, shardKey(id), row.grp, row.val],
          );
          all.set(row.id, row);
        }
        let total = 0;
        for (const [shard, client] of Object.entries(b.shards)) {
          const rows = await client.query<{ id: string }>('SELECT id::text AS id FROM items');
          total += rows.rows.length;
          for (const r of rows.rows)
            expect(router.route(shardKey(strategy === 'lookup' ? r.id : Number(r.id))).shard).toBe(
              shard,
            );
        }
        expect(total).toBe(ROWS);
        const counts = Object.values(b.shards).length;
        expect(counts).toBe(2);
      });

      it('runs a transaction on one shard and rolls it back whole', async () => {
        const id = keyOf(strategy, 3);
        await expect(
          router.transaction(shardKey(id), async (tx) => {
            await tx.query('UPDATE items SET val = -1 WHERE id = $1', [id]);
            throw new Error('abandon');
          }),
        ).rejects.toThrow('abandon');
        const [row] = await router.query<{ val: number }>(
          shardKey(id),
          'SELECT val FROM items WHERE id = $1',
          [id],
        );
        expect(row!.val).toBe(all.get(String(id))!.val);
        await router.transaction(shardKey(id), async (tx, route) => {
          expect(route.shard).toBe(router.route(shardKey(id)).shard);
          await tx.query('UPDATE items SET val = val + 1 WHERE id = $1', [id]);
          await tx.query('UPDATE items SET val = val + 1 WHERE id = $1', [id]);
        });
        all.get(String(id))!.val += 2;
        const [after] = await router.query<{ val: number }>(
          shardKey(id),
          'SELECT val FROM items WHERE id = $1',
          [id],
        );
        expect(after!.val).toBe(all.get(String(id))!.val);
      });

      it('refuses a statement without a shard key, and a key of the wrong type', async () => {
        await expect(router.query(undefined, 'SELECT 1')).rejects.toBeInstanceOf(
          ShardKeyRequiredError,
        );
        await expect(router.query(null, 'SELECT 1')).rejects.toThrow(/fanOut/);
        const wrong = keyType === 'text' ? 42 : 'not-a-number';
        await expect(router.query(wrong, 'SELECT 1')).rejects.toBeInstanceOf(ShardKeyTypeError);
      });

      it('merges an ordered fan-out with limit and offset exactly as one table would answer', async () => {
        const idOrder = (x: string, y: string) =>
          keyType === 'text' ? (x < y ? -1 : x > y ? 1 : 0) : Number(x) - Number(y);
        const expected = [...all.values()].sort((x, y) => y.val - x.val || idOrder(x.id, y.id));
        const r = await router.fanOut<{ id: string | number; val: number }>(
          'SELECT id, val FROM items',
          [],
          {
            orderBy: [{ column: 'val', direction: 'desc' }, { column: 'id' }],
            limit: 25,
            offset: 10,
          },
        );
        expect(r.complete).toBe(true);
        expect(r.answered.sort()).toEqual(['s0', 's1']);
        expect(r.rows.map((x) => String(x.id))).toEqual(expected.slice(10, 35).map((x) => x.id));
        expect(Object.keys(r.latencyMs).sort()).toEqual(['s0', 's1']);
      });

      it('aggregates over shards: count, sum, min, max and avg (from sums and counts)', async () => {
        const rows = [...all.values()];
        const r = await router.aggregate({
          from: 'items',
          groupBy: ['grp'],
          measures: {
            n: { fn: 'count' },
            s: { fn: 'sum', column: 'val' },
            lo: { fn: 'min', column: 'val' },
            hi: { fn: 'max', column: 'val' },
            mean: { fn: 'avg', column: 'val' },
          },
        });
        expect(r.complete).toBe(true);
        for (const g of r.rows) {
          const mine = rows.filter((x) => x.grp === g.grp);
          const sum = mine.reduce((s, x) => s + x.val, 0);
          expect(g.n).toBe(mine.length);
          expect(Number(g.s)).toBe(sum);
          expect(g.lo).toBe(Math.min(...mine.map((x) => x.val)));
          expect(g.hi).toBe(Math.max(...mine.map((x) => x.val)));
          expect(g.mean).toBeCloseTo(sum / mine.length, 9);
        }
        expect(r.rows.length).toBe(5);
      });

      it('flags a fan-out past its deadline as partial, and refuses it when partial results are not allowed', async () => {
        const slow: SqlClient = Object.create(b.shards.s1!, {
          query: { value: () => new Promise(() => {}) },
        });
        const fast = await ShardRouter.open({
          catalog: b.catalog,
          map: name,
          shards: { ...b.shards, s1: slow },
          refreshMs: 1000,
        });
        try {
          const r = await fast.fanOut('SELECT id FROM items', [], {
            deadlineMs: 150,
            allowPartial: true,
          });
          expect(r.complete).toBe(false);
          expect(r.answered).toEqual(['s0']);
          expect(r.missing.map((m) => m.shard)).toEqual(['s1']);
          await expect(
            fast.fanOut('SELECT id FROM items', [], { deadlineMs: 150 }),
          ).rejects.toBeInstanceOf(FanOutDeadlineError);
        } finally {
          await fast.close();
        }
      });

      it('moves a unit under writers; every router notices the new map without restart', async () => {
        const other = await ShardRouter.open({
          catalog: b.catalog,
          map: name,
          shards: b.shards,
          refreshMs: 20,
        });
        try {
          const id = keyOf(strategy, 7);
          const unit = router.route(shardKey(id)).unit;
          const from = router.route(shardKey(id)).shard;
          const to = from === 's0' ? 's1' : 's0';
          const mover = new ShardMover({
            catalog: b.catalog,
            map: name,
            shards: b.shards,
            batchKeys: 7,
          });
          // The same unit's keys, written while the move runs.
          const same = [...all.keys()].filter(
            (k) => router.route(shardKey(strategy === 'lookup' ? k : Number(k))).unit === unit,
          );
          let stop = false;
          let writes = 0;
          const writer = (async () => {
            while (!stop) {
              const k = same[writes % same.length]!;
              const kk = strategy === 'lookup' ? k : Number(k);
              const hit = await other.query(
                shardKey(kk),
                'UPDATE items SET val = val + 1 WHERE id = $1 RETURNING id',
                [kk],
              );
              expect(hit.length).toBe(1);
              all.get(k)!.val += 1;
              writes++;
            }
          })();
          const planned = await mover.plan(unit, to);
          await expect(mover.plan(unit, to)).rejects.toBeInstanceOf(MoveInProgressError);
          const done = await mover.run(planned.id);
          stop = true;
          await writer;
          expect(done.phase).toBe('done');
          expect(writes).toBeGreaterThan(0);
          // The idle router learns the new map by polling the catalog's version: no refresh call.
          await eventually(
            () => router.route(shardKey(id)).shard === to,
            'the idle router routes the moved unit to its new shard',
          );
          // Ownership on the shards: exactly one shard owns the unit, the one the catalog names.
          const owners: string[] = [];
          for (const [shard, c] of Object.entries(b.shards)) {
            const r = await c.query('SELECT 1 FROM cdp_shard_owned WHERE map = $1 AND unit = $2', [
              name,
              unit,
            ]);
            if (r.rows.length > 0) owners.push(shard);
          }
          expect(owners).toEqual([to]);
          // Every acknowledged write is readable with its last value, and no row is on two shards.
          const seen = new Map<string, number>();
          for (const c of Object.values(b.shards)) {
            for (const r of (
              await c.query<{ id: string; val: number }>('SELECT id::text AS id, val FROM items')
            ).rows) {
              expect(seen.has(r.id)).toBe(false);
              seen.set(r.id, r.val);
            }
          }
          expect(seen.size).toBe(all.size);
          for (const [k, v] of all) expect(seen.get(k)).toBe(v.val);
        } finally {
          await other.close();
        }
      });

      if (strategy === 'range') {
        it('splits a range: the upper half is a new unit that routes and moves on its own', async () => {
          const unit = router.route(200).unit;
          const upper = await splitRange(b.catalog, name, b.shards, unit, '200');
          await router.refresh();
          expect(router.route(200).unit).toBe(upper);
          expect(router.route(199).unit).toBe(unit);
          const map = createShardMap(await router.catalog.load(name));
          expect(map.route(239).unit).toBe(upper);
          const [row] = await router.query<{ id: string }>(
            205,
            'SELECT id::text AS id FROM items WHERE id = 205',
          );
          expect(row!.id).toBe('205');
        });
      }
    });
  }
}
