import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliDecompressSync } from 'node:zlib';
import { PGlite } from '@electric-sql/pglite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { platformMigrations } from '../../../src/app/platform.js';
import {
  courseReviews,
  PayForCourse,
  reviewStream,
  studentWallet,
  walletStream,
} from '../../../src/app/reviews/deciders.js';
import { reviewsMigrations } from '../../../src/app/reviews/migrations.js';
import {
  courseRating,
  courseRatingsProjection,
  customerSpend,
  customerSpendProjection,
  refreshReviewViews,
} from '../../../src/app/reviews/read-models.js';
import { CommandHandler, fold, openAsyncProjection } from '../../../src/cqrs/index.js';
import { checksum, migrate } from '../../../src/engines/sql/migrations.js';
import { PgSqlClient } from '../../../src/engines/sql/pg-sql-client.js';
import { PgliteSqlClient } from '../../../src/engines/sql/pglite-sql-client.js';
import type { SqlClient } from '../../../src/engines/sql/sql-client.js';
import { SqlEventStore, waitForSubscription } from '../../../src/events/index.js';
import { createTempDatabase, describeServer } from '../../support/servers.js';
import { cqrsMigrationsAt6dc0131 } from '../fixtures/cqrs-migrations-6dc0131.js';
import { writeDatabaseAsBeforeDomainMove } from '../fixtures/write-before-domain-move.js';

/**
 * A database written before the marketplace left the cqrs library (its reviews, wallets and
 * read models in `cdp_` tables created by `cqrs#1`) migrates forward with the platform's
 * migrations: the runner accepts it, every event, stream, snapshot, checkpoint and read-model
 * row is still there under the `app_` names, the schema is the one a fresh database gets, and
 * the new code carries on from where the old one stopped.
 */

const FIXTURE = fileURLToPath(
  new URL('../fixtures/reviews-6dc0131.pglite.tar.br', import.meta.url),
);

/** Read-model objects before and after: cqrs#1's names, reviews-app#1's names. */
const RENAMED: readonly (readonly [string, string])[] = [
  ['cdp_reviews', 'app_reviews'],
  ['cdp_course_ratings', 'app_course_ratings'],
  ['cdp_purchases', 'app_purchases'],
  ['cdp_customer_spend', 'app_customer_spend'],
  ['cdp_course_ratings_mv', 'app_course_ratings_mv'],
  ['cdp_customer_spend_mv', 'app_customer_spend_mv'],
];
/** Every other table of the database (the events module's: events, snapshots, checkpoints). */
async function otherTables(sql: SqlClient): Promise<string[]> {
  const { rows } = await sql.query<{ name: string }>(
    `SELECT relname AS name FROM pg_class
      WHERE relnamespace = current_schema()::regnamespace AND relkind IN ('r', 'm')
        AND relname <> 'cdp_migrations' AND relname <> ALL ($1) ORDER BY 1`,
    [RENAMED.flat()],
  );
  return rows.map((r) => r.name);
}

async function rowsOf(sql: SqlClient, table: string): Promise<string[]> {
  const { rows } = await sql.query<{ r: string }>(
    `SELECT to_jsonb(t)::text AS r FROM ${table} t ORDER BY 1`,
  );
  return rows.map((x) => x.r);
}

async function exists(sql: SqlClient, name: string): Promise<boolean> {
  const { rows } = await sql.query<{ ok: boolean }>('SELECT to_regclass($1) IS NOT NULL AS ok', [
    name,
  ]);
  return rows[0]!.ok;
}

/** Columns, constraints, indexes and view definitions of the reviews feature's objects. */
async function schemaOf(sql: SqlClient): Promise<unknown> {
  const names = RENAMED.map(([, n]) => n);
  const columns = await sql.query(
    `SELECT c.relname AS rel, a.attname AS col, format_type(a.atttypid, a.atttypmod) AS type,
            a.attnotnull AS not_null, a.attgenerated AS generated, pg_get_expr(d.adbin, d.adrelid) AS expr
       FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
       LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
      WHERE c.relname = ANY ($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY 1, a.attnum`,
    [names],
  );
  const constraints = await sql.query(
    `SELECT c.relname AS rel, k.conname AS name, pg_get_constraintdef(k.oid) AS def
       FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid WHERE c.relname = ANY ($1) ORDER BY 1, 2`,
    [names],
  );
  const indexes = await sql.query(
    `SELECT indexname AS name, indexdef AS def FROM pg_indexes WHERE tablename = ANY ($1) ORDER BY 1`,
    [names],
  );
  const views = await sql.query(
    `SELECT matviewname AS name, definition FROM pg_matviews WHERE matviewname = ANY ($1) ORDER BY 1`,
    [names],
  );
  return {
    columns: columns.rows,
    constraints: constraints.rows,
    indexes: indexes.rows,
    views: views.rows,
  };
}

interface Before {
  events: Record<string, string[]>;
  readModels: Record<string, string[]>;
}

async function capture(sql: SqlClient): Promise<Before> {
  const events: Record<string, string[]> = {};
  for (const t of await otherTables(sql)) events[t] = await rowsOf(sql, t);
  const readModels: Record<string, string[]> = {};
  for (const [old] of RENAMED) readModels[old] = await rowsOf(sql, old);
  return { events, readModels };
}

describe('reviews migrations are frozen', () => {
  it('each applied migration keeps its text: the runner refuses a database whose applied text changed', () => {
    expect(reviewsMigrations.map((m) => `${m.module}#${m.version} ${checksum(m.sql)}`)).toEqual([
      'reviews-app#1 235392ad42b63237',
      'reviews-app#2 1cd0b7a292167764',
    ]);
    expect(checksum(cqrsMigrationsAt6dc0131[0]!.sql)).toBe('49c510e0f9aa2ac0');
  });
});

function forwardSuite(getSql: () => SqlClient, getFresh: () => SqlClient): void {
  let before: Before;

  it('the database holds what the old version wrote: cqrs#1 applied, reviews, wallets, read models', async () => {
    const sql = getSql();
    const { rows } = await sql.query<{ checksum: string }>(
      `SELECT checksum FROM cdp_migrations WHERE module = 'cqrs' AND version = 1`,
    );
    expect(rows).toEqual([{ checksum: checksum(cqrsMigrationsAt6dc0131[0]!.sql) }]);
    before = await capture(sql);
    const types = before.events.cdp_events!.map((r) => (JSON.parse(r) as { type: string }).type);
    for (const t of [
      'ReviewSubmitted',
      'ReviewRevised',
      'ReviewWithdrawn',
      'WalletToppedUp',
      'CoursePurchased',
    ]) {
      expect(types).toContain(t);
    }
    expect(before.events.cdp_event_snapshots!.length).toBeGreaterThan(0);
    expect(before.events.cdp_event_subscriptions!.length).toBeGreaterThan(0);
    for (const [old] of RENAMED) expect(before.readModels[old]!.length, old).toBeGreaterThan(0);
  });

  it('migrates with the platform’s migrations: accepted, nothing lost, the same schema as a fresh database', async () => {
    const sql = getSql();
    const result = await migrate(sql, platformMigrations());
    expect(result.applied.map((a) => `${a.module}#${a.version}`)).toContain('reviews-app#1');
    // Every row of every read model is there, under its new name. reviews-app#2 gave purchases
    // a `units` column (1 for a purchase; -1 for a saga's refund, none of which this old
    // database holds): the rows are the old ones with units 1.
    for (const [old, renamed] of RENAMED) {
      expect(await exists(sql, old), old).toBe(false);
      const rows = await rowsOf(sql, renamed);
      if (renamed !== 'app_purchases') {
        expect(rows, renamed).toEqual(before.readModels[old]);
        continue;
      }
      const parsed = rows.map((r) => JSON.parse(r) as Record<string, unknown>);
      expect(new Set(parsed.map((r) => r.units))).toEqual(new Set([1]));
      expect(
        parsed.map(({ units: _, ...r }) => r),
        renamed,
      ).toEqual(before.readModels[old]!.map((r) => JSON.parse(r)));
    }
    // The events, streams, snapshots and checkpoints are as they were.
    for (const [t, rows] of Object.entries(before.events))
      expect(await rowsOf(sql, t), t).toEqual(rows);
    // cqrs#1 stays recorded (the history of these tables); no code loads module 'cqrs'.
    const { rows } = await sql.query<{ module: string }>(
      `SELECT DISTINCT module FROM cdp_migrations WHERE module IN ('cqrs', 'reviews-app') ORDER BY 1`,
    );
    expect(rows.map((r) => r.module)).toEqual(['cqrs', 'reviews-app']);
    expect(platformMigrations().filter((m) => m.module === 'cqrs')).toEqual([]);
    // A second run finds nothing to do, and the schema is the one a new database gets.
    expect((await migrate(sql, platformMigrations())).applied).toEqual([]);
    expect(await schemaOf(sql)).toEqual(await schemaOf(getFresh()));
  });

  it('the new code carries on: the async projection catches up, snapshots load, commands land', async () => {
    const sql = getSql();
    const store = await SqlEventStore.open(sql);
    const { rows } = await sql.query<{ top: number }>(
      'SELECT max(position)::int AS top FROM cdp_events',
    );
    const top = rows[0]!.top;
    // The events written after the old projection stopped are applied to the app_ tables.
    const sub = await openAsyncProjection(store, courseRatingsProjection, { pollIntervalMs: 20 });
    try {
      await waitForSubscription(sql, 'projection:course-ratings', top, { timeoutMs: 30_000 });
    } finally {
      await sub.close();
    }
    const reviews = new CommandHandler({
      store,
      decider: courseReviews,
      streamId: reviewStream,
      snapshotEvery: 4,
    });
    for (let c = 0; c < 4; c++) {
      const courseId = `course-${c}`;
      const events = await store.readStream(reviewStream({ courseId }));
      const state = fold(
        courseReviews,
        courseReviews.initialState(),
        events as unknown as Parameters<typeof courseReviews.evolve>[1][],
      );
      const ratings = [...state.ratings.values()];
      const loaded = await reviews.load(reviewStream({ courseId }));
      expect(loaded.snapshotVersion, courseId).toBeGreaterThan(0);
      expect(loaded.state).toEqual(state);
      expect(await courseRating(sql, courseId)).toEqual({
        courseId,
        topic: state.topic,
        reviewCount: ratings.length,
        averageRating:
          Math.round((ratings.reduce((a, b) => a + b, 0) / ratings.length) * 1000) / 1000,
      });
    }
    // Wallets load from the old snapshots; a purchase updates the renamed spend table inline.
    const wallets = new CommandHandler({
      store,
      decider: studentWallet,
      streamId: walletStream,
      snapshotEvery: 3,
      inline: [customerSpendProjection],
    });
    const loaded = await wallets.load(walletStream({ studentId: 'student-0' }));
    expect(loaded.snapshotVersion).toBeGreaterThan(0);
    const spent = await customerSpend(sql, 'student-0');
    expect(loaded.state.balanceCents).toBe(10_000 - spent.totalCents);
    await wallets.handle(
      PayForCourse.parse({ studentId: 'student-0', courseId: 'course-9', amountCents: 700 }),
    );
    expect(await customerSpend(sql, 'student-0')).toEqual({
      customerId: 'student-0',
      totalCents: spent.totalCents + 700,
      purchases: spent.purchases + 1,
    });
    // The renamed materialized views refresh and agree with the incremental read models.
    await refreshReviewViews(sql, { concurrently: true });
    expect(await customerSpend(sql, 'student-0', 'refreshed')).toEqual(
      await customerSpend(sql, 'student-0'),
    );
    for (let c = 0; c < 4; c++) {
      expect(await courseRating(sql, `course-${c}`, 'refreshed')).toEqual(
        await courseRating(sql, `course-${c}`),
      );
    }
  });
}

describe('reviews: a PGlite data directory written by 6dc0131 migrates forward', () => {
  let dir: string;
  let sql: PgliteSqlClient;
  let fresh: PgliteSqlClient;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cdp-forward-'));
    // Unpack the fixture where PgliteSqlClient.open({ dataDir: dir }) looks: dir/pglite.
    const tar = brotliDecompressSync(readFileSync(FIXTURE));
    const unpack = await PGlite.create(join(dir, 'pglite'), { loadDataDir: new Blob([tar]) });
    await unpack.close();
    sql = await PgliteSqlClient.open({ dataDir: dir });
    fresh = await PgliteSqlClient.open({});
    await migrate(fresh, platformMigrations());
  });
  afterAll(async () => {
    await sql?.close();
    await fresh?.close();
    rmSync(dir, { recursive: true, force: true });
  });
  forwardSuite(
    () => sql,
    () => fresh,
  );
});

describeServer(
  'reviews: a PostgreSQL database written as by 6dc0131 migrates forward',
  'CDP_DATABASE_URL',
  (url) => {
    let db: { url: string; drop: () => Promise<void> };
    let freshDb: { url: string; drop: () => Promise<void> };
    let sql: PgSqlClient;
    let fresh: PgSqlClient;
    beforeAll(async () => {
      db = await createTempDatabase(url, 'cdp_forward');
      freshDb = await createTempDatabase(url, 'cdp_fresh');
      sql = await PgSqlClient.open({ url: db.url, max: 4 });
      fresh = await PgSqlClient.open({ url: freshDb.url, max: 2 });
      await writeDatabaseAsBeforeDomainMove(sql);
      await migrate(fresh, platformMigrations());
    });
    afterAll(async () => {
      await sql?.close();
      await fresh?.close();
      await db?.drop();
      await freshDb?.drop();
    });
    forwardSuite(
      () => sql,
      () => fresh,
    );
  },
);
