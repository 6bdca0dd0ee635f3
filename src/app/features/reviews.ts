import { z } from 'zod';
import { CommandHandler, openAsyncProjection, ReadModelQueries } from '../../cqrs/index.js';
import {
  eventStoreMigrations,
  SqlEventStore,
  type SqlSubscription,
  subscriptionPositions,
} from '../../events/index.js';
import type { Principal } from '../auth.js';
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
    http.post('/api/reviews/courses/:courseId/reviews', async (req, reply) => {
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
    http.put('/api/reviews/courses/:courseId/reviews/:studentId', async (req) => {
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
    http.delete('/api/reviews/courses/:courseId/reviews/:studentId', async (req) => {
      const by = await ctx.auth.require(req, 'student');
      const { courseId } = parseInput(courseParam, req.params, 'path');
      const { studentId } = parseInput(studentParam, req.params, 'path');
      mustActFor(by, studentId);
      const course = await catalog().require(courseId);
      const r = await reviews.handle(WithdrawReview.parse({ courseId: course.id, studentId }));
      return { position: r.position, version: r.version };
    });
    http.get('/api/reviews/courses/:courseId/rating', async (req) => {
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
    http.get('/api/reviews/topics/:topic/top', async (req) => {
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
    http.post('/api/reviews/wallets/:studentId/top-ups', async (req, reply) => {
      const by = await ctx.auth.require(req, 'student');
      const { studentId } = parseInput(studentParam, req.params, 'path');
      mustActFor(by, studentId);
      const { amountCents } = parseInput(topUpBody, req.body, 'body');
      const r = await wallets.handle(TopUpWallet.parse({ studentId, amountCents }));
      return reply.status(201).send({ position: r.position, balanceCents: r.state.balanceCents });
    });
    http.post('/api/reviews/wallets/:studentId/purchases', async (req, reply) => {
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
    http.get('/api/reviews/wallets/:studentId', async (req) => {
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
    return {
      service: { store, reviews, wallets, queries },
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
            { label: 'events/s (positions)', value: Math.max(0, Math.round(rate)) },
            { label: 'last position', value: top },
            { label: 'stalled readers', value: status.heldBack ? 1 : 0 },
            { label: 'view refreshes', value: refresher.refreshes },
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
