import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { CommandHandler, openAsyncProjection, ReadModelQueries } from '../../cqrs/index.js';
import {
  eventStoreMigrations,
  SqlEventStore,
  type SqlSubscription,
  subscriptionPositions,
} from '../../events/index.js';
import { courseNotFound, documented, examples, type RouteDoc, refusal } from '../api-docs.js';
import type { Principal } from '../auth.js';
import { projectionRebuildDemo } from '../demos/projection-rebuild.js';
import type { PlatformFeature } from '../feature.js';
import { ForbiddenError, parseInput, quote } from '../http-errors.js';
import {
  courseReviews,
  PayForCourse,
  ReviseReview,
  reviewStream,
  SubmitReview,
  studentWallet,
  TopUpWallet,
  WithdrawReview,
  walletStream,
} from '../reviews/deciders.js';
import { reviewsMigrations } from '../reviews/migrations.js';
import {
  courseRating,
  courseRatingsProjection,
  customerSpend,
  customerSpendProjection,
  openReviewViewRefresher,
  topCourses,
} from '../reviews/read-models.js';
import type { CatalogService } from './catalog.js';
import type { EnrollmentService } from './enrollment.js';

/**
 * Reviews and ratings written through commands on an event-sourced model and read from
 * read models (CQRS + materialized views), and a student wallet whose balance is the sum of
 * its events. Writes return a consistency token (`position`); reads accept `?after=<token>`.
 */
const courseParam = z.object({ courseId: z.string().min(1).max(100) });
const studentParam = z.object({ studentId: z.string().min(1).max(100) });
const topicParam = z.object({ topic: z.string().min(1).max(100) });
const readQuery = z.object({
  after: z.coerce.number().int().min(0).optional(),
  source: z.enum(['incremental', 'refreshed']).default('incremental'),
  limit: z.coerce.number().int().min(1).max(100).default(10),
});

// The student is the caller (the key's subject); the topic and the price come from the catalog.
const ratingBody = z.strictObject({ rating: z.number().int().min(1).max(5) });
const topUpBody = z.strictObject({ amountCents: z.number().int().positive().max(1_000_000_00) });
const purchaseBody = z.strictObject({ courseId: z.string().min(1).max(100) });

const written = z.object({ position: z.number().int(), version: z.number().int() });
const walletWritten = z.object({ position: z.number().int(), balanceCents: z.number().int() });
const rating = z.object({
  courseId: z.string(),
  topic: z.string().optional(),
  reviewCount: z.number().int(),
  averageRating: z.number().nullable(),
});
const exampleRating = {
  courseId: examples.courseId,
  topic: 'databases',
  reviewCount: 12,
  averageRating: 4.5,
};
const notThem = refusal(
  403,
  'FORBIDDEN',
  `this key acts as student "demo-student-2", not as student "${examples.student}"`,
);
const timeout = refusal(
  504,
  'TIMEOUT',
  'the read model did not reach position 42 within 5000 ms; retry, or read without after',
);
const token =
  'Writes return a consistency token, `position`: pass it as `?after=<position>` to a read to see that write (read your writes).';
const ratingBodyExamples = { five: { summary: 'Five stars', value: { rating: 5 } } };
const readDoc = (d: Omit<RouteDoc, 'tags' | 'query'>) =>
  documented({ ...d, tags: ['reviews'], query: readQuery, errors: [...(d.errors ?? []), timeout] });

const docs = {
  submit: documented({
    summary: 'Review a course',
    description: `Submits the calling student's rating (1 to 5) of a course they are enrolled in, as an event on the course's event-sourced stream. ${token}`,
    tags: ['reviews'],
    roles: ['student'],
    access: "The reviewer is the key's subject.",
    params: courseParam,
    body: ratingBody,
    bodyExamples: ratingBodyExamples,
    responses: {
      201: {
        description: 'The review is recorded',
        schema: written,
        example: { position: 42, version: 3 },
      },
    },
    errors: [
      refusal(
        403,
        'NOT_ENROLLED',
        `student "${examples.student}" is not enrolled in course ${examples.courseId}; enroll first (POST /api/enrollment/enrollments)`,
      ),
      courseNotFound,
      refusal(
        409,
        'ALREADY_REVIEWED',
        `student ${examples.student} already reviewed course ${examples.courseId}; revise that review instead (PUT)`,
      ),
    ],
  }),
  revise: documented({
    summary: 'Revise a review',
    description: `Changes the rating of a review the student submitted. ${token}`,
    tags: ['reviews'],
    roles: ['student'],
    access: 'A student revises only their own review.',
    params: courseParam.extend(studentParam.shape),
    body: ratingBody,
    bodyExamples: { four: { summary: 'Four stars', value: { rating: 4 } } },
    responses: {
      200: { description: 'The revision', schema: written, example: { position: 43, version: 4 } },
    },
    errors: [
      notThem,
      courseNotFound,
      refusal(
        404,
        'REVIEW_NOT_FOUND',
        `student ${examples.student} has no review of course ${examples.courseId} to revise; submit one first (POST)`,
      ),
    ],
  }),
  withdraw: documented({
    summary: 'Withdraw a review',
    description: `Withdraws the student's review; the course's rating no longer counts it. ${token}`,
    tags: ['reviews'],
    roles: ['student'],
    access: 'A student withdraws only their own review.',
    params: courseParam.extend(studentParam.shape),
    responses: {
      200: {
        description: 'The withdrawal',
        schema: written,
        example: { position: 44, version: 5 },
      },
    },
    errors: [
      notThem,
      courseNotFound,
      refusal(
        404,
        'REVIEW_NOT_FOUND',
        `student ${examples.student} has no review of course ${examples.courseId}`,
      ),
    ],
  }),
  rating: readDoc({
    summary: "A course's rating",
    description:
      'The review count and average rating of a course, from a read model: `source=incremental` (a projection, updated as events arrive) or `refreshed` (a materialized view refreshed every minute). A course with no review answers reviewCount 0.',
    params: courseParam,
    responses: {
      200: { description: 'The rating', schema: rating, example: exampleRating },
    },
  }),
  top: readDoc({
    summary: 'Top-rated courses of a topic',
    description:
      "The best-rated courses of a topic, from the same read models as a course's rating (`source`, `after`, `limit`).",
    params: topicParam,
    responses: {
      200: {
        description: 'The courses, best first',
        schema: z.object({ courses: z.array(rating) }),
        example: { courses: [exampleRating] },
      },
    },
  }),
  topUp: documented({
    summary: "Top up a student's wallet",
    description:
      'Adds money to the wallet, an event-sourced stream whose balance is the sum of its events.',
    tags: ['reviews'],
    roles: ['student'],
    access: 'A student tops up only their own wallet.',
    params: studentParam,
    body: topUpBody,
    bodyExamples: { tenEuros: { summary: 'Add 10.00', value: { amountCents: 1000 } } },
    responses: {
      201: {
        description: 'The new balance',
        schema: walletWritten,
        example: { position: 45, balanceCents: 6000 },
      },
    },
    errors: [notThem],
  }),
  purchase: documented({
    summary: 'Buy a course from the wallet',
    description:
      'Pays for a course at its catalog price (the price never comes from the client). Buying a course already bought changes nothing.',
    tags: ['reviews'],
    roles: ['student'],
    access: 'A student buys only from their own wallet.',
    params: studentParam,
    body: purchaseBody,
    bodyExamples: { course: { summary: 'A course', value: { courseId: examples.courseId } } },
    responses: {
      201: {
        description: 'The new balance',
        schema: walletWritten,
        example: { position: 46, balanceCents: 1100 },
      },
    },
    errors: [
      notThem,
      courseNotFound,
      refusal(
        409,
        'INSUFFICIENT_FUNDS',
        `wallet of ${examples.student} holds 1000 cents, the course costs 4900: top it up first`,
      ),
    ],
  }),
  wallet: documented({
    summary: "A student's wallet",
    description:
      'The balance, the courses bought, the spend view (updated inline with each purchase) and the last 100 events, newest first.',
    tags: ['reviews'],
    roles: ['student', 'viewer'],
    access: 'A student reads only their own wallet.',
    params: studentParam,
    responses: {
      200: {
        description: 'The wallet',
        schema: z.object({
          studentId: z.string(),
          balanceCents: z.number().int(),
          courses: z.array(z.string()),
          spend: z.object({
            customerId: z.string(),
            totalCents: z.number(),
            purchases: z.number(),
          }),
          history: z.array(
            z.object({
              version: z.number().int(),
              position: z.number().int(),
              type: z.string(),
              data: z.unknown(),
              recordedAt: z.iso.datetime(),
            }),
          ),
        }),
        example: {
          studentId: examples.student,
          balanceCents: 1100,
          courses: [examples.courseId],
          spend: { customerId: examples.student, totalCents: 4900, purchases: 1 },
          history: [
            {
              version: 2,
              position: 46,
              type: 'CoursePurchased',
              data: { studentId: examples.student, courseId: examples.courseId, amountCents: 4900 },
              recordedAt: '2026-12-07T16:00:00.000Z',
            },
          ],
        },
      },
    },
    errors: [notThem],
  }),
};

/** A student acts on their own reviews and wallet; an admin on anyone's; a viewer reads. */
function mustActFor(p: Principal, studentId: string, read = false): void {
  if (p.role === 'admin' || (read && p.role === 'viewer')) return;
  if (p.role === 'student' && p.subject === studentId) return;
  throw new ForbiddenError(
    `this key acts as ${p.role} ${quote(p.subject)}, not as student ${quote(studentId)}`,
  );
}

export const reviewsFeature: PlatformFeature = {
  name: 'reviews',
  description: 'Course reviews and student wallets: event sourcing, CQRS, materialized views',
  docs: [
    'docs/patterns/event-sourcing.md',
    'docs/patterns/cqrs.md',
    'docs/patterns/materialized-view.md',
  ],
  migrations: [...eventStoreMigrations, ...reviewsMigrations],
  async start(ctx) {
    const { sql, clock, logger, registry, http, lifecycle } = ctx;
    const store = new SqlEventStore(sql, { clock, logger, registry });
    const reviews = new CommandHandler({
      store,
      decider: courseReviews,
      streamId: reviewStream,
      snapshotEvery: 100,
      clock,
      logger,
      registry,
    });
    const wallets = new CommandHandler({
      store,
      decider: studentWallet,
      streamId: walletStream,
      snapshotEvery: 100,
      // The spend view is inline: consistent with the purchase at commit.
      inline: [customerSpendProjection],
      clock,
      logger,
      registry,
    });
    const subs: SqlSubscription[] = [
      await openAsyncProjection(store, courseRatingsProjection, { clock, logger, registry }),
    ];
    const refresher = openReviewViewRefresher(sql, { intervalMs: 60_000, clock, logger });
    lifecycle.defer('reviews', async () => {
      await refresher.close();
      for (const s of subs) await s.close();
    });
    const queries = new ReadModelQueries(sql, { clock, inline: ['customer-spend'] });

    const catalog = () => ctx.services.get('catalog') as CatalogService;
    http.post('/api/reviews/courses/:courseId/reviews', docs.submit, async (req, reply) => {
      const by = await ctx.auth.require(req, 'student');
      const { courseId } = parseInput(courseParam, req.params, 'path');
      const { rating } = parseInput(ratingBody, req.body, 'body');
      const course = await catalog().require(courseId);
      const enrollment = ctx.services.get('enrollment') as EnrollmentService | undefined;
      if (!(await enrollment?.isEnrolled(by.subject, course.id)))
        throw new ForbiddenError(
          `student ${quote(by.subject)} is not enrolled in course ${course.id}; enroll first (POST /api/enrollment/enrollments)`,
          'NOT_ENROLLED',
        );
      const cmd = SubmitReview.parse({
        courseId: course.id,
        topic: course.topic,
        studentId: by.subject,
        rating,
      });
      const r = await reviews.handle(cmd);
      return reply.status(201).send({ position: r.position, version: r.version });
    });
    http.put('/api/reviews/courses/:courseId/reviews/:studentId', docs.revise, async (req) => {
      const by = await ctx.auth.require(req, 'student');
      const { courseId } = parseInput(courseParam, req.params, 'path');
      const { studentId } = parseInput(studentParam, req.params, 'path');
      mustActFor(by, studentId);
      const { rating } = parseInput(ratingBody, req.body, 'body');
      const course = await catalog().require(courseId);
      const r = await reviews.handle(
        ReviseReview.parse({ courseId: course.id, studentId, rating }),
      );
      return { position: r.position, version: r.version };
    });
    http.delete('/api/reviews/courses/:courseId/reviews/:studentId', docs.withdraw, async (req) => {
      const by = await ctx.auth.require(req, 'student');
      const { courseId } = parseInput(courseParam, req.params, 'path');
      const { studentId } = parseInput(studentParam, req.params, 'path');
      mustActFor(by, studentId);
      const course = await catalog().require(courseId);
      const r = await reviews.handle(WithdrawReview.parse({ courseId: course.id, studentId }));
      return { position: r.position, version: r.version };
    });
    http.get('/api/reviews/courses/:courseId/rating', docs.rating, async (req) => {
      const { courseId } = parseInput(courseParam, req.params, 'path');
      const q = parseInput(readQuery, req.query, 'query');
      const rating = await queries.query(
        'course-ratings',
        (db) => courseRating(db, courseId, q.source),
        {
          after: q.after,
        },
      );
      return rating ?? { courseId, reviewCount: 0, averageRating: null };
    });
    http.get('/api/reviews/topics/:topic/top', docs.top, async (req) => {
      const { topic } = parseInput(topicParam, req.params, 'path');
      const q = parseInput(readQuery, req.query, 'query');
      return {
        courses: await queries.query(
          'course-ratings',
          (db) => topCourses(db, topic, q.limit, q.source),
          {
            after: q.after,
          },
        ),
      };
    });
    http.post('/api/reviews/wallets/:studentId/top-ups', docs.topUp, async (req, reply) => {
      const by = await ctx.auth.require(req, 'student');
      const { studentId } = parseInput(studentParam, req.params, 'path');
      mustActFor(by, studentId);
      const { amountCents } = parseInput(topUpBody, req.body, 'body');
      const r = await wallets.handle(TopUpWallet.parse({ studentId, amountCents }));
      return reply.status(201).send({ position: r.position, balanceCents: r.state.balanceCents });
    });
    http.post('/api/reviews/wallets/:studentId/purchases', docs.purchase, async (req, reply) => {
      const by = await ctx.auth.require(req, 'student');
      const { studentId } = parseInput(studentParam, req.params, 'path');
      mustActFor(by, studentId);
      const { courseId } = parseInput(purchaseBody, req.body, 'body');
      const course = await catalog().require(courseId);
      const r = await wallets.handle(
        PayForCourse.parse({ studentId, courseId: course.id, amountCents: course.priceCents }),
      );
      return reply.status(201).send({ position: r.position, balanceCents: r.state.balanceCents });
    });
    http.get('/api/reviews/wallets/:studentId', docs.wallet, async (req) => {
      const by = await ctx.auth.require(req, 'student', 'viewer');
      const { studentId } = parseInput(studentParam, req.params, 'path');
      mustActFor(by, studentId, true);
      const loaded = await wallets.load(walletStream({ studentId }));
      const history = await store.readStream(walletStream({ studentId }), {
        direction: 'backward',
        limit: 100,
      });
      return {
        studentId,
        balanceCents: loaded.state.balanceCents,
        courses: loaded.state.courses,
        spend: await customerSpend(sql, studentId),
        history: history.map((e) => ({
          version: e.version,
          position: e.position,
          type: e.type,
          data: e.data,
          recordedAt: new Date(e.recordedAt).toISOString(),
        })),
      };
    });

    let lastCount = 0;
    let lastAt = clock.now();
    let readCourse: string | undefined;
    const rebuildDemo = projectionRebuildDemo({
      store,
      projection: courseRatingsProjection,
      read: async () => {
        readCourse ??= (await catalog().list({ limit: 1 }))[0]?.id ?? 'none';
        return courseRating(sql, readCourse);
      },
      caughtUp: async () => {
        for (let i = 0; i < 200; i++) {
          const { rows } = await sql.query<{ top: number | null }>(
            'SELECT max(position) AS top FROM cdp_events',
          );
          const at = (await subscriptionPositions(sql)).get('projection:course-ratings') ?? 0;
          if (at >= Number(rows[0]?.top ?? 0)) return;
          await sleep(50);
        }
      },
      count: async () => {
        const { rows } = await sql.query<{ n: number; reviews: number }>(
          'SELECT count(*)::int AS n, coalesce(sum(review_count), 0)::int AS reviews FROM app_course_ratings',
        );
        return { rows: rows[0]!.n, reviews: rows[0]!.reviews };
      },
      // Up to 200 reviews by demonstration students, spread over the catalog, once per database.
      seed: async () => {
        const { rows } = await sql.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM cdp_events WHERE type = 'ReviewSubmitted'",
        );
        const want = 200 - rows[0]!.n;
        if (want <= 0) return 0;
        const courses = await catalog().list({ limit: 20 });
        let written = 0;
        for (let i = 0; i < want && courses.length > 0; i++) {
          const course = courses[i % courses.length]!;
          const studentId = `demo-reader-${i}-${lastAt}`;
          await reviews.handle(
            SubmitReview.parse({
              courseId: course.id,
              topic: course.topic,
              studentId,
              rating: 1 + ((i * 7) % 5),
            }),
          );
          written++;
        }
        return written;
      },
    });
    return {
      service: { store, reviews, wallets, queries },
      demos: [rebuildDemo],
      panel: async () => {
        const { rows } = await sql.query<{ top: number | null }>(
          'SELECT max(position) AS top FROM cdp_events',
        );
        const top = Number(rows[0]?.top ?? 0);
        const now = clock.now();
        const rate = now > lastAt ? ((top - lastCount) * 1000) / (now - lastAt) : 0;
        lastCount = top;
        lastAt = now;
        const positions = await subscriptionPositions(sql);
        const status = store.readerStatus();
        return {
          id: 'reviews',
          title: 'Reviews (event sourcing + CQRS)',
          stats: [
            {
              label: 'events/s (positions)',
              value: Math.max(0, Math.round(rate)),
              hint: 'Events appended to the log per second, measured over the last period.',
            },
            {
              label: 'last position',
              value: top,
              hint: 'Position of the newest event in the global log: every event ever written, in order.',
            },
            {
              label: 'projection lag',
              value: Math.max(0, ...[...positions.values()].map((p) => top - p)),
              unit: 'events',
              hint: 'Events written but not yet applied to the slowest read model: how far behind what readers see is.',
            },
            {
              label: 'stalled readers',
              value: status.heldBack ? 1 : 0,
              hint: 'A reader held back by a transaction that took a position and has not committed.',
            },
            {
              label: 'view refreshes',
              value: refresher.refreshes,
              hint: 'Times the materialized views were recomputed.',
            },
          ],
          charts: [
            {
              title: 'Projection lag',
              stats: ['projection lag'],
              unit: 'events',
              hint: 'Near zero when projections keep up; a bump during a burst of writes or a rebuild.',
            },
            {
              title: 'Event rate',
              stats: ['events/s (positions)'],
              unit: 'events/s',
              hint: 'How fast commands are turning into events.',
            },
          ],
          table: {
            columns: ['projection / blocker', 'position', 'lag'],
            rows: [
              ...[...positions].map(
                ([name, p]) => [name, p, Math.max(0, top - p)] as (string | number)[],
              ),
              ...(status.blocker
                ? [
                    [
                      `blocked by pid ${status.blocker.pid} (${status.blocker.ageSeconds.toFixed(1)} s)`,
                      '-',
                      '-',
                    ],
                  ]
                : []),
            ],
          },
          docs: 'docs/patterns/event-sourcing.md',
        };
      },
    };
  },
};
