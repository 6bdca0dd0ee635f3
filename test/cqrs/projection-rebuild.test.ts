import { expect, it } from 'vitest';
import { courseReviews, reviewStream, SubmitReview } from '../../src/app/reviews/deciders.js';
import { reviewsMigrations } from '../../src/app/reviews/migrations.js';
import {
  courseRating,
  courseRatingsProjection,
  refreshReviewViews,
  topCourses,
} from '../../src/app/reviews/read-models.js';
import {
  CommandHandler,
  openAsyncProjection,
  ReadModelQueries,
  rebuildProjection,
} from '../../src/cqrs/index.js';
import type { SqlClient } from '../../src/engines/sql/sql-client.js';
import type { SqlEventStore } from '../../src/events/index.js';
import { describeOnSqlEventStores } from '../support/sql-event-stores.js';

/**
 * Rebuild without downtime: the course-ratings tables are rebuilt from position 0 while the
 * async projection keeps running, commands keep landing and readers keep reading; after the
 * swap the read model equals the reference model of the submitted reviews (it was corrupted on
 * purpose before the rebuild, so a rebuild that did not replace it fails here), each review is
 * counted once (the live projection resumed from the moved checkpoint), and the dependent
 * materialized view and the index names survived.
 */
function rebuildSuite(
  getSql: () => SqlClient,
  getStore: () => SqlEventStore,
  writer: 'async' | 'inline',
): void {
  it(`${writer} projection: rebuilds from position 0 and swaps atomically while reads and writes go on`, {
    timeout: 60_000,
  }, async () => {
    const sql = getSql();
    const store = getStore();
    // Inline: the command handler writes the read model in the append's transaction.
    const sub =
      writer === 'async'
        ? await openAsyncProjection(store, courseRatingsProjection, { pollIntervalMs: 20 })
        : undefined;
    const handler = new CommandHandler({
      store,
      decider: courseReviews,
      streamId: reviewStream,
      maxAttempts: 50,
      ...(writer === 'inline' ? { inline: [courseRatingsProjection] } : {}),
    });
    const courses = [`rb-a-${writer}`, `rb-b-${writer}`, `rb-c-${writer}`];
    const model = new Map<string, number[]>(courses.map((c) => [c, []]));
    let student = 0;
    let token = 0;
    const submit = async () => {
      const courseId = courses[student % courses.length]!;
      const rating = 1 + ((student * 7) % 5);
      const r = await handler.handle(
        SubmitReview.parse({ courseId, topic: 'rebuild', studentId: `s${student++}`, rating }),
      );
      model.get(courseId)!.push(rating);
      token = Math.max(token, r.position);
    };
    const queries = new ReadModelQueries(sql);
    let reading = false;
    let writing = false;
    let releaseHolder = () => {};
    try {
      for (let i = 0; i < 60; i++) await submit();
      if (sub) {
        await queries.query('course-ratings', async () => undefined, {
          after: token,
          timeoutMs: 30_000,
        });
      }
      // Corrupt the live read model: only a real rebuild from the events repairs it.
      await sql.query('UPDATE app_course_ratings SET review_count = review_count + 1000');

      reading = true;
      let rebuilding = false;
      let readsDuringRebuild = 0;
      const readErrors: string[] = [];
      const reader = (async () => {
        while (reading) {
          try {
            await courseRating(sql, courses[0]!);
            await topCourses(sql, 'rebuild', 3);
            if (rebuilding) readsDuringRebuild++;
          } catch (err) {
            readErrors.push(String(err));
          }
          await new Promise((r) => setTimeout(r, 1));
        }
      })();
      writing = true;
      let writesDuringRebuild = 0;
      const writes = (async () => {
        while (writing) {
          await submit();
          if (rebuilding) writesDuringRebuild++;
          // On PGlite a command resolves through microtasks only: let timers run.
          await new Promise((r) => setImmediate(r));
        }
      })();
      // Inline on PostgreSQL: an unrelated transaction with an id stays open through the rebuild,
      // so readers of the global log are held back below everything written meanwhile; the swap
      // must still bring in every committed event (it reads with appends held off, no horizon).
      let holding = () => {};
      const held = new Promise<void>((r) => {
        holding = r;
      });
      const holder =
        writer === 'inline' && sql.engine === 'postgres'
          ? sql.transaction(async (tx) => {
              await tx.query('SELECT pg_current_xact_id()');
              holding();
              await new Promise<void>((r) => {
                releaseHolder = r;
              });
            })
          : Promise.resolve(holding());
      await held;
      let progressCalls = 0;
      rebuilding = true;
      const result = await rebuildProjection(store, courseRatingsProjection, {
        writer,
        batchSize: 5,
        onProgress: () => {
          progressCalls++;
        },
      });
      rebuilding = false;
      releaseHolder();
      await holder;
      for (let i = 0; i < 10; i++) await submit();
      writing = false;
      await writes;
      reading = false;
      await reader;

      expect(readErrors).toEqual([]);
      expect(readsDuringRebuild).toBeGreaterThan(0);
      expect(writesDuringRebuild).toBeGreaterThan(0);
      expect(progressCalls).toBeGreaterThan(3);
      expect(result.events).toBeGreaterThanOrEqual(60);
      expect(result.recreatedViews).toContain('app_course_ratings_mv');

      if (sub) {
        await queries.query('course-ratings', async () => undefined, {
          after: token,
          timeoutMs: 30_000,
        });
      }
      for (const c of courses) {
        const ratings = model.get(c)!;
        const avg = Math.round((ratings.reduce((a, b) => a + b, 0) / ratings.length) * 1000) / 1000;
        expect(await courseRating(sql, c)).toEqual({
          courseId: c,
          topic: 'rebuild',
          reviewCount: ratings.length,
          averageRating: avg,
        });
      }
      // The materialized view was recreated on the new table and agrees after a refresh.
      await refreshReviewViews(sql);
      for (const c of courses) {
        expect(await courseRating(sql, c, 'refreshed')).toEqual(await courseRating(sql, c));
      }
      const { rows } = await sql.query<{ name: string }>(
        `SELECT indexname AS name FROM pg_indexes WHERE tablename IN ('app_course_ratings', 'app_reviews') ORDER BY 1`,
      );
      expect(rows.map((r) => r.name)).toEqual([
        'app_course_ratings_pkey',
        'app_course_ratings_topic_rank',
        'app_reviews_pkey',
      ]);
      const leftovers = await sql.query(
        `SELECT 1 FROM pg_tables WHERE tablename LIKE '%\\_rebuild' ESCAPE '\\'`,
      );
      expect(leftovers.rows).toEqual([]);
    } finally {
      // Stop the loops whatever happened (a failed assertion must not leave them spinning).
      reading = false;
      writing = false;
      releaseHolder();
      await sub?.close();
    }
  });
}

describeOnSqlEventStores(
  'projection rebuild',
  { migrations: reviewsMigrations, prefix: 'cdp_rebuild', max: 8 },
  (getSql, getStore) => {
    for (const writer of ['async', 'inline'] as const) rebuildSuite(getSql, getStore, writer);
  },
);
