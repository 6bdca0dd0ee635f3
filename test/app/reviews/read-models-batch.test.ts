import fc from 'fast-check';
import { beforeAll, expect, it } from 'vitest';
import { reviewsMigrations } from '../../../src/app/reviews/migrations.js';
import {
  courseRating,
  courseRatingsProjection,
  courseRatingsProjectionInto,
  customerSpendProjection,
  customerSpendProjectionInto,
  refreshReviewViews,
  topCourses,
} from '../../../src/app/reviews/read-models.js';
import {
  openAsyncProjection,
  ReadModelQueries,
  type SqlProjection,
} from '../../../src/cqrs/index.js';
import type { SqlClient, SqlTransaction } from '../../../src/engines/sql/sql-client.js';
import type { RecordedEvent, SqlEventStore } from '../../../src/events/index.js';
import { describeOnSqlEventStores } from '../../support/sql-event-stores.js';

/**
 * The set-based batch apply of the course-ratings and customer-spend projections must have
 * exactly the effects of applying the same events one by one, on any sequence of events,
 * including those that do nothing one by one (a second submission of a review, a revision or
 * withdrawal of a review that is not there, a redelivered purchase). Both are checked against
 * a plain in-memory model of the one-by-one semantics, table by table.
 */

// ---- The reference model: one event at a time ---------------------------------------------

type Ev =
  | { type: 'ReviewSubmitted' | 'ReviewRevised'; c: number; s: number; t: number; r: number }
  | { type: 'ReviewWithdrawn'; c: number; s: number }
  | { type: 'CoursePurchased'; id: number; s: number; c: number; amount: number };

interface Tables {
  reviews: [string, string, string, number][];
  ratings: [string, string, number, number, number | null][];
  purchases: [string, string, string, number][];
  spend: [string, number, number][];
}

const course = (c: number) => `course-${c}`;
const student = (s: number) => `student-${s}`;
const topic = (t: number) => `topic-${t}`;
const eventId = (id: number) => `00000000-0000-7000-8000-${id.toString(16).padStart(12, '0')}`;

function model(events: readonly Ev[]): Tables {
  const reviews = new Map<string, { c: string; s: string; topic: string; rating: number }>();
  const ratings = new Map<string, { topic: string; count: number; sum: number }>();
  const purchases = new Map<string, { customer: string; course: string; amount: number }>();
  const spend = new Map<string, { total: number; n: number }>();
  for (const e of events) {
    if (e.type === 'CoursePurchased') {
      const id = eventId(e.id);
      if (purchases.has(id)) continue;
      purchases.set(id, { customer: student(e.s), course: course(e.c), amount: e.amount });
      const sp = spend.get(student(e.s)) ?? { total: 0, n: 0 };
      spend.set(student(e.s), { total: sp.total + e.amount, n: sp.n + 1 });
      continue;
    }
    const key = `${course(e.c)}|${student(e.s)}`;
    const row = reviews.get(key);
    const agg = ratings.get(course(e.c));
    if (e.type === 'ReviewSubmitted') {
      if (row) continue;
      reviews.set(key, { c: course(e.c), s: student(e.s), topic: topic(e.t), rating: e.r });
      if (agg) {
        agg.count++;
        agg.sum += e.r;
      } else ratings.set(course(e.c), { topic: topic(e.t), count: 1, sum: e.r });
    } else if (e.type === 'ReviewRevised') {
      if (!row || !agg) continue;
      agg.sum += e.r - row.rating;
      row.rating = e.r;
    } else {
      if (!row || !agg) continue;
      reviews.delete(key);
      agg.count--;
      agg.sum -= row.rating;
    }
  }
  const byKey = <T>(m: Map<string, T>) => [...m.entries()].sort(([a], [b]) => (a < b ? -1 : 1));
  return {
    reviews: byKey(reviews).map(([, r]) => [r.c, r.s, r.topic, r.rating]),
    ratings: byKey(ratings).map(([c, a]) => [
      c,
      a.topic,
      a.count,
      a.sum,
      a.count > 0 ? Math.round((a.sum / a.count) * 1000) / 1000 : null,
    ]),
    purchases: byKey(purchases).map(([id, p]) => [id, p.customer, p.course, p.amount]),
    spend: byKey(spend).map(([c, s]) => [c, s.total, s.n]),
  };
}

// ---- Events as the store records them ---------------------------------------------------

function recorded(e: Ev, position: number): RecordedEvent {
  const data =
    e.type === 'CoursePurchased'
      ? { studentId: student(e.s), courseId: course(e.c), amountCents: e.amount }
      : e.type === 'ReviewWithdrawn'
        ? { courseId: course(e.c), topic: topic(0), studentId: student(e.s), rating: 1 }
        : { courseId: course(e.c), topic: topic(e.t), studentId: student(e.s), rating: e.r };
  return {
    id: e.type === 'CoursePurchased' ? eventId(e.id) : eventId(100_000 + position),
    streamId: `s-${position}`,
    version: 1,
    position,
    type: e.type,
    data,
    metadata: {},
    schemaVersion: 1,
    storedSchemaVersion: 1,
    recordedAt: 0,
  } as RecordedEvent;
}

// Few courses, students and event ids, so that keys collide often within a batch.
const evArb: fc.Arbitrary<Ev> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      type: fc.constant('ReviewSubmitted' as const),
      c: fc.nat(2),
      s: fc.nat(2),
      t: fc.nat(2),
      r: fc.integer({ min: 1, max: 5 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      type: fc.constant('ReviewRevised' as const),
      c: fc.nat(2),
      s: fc.nat(2),
      t: fc.nat(2),
      r: fc.integer({ min: 1, max: 5 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      type: fc.constant('ReviewWithdrawn' as const),
      c: fc.nat(2),
      s: fc.nat(2),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      type: fc.constant('CoursePurchased' as const),
      id: fc.nat(30),
      s: fc.nat(4),
      c: fc.nat(3),
      amount: fc.integer({ min: 1, max: 10_000 }),
    }),
  },
);

// ---- Reading the tables back ------------------------------------------------------------

async function dump(
  q: SqlClient | SqlTransaction,
  t: { reviews: string; ratings: string; purchases: string; spend: string },
): Promise<Tables> {
  const rows = async (text: string) => (await q.query<Record<string, unknown>>(text)).rows;
  return {
    reviews: (
      await rows(
        `SELECT course_id, student_id, topic, rating FROM ${t.reviews} ORDER BY course_id || '|' || student_id`,
      )
    ).map((r) => [String(r.course_id), String(r.student_id), String(r.topic), Number(r.rating)]),
    ratings: (
      await rows(
        `SELECT course_id, topic, review_count, rating_sum, avg_rating FROM ${t.ratings} ORDER BY course_id`,
      )
    ).map((r) => [
      String(r.course_id),
      String(r.topic),
      Number(r.review_count),
      Number(r.rating_sum),
      r.avg_rating === null ? null : Number(r.avg_rating),
    ]),
    purchases: (
      await rows(
        `SELECT event_id, customer_id, course_id, amount_cents FROM ${t.purchases} ORDER BY event_id`,
      )
    ).map((r) => [
      String(r.event_id),
      String(r.customer_id),
      String(r.course_id),
      Number(r.amount_cents),
    ]),
    spend: (
      await rows(`SELECT customer_id, total_cents, purchases FROM ${t.spend} ORDER BY customer_id`)
    ).map((r) => [String(r.customer_id), Number(r.total_cents), Number(r.purchases)]),
  };
}

const tableSet = (prefix: string) => ({
  reviews: `${prefix}_reviews`,
  ratings: `${prefix}_ratings`,
  purchases: `${prefix}_purchases`,
  spend: `${prefix}_spend`,
});

function projectionsInto(t: ReturnType<typeof tableSet>): SqlProjection[] {
  return [
    courseRatingsProjectionInto({ reviews: t.reviews, ratings: t.ratings }),
    customerSpendProjectionInto({ purchases: t.purchases, spend: t.spend }),
  ];
}

const wanted = (p: SqlProjection, events: readonly RecordedEvent[]) =>
  events.filter((e) => !p.types || p.types.includes(e.type));

function batchSuite(getSql: () => SqlClient, getStore: () => SqlEventStore, runs: number): void {
  const one = tableSet('pe');
  const many = tableSet('ba');

  beforeAll(async () => {
    const sql = getSql();
    for (const t of [one, many]) {
      await sql.exec(`
        CREATE TABLE ${t.reviews} (LIKE app_reviews INCLUDING ALL);
        CREATE TABLE ${t.ratings} (LIKE app_course_ratings INCLUDING ALL);
        CREATE TABLE ${t.purchases} (LIKE app_purchases INCLUDING ALL);
        CREATE TABLE ${t.spend} (LIKE app_customer_spend INCLUDING ALL);`);
    }
  });

  it('batched apply equals one-by-one apply and the model, on random event sequences', {
    timeout: 240_000,
  }, async () => {
    const sql = getSql();
    await fc.assert(
      fc.asyncProperty(
        fc.array(evArb, { minLength: 1, maxLength: 60 }),
        fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 6 }),
        async (evs, cuts) => {
          const events = evs.map((e, i) => recorded(e, i + 1));
          await sql.exec(`TRUNCATE ${[...Object.values(one), ...Object.values(many)].join(', ')}`);
          // One by one, all in one transaction.
          await sql.transaction(async (tx) => {
            for (const p of projectionsInto(one))
              for (const e of wanted(p, events)) await p.apply(e, tx);
          });
          // In batches of the given sizes (cycled), each batch in its own transaction, so that
          // later batches start from rows earlier ones wrote.
          for (let i = 0, k = 0; i < events.length; k++) {
            const size = cuts[k % cuts.length]!;
            const chunk = events.slice(i, i + size);
            i += size;
            await sql.transaction(async (tx) => {
              for (const p of projectionsInto(many)) {
                const mine = wanted(p, chunk);
                if (mine.length > 0) await p.applyBatch!(mine, tx);
              }
            });
          }
          const expected = model(evs);
          expect(await dump(sql, one)).toEqual(expected);
          expect(await dump(sql, many)).toEqual(expected);
        },
      ),
      { numRuns: runs },
    );
  });

  it('the async projection applies its batches set-based, with the same read model', {
    timeout: 120_000,
  }, async () => {
    const sql = getSql();
    const store = getStore();
    const evs = fc.sample(fc.array(evArb, { minLength: 300, maxLength: 300 }), { seed: 42 })[0]!;
    // Submissions first in some streams, so that later batches revise and withdraw rows that
    // earlier batches wrote; purchases get distinct ids (the store rejects none of them).
    let last = 0;
    for (const [i, e] of evs.entries()) {
      // A course has one topic (as the decider keeps it): the materialized view takes the least
      // topic of a course's reviews, the incremental row its first one, so they agree then.
      const ev: Ev =
        e.type === 'CoursePurchased'
          ? { ...e, id: 1000 + i }
          : e.type === 'ReviewWithdrawn'
            ? e
            : { ...e, t: e.c % 3 };
      evs[i] = ev;
      const r = recorded(ev, i + 1);
      const res = await store.append(r.streamId, [
        {
          type: r.type,
          data: r.data,
          ...(ev.type === 'CoursePurchased' ? { id: r.id } : {}),
        },
      ]);
      last = res.position;
    }
    const batches: number[] = [];
    const counting = <P extends SqlProjection>(p: P): P => ({
      ...p,
      async applyBatch(events: readonly RecordedEvent[], tx: SqlTransaction) {
        batches.push(events.length);
        await p.applyBatch!(events, tx);
      },
    });
    const subs = [
      await openAsyncProjection(store, counting(courseRatingsProjection), {
        pollIntervalMs: 20,
        batchSize: 37,
      }),
      await openAsyncProjection(store, counting(customerSpendProjection), {
        pollIntervalMs: 20,
        batchSize: 37,
      }),
    ];
    try {
      const queries = new ReadModelQueries(sql);
      for (const name of ['course-ratings', 'customer-spend']) {
        await queries.query(name, async () => undefined, { after: last, timeoutMs: 60_000 });
      }
    } finally {
      for (const s of subs) await s.close();
    }
    // Batches of several events went through applyBatch, and the checkpoint is at the end.
    expect(batches.filter((n) => n > 1).length).toBeGreaterThan(4);
    const expected = model(evs);
    expect(
      await dump(sql, {
        reviews: 'app_reviews',
        ratings: 'app_course_ratings',
        purchases: 'app_purchases',
        spend: 'app_customer_spend',
      }),
    ).toEqual(expected);
    // Top courses per topic and per-course ratings agree with the refreshed materialized view.
    await refreshReviewViews(sql);
    for (let t = 0; t <= 2; t++) {
      const inc = await topCourses(sql, topic(t), 10);
      expect(inc).toEqual(await topCourses(sql, topic(t), 10, 'refreshed'));
      const fromModel = expected.ratings
        .filter((r) => r[1] === topic(t) && r[2] > 0)
        .sort((a, b) => b[4]! - a[4]! || b[2] - a[2] || (a[0] < b[0] ? -1 : 1))
        .map((r) => r[0]);
      expect(inc.map((r) => r.courseId)).toEqual(fromModel);
    }
    for (let c = 0; c <= 2; c++) {
      expect(await courseRating(sql, course(c))).toEqual(
        await courseRating(sql, course(c), 'refreshed'),
      );
    }
  });

  it('a batch that fails is applied one event per transaction instead, same result', {
    timeout: 60_000,
  }, async () => {
    const sql = getSql();
    const store = getStore();
    const t = tableSet('fb');
    await sql.exec(`
      CREATE TABLE ${t.reviews} (LIKE app_reviews INCLUDING ALL);
      CREATE TABLE ${t.ratings} (LIKE app_course_ratings INCLUDING ALL);`);
    const inner = courseRatingsProjectionInto({ reviews: t.reviews, ratings: t.ratings });
    let failed = 0;
    const failing: SqlProjection = {
      ...inner,
      name: 'course-ratings-fallback',
      async applyBatch(events, tx) {
        await inner.applyBatch!(events, tx);
        failed++;
        throw new Error('batch refused');
      },
    };
    const { position } = await store.append('fallback-probe', [{ type: 'Probe', data: {} }]);
    const sub = await openAsyncProjection(store, failing, { pollIntervalMs: 20, batchSize: 50 });
    try {
      await new ReadModelQueries(sql).query('course-ratings-fallback', async () => undefined, {
        after: position,
        timeoutMs: 60_000,
      });
    } finally {
      await sub.close();
    }
    expect(failed).toBeGreaterThan(0);
    const rows = await dump(sql, { ...t, purchases: 'app_purchases', spend: 'app_customer_spend' });
    const byBatch = await dump(sql, {
      reviews: 'app_reviews',
      ratings: 'app_course_ratings',
      purchases: 'app_purchases',
      spend: 'app_customer_spend',
    });
    expect(rows.reviews).toEqual(byBatch.reviews);
    expect(rows.ratings).toEqual(byBatch.ratings);
    expect(rows.reviews.length).toBeGreaterThan(0);
  });
}

describeOnSqlEventStores(
  'review views, batched apply',
  { migrations: reviewsMigrations, prefix: 'cdp_views', max: 4 },
  (getSql, getStore) => batchSuite(getSql, getStore, 100),
);
