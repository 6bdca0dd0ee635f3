import type { Logger } from 'pino';
import type { Clock } from '../../core/clock.js';
import {
  type RebuildableProjection,
  refreshMaterializedViews,
  ViewRefresher,
} from '../../cqrs/index.js';
import type { Queryable, SqlClient } from '../../engines/sql/sql-client.js';
import type { RecordedEvent } from '../../events/index.js';

/**
 * Read models of the course marketplace, maintained two ways so both can be compared:
 *
 * - incrementally from events (the projections below): each event touches one or two rows,
 *   so the cost of an update does not grow with the data;
 * - as PostgreSQL materialized views over the per-review / per-purchase tables, recomputed
 *   whole on a schedule (cqrs's `ViewRefresher`): simpler, stale between refreshes, and each
 *   refresh reads every row.
 *
 * The tables and views are created by `reviewsMigrations` (`migrations.ts`).
 */

/** The materialized views over the per-review and per-purchase tables. */
export const reviewMaterializedViews = ['app_course_ratings_mv', 'app_customer_spend_mv'] as const;

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
  const reviews = tables.reviews ?? 'app_reviews';
  const ratings = tables.ratings ?? 'app_course_ratings';
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
    async applyBatch(events, tx) {
      const rows = reviewBatchRows(events);
      if (rows.length > 0)
        await tx.query(courseRatingsBatchSql(reviews, ratings), [JSON.stringify(rows)]);
    },
  };
}

/** One review event as a row of a batch: `seq` is its place in the batch (log order). */
interface ReviewBatchRow {
  seq: number;
  kind: 'S' | 'R' | 'W';
  course_id: string;
  student_id: string;
  topic: string | null;
  rating: number | null;
}

const REVIEW_KINDS: ReadonlyMap<string, ReviewBatchRow['kind']> = new Map([
  ['ReviewSubmitted', 'S'],
  ['ReviewRevised', 'R'],
  ['ReviewWithdrawn', 'W'],
]);

function reviewBatchRows(events: readonly RecordedEvent[]): ReviewBatchRow[] {
  const rows: ReviewBatchRow[] = [];
  for (const e of events) {
    const kind = REVIEW_KINDS.get(e.type);
    if (!kind) continue;
    const d = e.data as ReviewData;
    rows.push({
      seq: rows.length,
      kind,
      course_id: d.courseId,
      student_id: d.studentId,
      topic: kind === 'S' ? d.topic : null,
      rating: kind === 'W' ? null : d.rating,
    });
  }
  return rows;
}

/**
 * A batch of review events applied set-based, in one statement, with exactly the effects of
 * applying them one by one in order. Per (course, student) the events fold over the row's
 * current state (read once, locked):
 * - everything before the key's last withdrawal is gone: from there the review is absent,
 *   unless there was no withdrawal and the review existed, in which case it stays present and
 *   submissions are ignored (as one by one: ON CONFLICT DO NOTHING);
 * - from an absent start, the first submission after that point takes effect (`sub`);
 * - revisions count once the review is present: the last one wins (`rev`).
 * The final state gives one INSERT, UPDATE or DELETE per review row, and the difference between
 * final and initial state summed per course gives one upsert per course row. A course row is
 * created by a submission even if a later withdrawal in the batch brings it back to zero, as
 * one by one; its topic is that of the course's first submission in the batch (a course without
 * a row has no reviews yet, so that submission is the one that creates it).
 */
function courseRatingsBatchSql(reviews: string, ratings: string): string {
  return `WITH b AS MATERIALIZED (
  SELECT * FROM jsonb_to_recordset($1::jsonb)
    AS x(seq int, kind text, course_id text, student_id text, topic text, rating int)
), cur AS MATERIALIZED (
  SELECT r.course_id, r.student_id, r.rating, r.topic FROM ${reviews} r
   WHERE (r.course_id, r.student_id) IN (SELECT DISTINCT course_id, student_id FROM b)
  FOR UPDATE
), st AS (
  SELECT k.course_id, k.student_id, k.w, c.rating AS rating0, c.topic AS topic0,
         (c.rating IS NOT NULL AND k.w IS NULL) AS keeps
    FROM (SELECT course_id, student_id, max(seq) FILTER (WHERE kind = 'W') AS w
            FROM b GROUP BY course_id, student_id) k
    LEFT JOIN cur c USING (course_id, student_id)
), sub AS (
  SELECT DISTINCT ON (b.course_id, b.student_id) b.course_id, b.student_id, b.seq, b.topic, b.rating
    FROM b JOIN st USING (course_id, student_id)
   WHERE b.kind = 'S' AND NOT st.keeps AND b.seq > coalesce(st.w, -1)
   ORDER BY b.course_id, b.student_id, b.seq
), rev AS (
  SELECT DISTINCT ON (b.course_id, b.student_id) b.course_id, b.student_id, b.rating
    FROM b JOIN st USING (course_id, student_id) LEFT JOIN sub s USING (course_id, student_id)
   WHERE b.kind = 'R' AND (st.keeps OR s.seq IS NOT NULL) AND b.seq > coalesce(s.seq, -1)
   ORDER BY b.course_id, b.student_id, b.seq DESC
), fin AS (
  SELECT st.course_id, st.student_id, st.rating0, st.topic0,
         (st.keeps OR s.seq IS NOT NULL) AS present,
         coalesce(r.rating, s.rating, st.rating0) AS rating,
         coalesce(s.topic, st.topic0) AS topic
    FROM st LEFT JOIN sub s USING (course_id, student_id) LEFT JOIN rev r USING (course_id, student_id)
), ins AS (
  INSERT INTO ${reviews} (course_id, student_id, topic, rating)
    SELECT course_id, student_id, topic, rating FROM fin WHERE present AND rating0 IS NULL
), upd AS (
  UPDATE ${reviews} t SET rating = f.rating, topic = f.topic FROM fin f
   WHERE f.present AND f.rating0 IS NOT NULL AND (f.rating <> f.rating0 OR f.topic <> f.topic0)
     AND t.course_id = f.course_id AND t.student_id = f.student_id
), del AS (
  DELETE FROM ${reviews} t USING fin f
   WHERE NOT f.present AND f.rating0 IS NOT NULL
     AND t.course_id = f.course_id AND t.student_id = f.student_id
), per_course AS (
  SELECT course_id,
         sum(present::int - (rating0 IS NOT NULL)::int) AS dcount,
         sum(CASE WHEN present THEN rating ELSE 0 END - coalesce(rating0, 0)) AS dsum
    FROM fin GROUP BY course_id
), first_topic AS (
  SELECT DISTINCT ON (course_id) course_id, topic FROM b WHERE kind = 'S' ORDER BY course_id, seq
)
INSERT INTO ${ratings} AS c (course_id, topic, review_count, rating_sum)
  SELECT p.course_id, coalesce(t.topic, ''), p.dcount, p.dsum
    FROM per_course p LEFT JOIN first_topic t USING (course_id)
   WHERE t.course_id IS NOT NULL OR p.dcount <> 0 OR p.dsum <> 0
ON CONFLICT (course_id) DO UPDATE SET review_count = c.review_count + excluded.review_count,
  rating_sum = c.rating_sum + excluded.rating_sum
  WHERE excluded.review_count <> 0 OR excluded.rating_sum <> 0`;
}

/** Per-review rows and per-course aggregates in app_reviews and app_course_ratings. */
export const courseRatingsProjection: RebuildableProjection = courseRatingsProjectionInto();

/** What a wallet event adds to a customer's purchases: a row of (+/-) amount and units. */
function purchaseRow(e: { id: string; type: string; data: unknown }) {
  const d = e.data as { studentId: string; courseId: string; amountCents: number };
  // A refund gives the charge back: it takes its amount and its purchase off again.
  const sign = e.type === 'ChargeRefunded' ? -1 : 1;
  return {
    event_id: e.id,
    customer_id: d.studentId,
    course_id: d.courseId,
    amount_cents: sign * d.amountCents,
    units: sign,
  };
}

/**
 * Purchases and the total spent per customer, written into the given tables: a direct purchase
 * (`CoursePurchased`) and a purchase saga's charge (`WalletCharged`) each add a row; a saga's
 * refund (`ChargeRefunded`) adds a row that takes the amount and the purchase off again.
 */
export function customerSpendProjectionInto(
  tables: { purchases?: string; spend?: string } = {},
): RebuildableProjection {
  const purchases = tables.purchases ?? 'app_purchases';
  const spend = tables.spend ?? 'app_customer_spend';
  const types = ['CoursePurchased', 'WalletCharged', 'ChargeRefunded'];
  return {
    name: 'customer-spend',
    types,
    tables: [purchases, spend],
    withTables: (names) =>
      customerSpendProjectionInto({
        purchases: names[purchases] ?? purchases,
        spend: names[spend] ?? spend,
      }),
    async apply(event, tx) {
      if (!types.includes(event.type)) return;
      const r = purchaseRow(event);
      await tx.query(
        `WITH p AS (INSERT INTO ${purchases} (event_id, customer_id, course_id, amount_cents, units) VALUES ($1, $2, $3, $4, $5)
                      ON CONFLICT (event_id) DO NOTHING RETURNING amount_cents, units)
         INSERT INTO ${spend} AS s (customer_id, total_cents, purchases) SELECT $2, amount_cents, units FROM p
         ON CONFLICT (customer_id) DO UPDATE SET total_cents = s.total_cents + excluded.total_cents, purchases = s.purchases + excluded.purchases`,
        [r.event_id, r.customer_id, r.course_id, r.amount_cents, r.units],
      );
    },
    async applyBatch(events, tx) {
      const rows = events
        .filter((e) => types.includes(e.type))
        .map((e, seq) => ({ seq, ...purchaseRow(e) }));
      if (rows.length === 0) return;
      // An event id seen before (or twice in the batch: the first wins) is not counted again.
      await tx.query(
        `WITH p AS (
           INSERT INTO ${purchases} (event_id, customer_id, course_id, amount_cents, units)
             SELECT DISTINCT ON (event_id) event_id, customer_id, course_id, amount_cents, units
               FROM jsonb_to_recordset($1::jsonb)
                 AS x(seq int, event_id uuid, customer_id text, course_id text, amount_cents bigint, units int)
              ORDER BY event_id, seq
           ON CONFLICT (event_id) DO NOTHING RETURNING customer_id, amount_cents, units)
         INSERT INTO ${spend} AS s (customer_id, total_cents, purchases)
           SELECT customer_id, sum(amount_cents), sum(units) FROM p GROUP BY customer_id
         ON CONFLICT (customer_id) DO UPDATE SET total_cents = s.total_cents + excluded.total_cents,
           purchases = s.purchases + excluded.purchases`,
        [JSON.stringify(rows)],
      );
    },
  };
}

/** Purchases and the total spent per customer in app_purchases and app_customer_spend. */
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
  const table = source === 'incremental' ? 'app_course_ratings' : 'app_course_ratings_mv';
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
  const table = source === 'incremental' ? 'app_course_ratings' : 'app_course_ratings_mv';
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
  const table = source === 'incremental' ? 'app_customer_spend' : 'app_customer_spend_mv';
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
export function refreshReviewViews(
  sql: Queryable,
  options: { concurrently?: boolean } = {},
): Promise<void> {
  return refreshMaterializedViews(sql, reviewMaterializedViews, options);
}

/** Both materialized views refreshed CONCURRENTLY every `intervalMs`. */
export function openReviewViewRefresher(
  sql: SqlClient,
  options: { intervalMs?: number; clock?: Clock; logger?: Logger } = {},
): ViewRefresher {
  return ViewRefresher.open(sql, { views: reviewMaterializedViews, ...options });
}
