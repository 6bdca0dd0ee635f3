import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { ValidationError } from '../../src/core/errors.js';
import { refreshMaterializedViews, ViewRefresher } from '../../src/cqrs/index.js';
import { PgliteSqlClient } from '../../src/engines/sql/pglite-sql-client.js';

/** The generic view refresher, on a manual clock: refreshes when its interval passes, only then. */
describe('ViewRefresher and refreshMaterializedViews on PGlite', () => {
  let sql: PgliteSqlClient;
  beforeAll(async () => {
    sql = await PgliteSqlClient.open({});
    await sql.exec(`
      CREATE TABLE vr_items (id int PRIMARY KEY, grp text NOT NULL, qty int NOT NULL);
      CREATE MATERIALIZED VIEW vr_totals_mv AS SELECT grp, sum(qty) AS qty FROM vr_items GROUP BY grp;
      CREATE UNIQUE INDEX vr_totals_mv_key ON vr_totals_mv (grp);
      CREATE MATERIALIZED VIEW vr_count_mv AS SELECT count(*) AS n FROM vr_items;`);
  });
  afterAll(() => sql.close());

  const totals = async () =>
    (
      await sql.query<{ grp: string; qty: number }>(
        'SELECT grp, qty FROM vr_totals_mv ORDER BY grp',
      )
    ).rows;

  it('refreshes the named views, plain or concurrently', async () => {
    await sql.query("INSERT INTO vr_items VALUES (1, 'a', 2), (2, 'a', 3), (3, 'b', 1)");
    expect(await totals()).toEqual([]);
    await refreshMaterializedViews(sql, ['vr_totals_mv', 'vr_count_mv']);
    expect(await totals()).toEqual([
      { grp: 'a', qty: 5 },
      { grp: 'b', qty: 1 },
    ]);
    await sql.query("INSERT INTO vr_items VALUES (4, 'b', 4)");
    await refreshMaterializedViews(sql, ['public.vr_totals_mv'], { concurrently: true });
    expect(await totals()).toContainEqual({ grp: 'b', qty: 5 });
  });

  it('refuses names that are not plain identifiers, and an empty list', async () => {
    await expect(
      refreshMaterializedViews(sql, ['vr_totals_mv; DROP TABLE vr_items']),
    ).rejects.toThrow(ValidationError);
    await expect(refreshMaterializedViews(sql, [])).rejects.toThrow(/at least one/);
    expect(() => ViewRefresher.open(sql, { views: ['Bad Name'] })).toThrow(ValidationError);
    expect(() => ViewRefresher.open(sql, { views: ['vr_count_mv'], intervalMs: 0 })).toThrow(
      /positive/,
    );
  });

  it('refreshes once per interval on its clock, logs a failed refresh and carries on, stops on close', async () => {
    const clock = new ManualClock();
    const warnings: unknown[] = [];
    const logger = {
      warn: (o: unknown) => warnings.push(o),
    } as unknown as import('pino').Logger;
    const refresher = ViewRefresher.open(sql, {
      views: ['vr_totals_mv'],
      intervalMs: 1000,
      clock,
      logger,
    });
    const refreshed = async (n: number) => {
      // The refresher is asleep again once its refresh (a query on PGlite) is done.
      for (let i = 0; i < 1000 && (refresher.refreshes < n || clock.pendingSleeps === 0); i++)
        await new Promise((r) => setImmediate(r));
      return refresher.refreshes;
    };
    await clock.advance(999);
    expect(refresher.refreshes).toBe(0);
    await sql.query("INSERT INTO vr_items VALUES (5, 'c', 7)");
    await clock.advance(1);
    expect(await refreshed(1)).toBe(1);
    expect(await totals()).toContainEqual({ grp: 'c', qty: 7 });
    // A refresh that fails (the view's unique index is gone: CONCURRENTLY refuses) is logged.
    await sql.exec('DROP INDEX vr_totals_mv_key');
    await clock.advance(1000);
    for (let i = 0; i < 1000 && warnings.length === 0; i++)
      await new Promise((r) => setImmediate(r));
    expect(warnings).toHaveLength(1);
    expect(refresher.refreshes).toBe(1);
    await sql.exec('CREATE UNIQUE INDEX vr_totals_mv_key ON vr_totals_mv (grp)');
    await clock.advance(1000);
    expect(await refreshed(2)).toBe(2);
    await refresher.close();
    expect(clock.pendingSleeps).toBe(0);
    await clock.advance(5000);
    expect(refresher.refreshes).toBe(2);
  });
});
