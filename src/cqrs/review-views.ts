import type { Logger } from 'pino';
import { type Clock, systemClock } from '../core/clock.js';
import { errorMessage } from '../core/errors.js';
import { silentLogger } from '../core/logger.js';
import type { Migration } from '../engines/sql/migrations.js';
import type { Queryable, SqlClient } from '../engines/sql/sql-client.js';
import type { RebuildableProjection } from './projection-rebuild.js';

/**
 * Read models of the course marketplace, maintained two ways so both can be compared:
 *
 * - incrementally from events (projections below): each event touches one or two rows, so
 *   the cost of an update does not grow with the data;
 * - as PostgreSQL materialized views over the per-review / per-purchase tables, recomputed
 *   whole by `REFRESH MATERIALIZED VIEW` on a schedule (`ViewRefresher`): simpler, stale between
 *   refreshes, and each refresh reads every row.
 */
export const reviewViewMigrations: Migration[] = [
  {
    module: 'cqrs',
    version: 1,
    name: 'course ratings, customer spend: tables and materialized views',
    sql: `
CREATE TABLE cdp_reviews (
  course_id text NOT NULL,
  student_id text NOT NULL,
  topic text NOT NULL,
  rating smallint NOT NULL,
  PRIMARY KEY (course_id, student_id)
);
CREATE TABLE cdp_course_ratings (
  course_id text PRIMARY KEY,
  topic text NOT NULL,
  review_count bigint NOT NULL,
  rating_sum bigint NOT NULL,
  avg_rating numeric GENERATED ALWAYS AS (
    CASE WHEN review_count > 0 THEN round(rating_sum::numeric / review_count, 3) END) STORED
);
CREATE INDEX cdp_course_ratings_topic_rank ON cdp_course_ratings (topic, avg_rating DESC NULLS LAST, review_count DESC);
CREATE TABLE cdp_purchases (
  event_id uuid PRIMARY KEY,
  customer_id text NOT NULL,
  course_id text NOT NULL,
  amount_cents bigint NOT NULL
);
CREATE TABLE cdp_customer_spend (
  customer_id text PRIMARY KEY,
  total_cents bigint NOT NULL,
  purchases bigint NOT NULL
);
CREATE MATERIALIZED VIEW cdp_course_ratings_mv AS
  SELECT course_id, min(topic) AS topic, count(*) AS review_count, round(avg(rating), 3) AS avg_rating
    FROM cdp_reviews GROUP BY course_id;
CREATE UNIQUE INDEX cdp_course_ratings_mv_key ON cdp_course_ratings_mv (course_id);
CREATE MATERIALIZED VIEW cdp_customer_spend_mv AS
  SELECT customer_id, sum(amount_cents) AS total_cents, count(*) AS purchases
    FROM cdp_purchases GROUP BY customer_id;
CREATE UNIQUE INDEX cdp_customer_spend_mv_key ON cdp_customer_spend_mv (customer_id);`,
  },
];

interface ReviewData {
  courseId: string;
  topic: string;
  studentId: string;
  rating: number;
  previousRating?: number;
}

/**
 * Per-review rows and per-course aggregates, one or two rows touched per event, written into
 * the given tables (a rebuild writes into copies, then swaps them in).
 */
export function courseRatingsProjectionInto(
  tables: { reviews?: string; ratings?: string } = {},
): RebuildableProjection {
  const reviews = tables.reviews ?? 'cdp_reviews';
  const ratings = tables.ratings ?? 'cdp_course_ratings';
  return {
    name: 'course-ratings',
    types: ['ReviewSubmitted', 'ReviewRevised', 'ReviewWithdrawn'],
    tables: [reviews, ratings],
    withTables: (names) =>
      courseRatingsProjectionInto({
        reviews: names[reviews] ?? reviews,
        ratings: names[ratings] ?? ratings,
      }),
    async apply(event, tx) {
      const d = event.data as ReviewData;
      switch (event.type) {
        case 'ReviewSubmitted':
          await tx.query(
            `WITH r AS (INSERT INTO ${reviews} (course_id, student_id, topic, rating) VALUES ($1, $2, $3, $4)
                          ON CONFLICT (course_id, student_id) DO NOTHING RETURNING rating)
             INSERT INTO ${ratings} AS c (course_id, topic, review_count, rating_sum)
               SELECT $1, $3, 1, rating FROM r
             ON CONFLICT (course_id) DO UPDATE SET review_count = c.review_count + 1, rating_sum = c.rating_sum + excluded.rating_sum`,
            [d.courseId, d.studentId, d.topic, d.rating],
          );
          return;
        case 'ReviewRevised':
          await tx.query(
            `WITH r AS (UPDATE ${reviews} n SET rating = $3 FROM ${reviews} o
                          WHERE n.course_id = $1 AND n.student_id = $2 AND o.course_id = n.course_id AND o.student_id = n.student_id
                          RETURNING n.rating - o.rating AS delta)
             UPDATE ${ratings} SET rating_sum = rating_sum + (SELECT delta FROM r)
               WHERE course_id = $1 AND EXISTS (SELECT 1 FROM r)`,
            [d.courseId, d.studentId, d.rating],
          );
          return;
        case 'ReviewWithdrawn':
          await tx.query(
            `WITH r AS (DELETE FROM ${reviews} WHERE course_id = $1 AND student_id = $2 RETURNING rating)
             UPDATE ${ratings} SET review_count = review_count - 1, rating_sum = rating_sum - (SELECT rating FROM r)
               WHERE course_id = $1 AND EXISTS (SELECT 1 FROM r)`,
            [d.courseId, d.studentId],
          );
          return;
      }
    },
  };
}

/** Per-review rows and per-course aggregates in cdp_reviews and cdp_course_ratings. */
export const courseRatingsProjection: RebuildableProjection = courseRatingsProjectionInto();

/** Purchases and the total spent per customer, written into the given tables. */
export function customerSpendProjectionInto(
  tables: { purchases?: string; spend?: string } = {},
): RebuildableProjection {
  const purchases = tables.purchases ?? 'cdp_purchases';
  const spend = tables.spend ?? 'cdp_customer_spend';
  return {
    name: 'customer-spend',
    types: ['CoursePurchased'],
    tables: [purchases, spend],
    withTables: (names) =>
      customerSpendProjectionInto({
        purchases: names[purchases] ?? purchases,
        spend: names[spend] ?? spend,
      }),
    async apply(event, tx) {
      const d = event.data as { studentId: string; courseId: string; amountCents: number };
      await tx.query(
        `WITH p AS (INSERT INTO ${purchases} (event_id, customer_id, course_id, amount_cents) VALUES ($1, $2, $3, $4)
                      ON CONFLICT (event_id) DO NOTHING RETURNING amount_cents)
         INSERT INTO ${spend} AS s (customer_id, total_cents, purchases) SELECT $2, amount_cents, 1 FROM p
         ON CONFLICT (customer_id) DO UPDATE SET total_cents = s.total_cents + excluded.total_cents, purchases = s.purchases + 1`,
        [event.id, d.studentId, d.courseId, d.amountCents],
      );
    },
  };
}

/** Purchases and the total spent per customer in cdp_purchases and cdp_customer_spend. */
export const customerSpendProjection: RebuildableProjection = customerSpendProjectionInto();

// ---- Queries (plain DTOs) -----------------------------------------------------------------

export interface CourseRatingDto {
  courseId: string;
  topic: string;
  reviewCount: number;
  averageRating: number | null;
}

type RatingRow = {
  course_id: string;
  topic: string;
  review_count: number;
  avg_rating: string | number | null;
};
const toRating = (r: RatingRow): CourseRatingDto => ({
  courseId: r.course_id,
  topic: r.topic,
  reviewCount: Number(r.review_count),
  averageRating: r.avg_rating === null ? null : Number(r.avg_rating),
});

/** `source`: 'incremental' (always current) or 'refreshed' (the materialized view, as of its last refresh). */
export async function courseRating(
  q: Queryable,
  courseId: string,
  source: 'incremental' | 'refreshed' = 'incremental',
): Promise<CourseRatingDto | undefined> {
  const table = source === 'incremental' ? 'cdp_course_ratings' : 'cdp_course_ratings_mv';
  const { rows } = await q.query<RatingRow>(
    `SELECT course_id, topic, review_count, avg_rating FROM ${table} WHERE course_id = $1 AND review_count > 0`,
    [courseId],
  );
  return rows[0] ? toRating(rows[0]) : undefined;
}

export async function topCourses(
  q: Queryable,
  topic: string,
  limit = 10,
  source: 'incremental' | 'refreshed' = 'incremental',
): Promise<CourseRatingDto[]> {
  const table = source === 'incremental' ? 'cdp_course_ratings' : 'cdp_course_ratings_mv';
  const { rows } = await q.query<RatingRow>(
    `SELECT course_id, topic, review_count, avg_rating FROM ${table} WHERE topic = $1 AND review_count > 0
       ORDER BY avg_rating DESC NULLS LAST, review_count DESC, course_id LIMIT $2`,
    [topic, limit],
  );
  return rows.map(toRating);
}

export async function customerSpend(
  q: Queryable,
  customerId: string,
  source: 'incremental' | 'refreshed' = 'incremental',
): Promise<{ customerId: string; totalCents: number; purchases: number }> {
  const table = source === 'incremental' ? 'cdp_customer_spend' : 'cdp_customer_spend_mv';
  const { rows } = await q.query<{ total_cents: number | string; purchases: number | string }>(
    `SELECT total_cents, purchases FROM ${table} WHERE customer_id = $1`,
    [customerId],
  );
  return {
    customerId,
    totalCents: Number(rows[0]?.total_cents ?? 0),
    purchases: Number(rows[0]?.purchases ?? 0),
  };
}

/** Recompute both materialized views whole. */
export async function refreshReviewViews(
  sql: Queryable,
  options: { concurrently?: boolean } = {},
): Promise<void> {
  const c = options.concurrently ? ' CONCURRENTLY' : '';
  await sql.exec(
    `REFRESH MATERIALIZED VIEW${c} cdp_course_ratings_mv; REFRESH MATERIALIZED VIEW${c} cdp_customer_spend_mv;`,
  );
}

/**
 * The scheduled-refresh alternative: REFRESH ... CONCURRENTLY every `intervalMs` (readers are
 * not blocked; the views are as stale as the interval).
 */
export class ViewRefresher {
  readonly #sql: SqlClient;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #intervalMs: number;
  readonly #stop = new AbortController();
  #running: Promise<void> | undefined;
  refreshes = 0;
  lastRefreshMs: number | undefined;

  constructor(
    sql: SqlClient,
    options: { intervalMs?: number; clock?: Clock; logger?: Logger } = {},
  ) {
    this.#sql = sql;
    this.#clock = options.clock ?? systemClock;
    this.#logger = options.logger ?? silentLogger();
    this.#intervalMs = options.intervalMs ?? 60_000;
  }

  start(): void {
    this.#running ??= (async () => {
      while (!this.#stop.signal.aborted) {
        try {
          await this.#clock.sleep(this.#intervalMs, this.#stop.signal);
        } catch {
          return;
        }
        const t0 = this.#clock.now();
        try {
          await refreshReviewViews(this.#sql, { concurrently: true });
          this.refreshes++;
          this.lastRefreshMs = this.#clock.now() - t0;
        } catch (err) {
          this.#logger.warn(
            { err: errorMessage(err) },
            'materialized view refresh failed; next try at the next interval',
          );
        }
      }
    })();
  }

  async close(): Promise<void> {
    this.#stop.abort();
    await this.#running;
  }
}
