import type { Migration } from '../../engines/sql/migrations.js';

/**
 * The reviews feature's tables: per-review and per-purchase rows, their incremental aggregates
 * and the materialized views over them (`read-models.ts`).
 *
 * Until the marketplace left the cqrs library, the migration `cqrs#1` created the same objects
 * under `cdp_` names in every database. `reviews-app#1` therefore has two paths, chosen by the
 * database's own record:
 * - `cqrs#1` is recorded: the objects exist with their rows; they are renamed to their `app_`
 *   names (tables, materialized views, indexes and the constraints behind them), which keeps
 *   every row and every dependency (the views follow the tables they read). Nothing else
 *   changes: the events, the subscriptions' checkpoints and the snapshots are the events
 *   module's, and projection and decider names are unchanged.
 * - otherwise: the objects are created empty.
 * Both paths end in the same schema (`test/app/reviews/migrate-forward.test.ts` compares them).
 *
 * The row `cqrs#1` stays in `cdp_migrations` as the record of where the objects came from. No
 * code loads migrations of module `cqrs` any more, so the runner does not judge that row; the
 * module name `cqrs` is retired (docs/decisions/marketplace-out-of-cqrs.md): a later migration
 * of the cqrs library takes another module name, because a database that has not yet run
 * `reviews-app#1` still holds the old `cqrs#1`, and the runner would refuse a new text under it.
 */
export const reviewsMigrations: Migration[] = [
  {
    module: 'reviews-app',
    version: 1,
    name: 'reviews, ratings, purchases, spend: take over the cqrs#1 tables or create them',
    sql: `
DO $migration$
DECLARE
  con record;
BEGIN
  IF EXISTS (SELECT 1 FROM cdp_migrations WHERE module = 'cqrs' AND version = 1) THEN
    ALTER TABLE cdp_reviews RENAME TO app_reviews;
    ALTER INDEX cdp_reviews_pkey RENAME TO app_reviews_pkey;
    ALTER TABLE cdp_course_ratings RENAME TO app_course_ratings;
    ALTER INDEX cdp_course_ratings_pkey RENAME TO app_course_ratings_pkey;
    ALTER INDEX cdp_course_ratings_topic_rank RENAME TO app_course_ratings_topic_rank;
    ALTER TABLE cdp_purchases RENAME TO app_purchases;
    ALTER INDEX cdp_purchases_pkey RENAME TO app_purchases_pkey;
    ALTER TABLE cdp_customer_spend RENAME TO app_customer_spend;
    ALTER INDEX cdp_customer_spend_pkey RENAME TO app_customer_spend_pkey;
    ALTER MATERIALIZED VIEW cdp_course_ratings_mv RENAME TO app_course_ratings_mv;
    ALTER INDEX cdp_course_ratings_mv_key RENAME TO app_course_ratings_mv_key;
    ALTER MATERIALIZED VIEW cdp_customer_spend_mv RENAME TO app_customer_spend_mv;
    ALTER INDEX cdp_customer_spend_mv_key RENAME TO app_customer_spend_mv_key;
    -- Constraints not behind an index keep the name they were created with; PostgreSQL 18
    -- (PGlite) names NOT NULL constraints too (cdp_reviews_topic_not_null, ...).
    FOR con IN
      SELECT conrelid::regclass::text AS rel, conname AS name FROM pg_constraint
       WHERE conrelid IN ('app_reviews'::regclass, 'app_course_ratings'::regclass,
                          'app_purchases'::regclass, 'app_customer_spend'::regclass)
         AND starts_with(conname, 'cdp_')
    LOOP
      EXECUTE format('ALTER TABLE %s RENAME CONSTRAINT %I TO %I',
                     con.rel, con.name, 'app_' || substr(con.name, 5));
    END LOOP;
  ELSE
    CREATE TABLE app_reviews (
      course_id text NOT NULL,
      student_id text NOT NULL,
      topic text NOT NULL,
      rating smallint NOT NULL,
      PRIMARY KEY (course_id, student_id)
    );
    CREATE TABLE app_course_ratings (
      course_id text PRIMARY KEY,
      topic text NOT NULL,
      review_count bigint NOT NULL,
      rating_sum bigint NOT NULL,
      avg_rating numeric GENERATED ALWAYS AS (
        CASE WHEN review_count > 0 THEN round(rating_sum::numeric / review_count, 3) END) STORED
    );
    CREATE INDEX app_course_ratings_topic_rank ON app_course_ratings (topic, avg_rating DESC NULLS LAST, review_count DESC);
    CREATE TABLE app_purchases (
      event_id uuid PRIMARY KEY,
      customer_id text NOT NULL,
      course_id text NOT NULL,
      amount_cents bigint NOT NULL
    );
    CREATE TABLE app_customer_spend (
      customer_id text PRIMARY KEY,
      total_cents bigint NOT NULL,
      purchases bigint NOT NULL
    );
    CREATE MATERIALIZED VIEW app_course_ratings_mv AS
      SELECT course_id, min(topic) AS topic, count(*) AS review_count, round(avg(rating), 3) AS avg_rating
        FROM app_reviews GROUP BY course_id;
    CREATE UNIQUE INDEX app_course_ratings_mv_key ON app_course_ratings_mv (course_id);
    CREATE MATERIALIZED VIEW app_customer_spend_mv AS
      SELECT customer_id, sum(amount_cents) AS total_cents, count(*) AS purchases
        FROM app_purchases GROUP BY customer_id;
    CREATE UNIQUE INDEX app_customer_spend_mv_key ON app_customer_spend_mv (customer_id);
  END IF;
END
$migration$;`,
  },
  {
    module: 'reviews-app',
    version: 2,
    name: "purchases and spend count the purchase saga's charges and refunds",
    sql: `
ALTER TABLE app_purchases ADD COLUMN units integer NOT NULL DEFAULT 1;
-- The saga's charges (+1 purchase) and their refunds (-1, the amount given back) already in the
-- event log: projected here once, as the projection does from now on.
INSERT INTO app_purchases (event_id, customer_id, course_id, amount_cents, units)
  SELECT event_id, data->>'studentId', data->>'courseId',
         CASE WHEN type = 'WalletCharged' THEN 1 ELSE -1 END * (data->>'amountCents')::bigint,
         CASE WHEN type = 'WalletCharged' THEN 1 ELSE -1 END
    FROM cdp_events WHERE type IN ('WalletCharged', 'ChargeRefunded')
  ON CONFLICT (event_id) DO NOTHING;
DELETE FROM app_customer_spend;
INSERT INTO app_customer_spend (customer_id, total_cents, purchases)
  SELECT customer_id, sum(amount_cents), sum(units) FROM app_purchases GROUP BY customer_id;
DROP MATERIALIZED VIEW app_customer_spend_mv;
CREATE MATERIALIZED VIEW app_customer_spend_mv AS
  SELECT customer_id, sum(amount_cents) AS total_cents, sum(units) AS purchases
    FROM app_purchases GROUP BY customer_id;
CREATE UNIQUE INDEX app_customer_spend_mv_key ON app_customer_spend_mv (customer_id);`,
  },
];
