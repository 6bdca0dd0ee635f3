import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  IndexTables,
  installShardMap,
  ShardMover,
  ShardRouter,
  UniqueIndexViolationError,
} from '../../src/sharding/index.js';
import type { BedFactory, ShardBed } from './backends.js';

const N = 120;
const person = (i: number, gen = 0) => ({
  id: i,
  email: `p${i}${gen ? `.${gen}` : ''}@example.org`,
  city: `c${i % 7}`,
  name: `n${i % 11}`,
});

/** Index tables on one backend: the three modes, uniqueness across shards, checker and repair, backfill. */
export function describeIndexContract(backend: string, bed: BedFactory): void {
  describe(`${backend}: index tables`, () => {
    let b: ShardBed;
    let router: ShardRouter;
    let ix: IndexTables;
    const rows = new Map<number, ReturnType<typeof person>>();

    beforeAll(async () => {
      b = await bed(2);
      for (const c of Object.values(b.shards)) {
        await c.exec(
          'CREATE TABLE people (id bigint PRIMARY KEY, email text NOT NULL, city text NOT NULL, name text NOT NULL)',
        );
      }
      await installShardMap(b.catalog, b.shards, {
        name: 'people',
        strategy: 'hash',
        keyType: 'bigint',
        slotCount: 32,
        shards: Object.keys(b.shards).map((id) => ({ id, location: b.locations[id]! })),
        tables: [{ name: 'people', keyColumn: 'id' }],
      });
      router = await ShardRouter.open({
        catalog: b.catalog,
        map: 'people',
        shards: b.shards,
        refreshMs: 20,
      });
      ix = new IndexTables(router, [
        {
          name: 'people_by_email',
          baseTable: 'people',
          baseKey: 'id',
          column: 'email',
          mode: 'denormalized',
          unique: true,
        },
        {
          name: 'people_by_city',
          baseTable: 'people',
          baseKey: 'id',
          column: 'city',
          mode: 'normalized',
        },
        {
          name: 'people_by_name',
          baseTable: 'people',
          baseKey: 'id',
          column: 'name',
          mode: 'partial',
          columns: ['id', 'email'],
        },
      ]);
      await ix.install();
    });
    afterAll(async () => {
      await router?.close();
      await b?.close();
    });

    const drainAll = async () => {
      for (;;) if ((await ix.drain()).applied === 0) return;
    };

    it('maintains all three kinds in the same transaction or through the queue, and serves lookups', async () => {
      for (let i = 0; i < N; i++) {
        await ix.put('people', person(i));
        rows.set(i, person(i));
      }
      const { applied, lagMs } = await ix.drain();
      expect(applied).toBeGreaterThan(0);
      expect(lagMs).toBeGreaterThanOrEqual(0);
      await drainAll();
      const [byEmail] = await ix.lookup('people_by_email', 'p17@example.org');
      expect(byEmail).toEqual(person(17));
      const inCity = (await ix.lookup('people_by_city', 'c3'))
        .map((r) => Number(r.id))
        .sort((x, y) => x - y);
      const scan = await router.fanOut<{ id: number }>(
        `SELECT id FROM people WHERE city = 'c3'`,
        [],
        { orderBy: [{ column: 'id' }] },
      );
      expect(inCity).toEqual(scan.rows.map((r) => Number(r.id)));
      const named = await ix.lookup('people_by_name', 'n4');
      expect(named.map((r) => Object.keys(r).sort())[0]).toEqual(['email', 'id']);
      expect(named.length).toBe([...rows.values()].filter((r) => r.name === 'n4').length);
      for (const name of ['people_by_email', 'people_by_city', 'people_by_name']) {
        const r = await ix.check(name);
        expect({ name, missing: r.missing, extra: r.extra, stale: r.stale }).toEqual({
          name,
          missing: 0,
          extra: 0,
          stale: 0,
        });
        expect(r.baseRows).toBe(N);
      }
    });

    it('enforces a unique index across shards: a taken value is refused and nothing is written', async () => {
      await expect(
        ix.put('people', { ...person(500), email: 'p3@example.org' }),
      ).rejects.toBeInstanceOf(UniqueIndexViolationError);
      expect(await router.query(500, 'SELECT 1 FROM people WHERE id = 500')).toEqual([]);
      // A row changing its own value frees the old one.
      await ix.put('people', person(3, 1));
      rows.set(3, person(3, 1));
      await drainAll();
      expect(await ix.lookup('people_by_email', 'p3@example.org')).toEqual([]);
      expect(await ix.lookup('people_by_email', 'p3.1@example.org')).toEqual([person(3, 1)]);
      await ix.put('people', { ...person(501), email: 'p3@example.org' });
      rows.set(501, { ...person(501), email: 'p3@example.org' });
      await drainAll();
      expect((await ix.check('people_by_email')).missing).toBe(0);
    });

    it('finds missing, extra and stale index rows and repairs them', async () => {
      const s0 = b.shards.s0!;
      const victim = await s0.query<{ value: string; key: string }>(
        'SELECT value, key FROM people_by_email ORDER BY key LIMIT 2',
      );
      await s0.query('DELETE FROM people_by_email WHERE value = $1 AND key = $2', [
        victim.rows[0]!.value,
        victim.rows[0]!.key,
      ]);
      await s0.query(
        `UPDATE people_by_email SET data = '{"id": -1}' WHERE value = $1 AND key = $2`,
        [victim.rows[1]!.value, victim.rows[1]!.key],
      );
      await s0.query(
        `INSERT INTO people_by_email (value, key, data) VALUES ('ghost@example.org', '999', NULL)`,
      );
      const found = await ix.check('people_by_email');
      expect({ missing: found.missing, extra: found.extra, stale: found.stale }).toEqual({
        missing: 1,
        extra: 1,
        stale: 1,
      });
      await ix.repair('people_by_email');
      const after = await ix.check('people_by_email');
      expect({ missing: after.missing, extra: after.extra, stale: after.stale }).toEqual({
        missing: 0,
        extra: 0,
        stale: 0,
      });
    });

    it('backfills a new index while a writer writes, then checks clean', async () => {
      const late = new IndexTables(router, [
        {
          name: 'people_by_city2',
          baseTable: 'people',
          baseKey: 'id',
          column: 'city',
          mode: 'partial',
          columns: ['name'],
        },
      ]);
      await late.install();
      const both = new IndexTables(router, [
        {
          name: 'people_by_email',
          baseTable: 'people',
          baseKey: 'id',
          column: 'email',
          mode: 'denormalized',
          unique: true,
        },
        {
          name: 'people_by_city',
          baseTable: 'people',
          baseKey: 'id',
          column: 'city',
          mode: 'normalized',
        },
        {
          name: 'people_by_name',
          baseTable: 'people',
          baseKey: 'id',
          column: 'name',
          mode: 'partial',
          columns: ['id', 'email'],
        },
        {
          name: 'people_by_city2',
          baseTable: 'people',
          baseKey: 'id',
          column: 'city',
          mode: 'partial',
          columns: ['name'],
        },
      ]);
      let writes = 0;
      const writer = (async () => {
        while (writes < 40) {
          const i = writes % N;
          const p = {
            ...person(i, rows.get(i)!.email.includes('.') ? 1 : 0),
            city: `c${(i + writes) % 9}`,
          };
          await both.put('people', p);
          rows.set(i, p);
          writes++;
        }
      })();
      const queued = await late.backfill('people_by_city2');
      expect(queued).toBeGreaterThanOrEqual(N);
      // The backfill's queue drains while the writer keeps adding to it.
      await both.drain(50);
      await writer;
      for (;;) if ((await both.drain()).applied === 0) break;
      expect(writes).toBeGreaterThan(0);
      for (const name of ['people_by_city2', 'people_by_city', 'people_by_email']) {
        const r = await both.check(name);
        expect({ name, missing: r.missing, extra: r.extra, stale: r.stale }).toEqual({
          name,
          missing: 0,
          extra: 0,
          stale: 0,
        });
      }
    });

    it('moves index rows with their slot: lookups and the checker still agree after a move', async () => {
      const unit = router.map.routeHashed('p42@example.org').unit;
      const from = router.map.routeHashed('p42@example.org').shard;
      const mover = new ShardMover({ catalog: b.catalog, map: 'people', shards: b.shards });
      expect((await mover.move(unit, from === 's0' ? 's1' : 's0')).phase).toBe('done');
      await router.refresh();
      expect(await ix.lookup('people_by_email', 'p42@example.org')).toEqual([rows.get(42)]);
      const r = await ix.check('people_by_email');
      expect({ missing: r.missing, extra: r.extra, stale: r.stale }).toEqual({
        missing: 0,
        extra: 0,
        stale: 0,
      });
    });
  });
}
