import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/core/clock.js';
import { PgliteSqlClient } from '../../src/engines/sql/pglite-sql-client.js';
import type { SqlClient } from '../../src/engines/sql/sql-client.js';
import { fanOutQuery } from '../../src/sharding/fan-out.js';

/**
 * The adaptive per-shard limit (each shard asked for its share of the rows first, a second round
 * only for shards that may hold more of the result) gives what one table holding every row gives,
 * however the rows are spread, skew included.
 */
describe('ordered fan-out with the adaptive per-shard limit', () => {
  const shards: SqlClient[] = [];
  beforeAll(async () => {
    for (let i = 0; i < 3; i++) {
      const c = await PgliteSqlClient.open({});
      await c.exec('CREATE TABLE t (id integer PRIMARY KEY, v integer NOT NULL)');
      shards.push(c);
    }
  });
  afterAll(async () => {
    for (const c of shards) await c.close();
  });

  it('equals one sorted table for any spread of rows, offset and limit', async () => {
    let secondRounds = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(
          fc.record({ id: fc.nat(10_000), v: fc.integer({ min: 0, max: 30 }), shard: fc.nat(2) }),
          { selector: (r) => r.id, minLength: 30, maxLength: 150 },
        ),
        // Skew: the share of the rows, from the top of the result, forced onto shard 0.
        fc.integer({ min: 0, max: 100 }),
        fc.nat(15),
        fc.integer({ min: 1, max: 60 }),
        fc.boolean(),
        async (rows, skew, offset, limit, desc) => {
          const order = (a: { id: number; v: number }, b: { id: number; v: number }) =>
            (desc ? b.v - a.v : a.v - b.v) || a.id - b.id;
          // The first `skew` per cent of the rows in result order all on shard 0.
          const placed = [...rows]
            .sort(order)
            .map((r, i) => ({ ...r, shard: (i * 100) / rows.length < skew ? 0 : r.shard }));
          for (const [i, c] of shards.entries()) {
            await c.exec('DELETE FROM t');
            const mine = placed.filter((r) => r.shard === i);
            if (mine.length > 0)
              await c.query('INSERT INTO t SELECT * FROM unnest($1::int[], $2::int[])', [
                mine.map((r) => r.id),
                mine.map((r) => r.v),
              ]);
          }
          const seen: string[] = [];
          const targets = shards.map((client, i) => ({
            shard: `s${i}`,
            client: {
              query: (text: string, params: never[]) => {
                seen.push(text);
                return client.query(text, params);
              },
            } as unknown as SqlClient,
          }));
          const got = await fanOutQuery<{ id: number; v: number }>(
            targets,
            'SELECT id, v FROM t',
            [],
            {
              orderBy: [{ column: 'v', direction: desc ? 'desc' : 'asc' }, { column: 'id' }],
              offset,
              limit,
            },
            systemClock,
          );
          if (seen.length > shards.length) secondRounds++;
          const one = [...placed].sort(order).slice(offset, offset + limit);
          expect(got.rows.map((r) => [r.id, r.v])).toEqual(one.map((r) => [r.id, r.v]));
          expect(got.complete).toBe(true);
        },
      ),
      { numRuns: 60 },
    );
    // The skewed cases needed the second round: the property exercised it.
    expect(secondRounds).toBeGreaterThan(0);
  });
});
