import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ShardingService } from '../../src/app/features/sharding.js';
import { type Client, codeOf, startClient } from './support.js';

/** Business rules between features (issue 18, points 6 and 7). */
describe('platform business rules', () => {
  let c: Client;
  let admin: string;
  let ada: string;
  beforeAll(async () => {
    c = await startClient();
    admin = await c.key('admin', 'root');
    ada = await c.key('instructor', 'Ada Park');
  });
  afterAll(async () => c?.close());

  describe('PATCH /api/catalog/courses/<id> (point 6)', () => {
    it('changes only the fields it names', async () => {
      const course = await c.course('Ada Park', { description: 'long text', priceCents: 4900 });
      const r = await c.call('PATCH', `/api/catalog/courses/${course.id}`, {
        key: ada,
        body: { priceCents: 2499 },
      });
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({
        priceCents: 2499,
        description: 'long text',
        title: 'Course of Ada Park',
        version: 2,
      });
    });

    it('refuses an empty patch with its own code, and changes nothing', async () => {
      const course = await c.course('Ada Park', { description: 'kept' });
      const r = await c.call('PATCH', `/api/catalog/courses/${course.id}`, { key: ada, body: {} });
      expect(r.status).toBe(400);
      expect(codeOf(r)).toBe('EMPTY_PATCH');
      const after = (await c.call('GET', `/api/catalog/courses/${course.id}`)).body;
      expect(after).toMatchObject({ version: 1, description: 'kept' });
    });

    it('refuses null for a required field', async () => {
      const course = await c.course('Ada Park');
      for (const field of ['title', 'topic', 'instructor', 'priceCents', 'description']) {
        const r = await c.call('PATCH', `/api/catalog/courses/${course.id}`, {
          key: admin,
          body: { [field]: null },
        });
        expect({ field, status: r.status }).toEqual({ field, status: 400 });
      }
      expect((await c.call('GET', `/api/catalog/courses/${course.id}`)).body).toMatchObject({
        version: 1,
      });
    });
  });

  describe('features check each other (point 7)', () => {
    it("takes a purchase's price from the catalog, never from the client", async () => {
      const course = await c.course('Ada Park', { priceCents: 4900 });
      const s = await c.key('student', 'payer');
      expect(
        (
          await c.call('POST', '/api/reviews/wallets/payer/top-ups', {
            key: s,
            body: { amountCents: 10_000 },
          })
        ).status,
      ).toBe(201);
      const cheap = await c.call('POST', '/api/reviews/wallets/payer/purchases', {
        key: s,
        body: { courseId: course.id, amountCents: 1 },
      });
      expect(cheap.status).toBe(400);
      const paid = await c.call('POST', '/api/reviews/wallets/payer/purchases', {
        key: s,
        body: { courseId: course.id },
      });
      expect(paid.status).toBe(201);
      expect(paid.body).toMatchObject({ balanceCents: 10_000 - 4900 });
    });

    it('charges once for the same purchase sent 50 times at once', async () => {
      const course = await c.course('Ada Park', { priceCents: 700 });
      const s = await c.key('student', 'hasty');
      await c.call('POST', '/api/reviews/wallets/hasty/top-ups', {
        key: s,
        body: { amountCents: 10_000 },
      });
      const results = await Promise.all(
        Array.from({ length: 50 }, () =>
          c.call('POST', '/api/reviews/wallets/hasty/purchases', {
            key: s,
            body: { courseId: course.id },
          }),
        ),
      );
      for (const r of results) expect(r.status).toBeLessThan(500);
      const wallet = (await c.call('GET', '/api/reviews/wallets/hasty', { key: s })).body;
      expect(wallet).toMatchObject({ balanceCents: 10_000 - 700, courses: [course.id] });
    });

    it('refuses a purchase the wallet cannot pay with INSUFFICIENT_FUNDS', async () => {
      const course = await c.course('Ada Park', { priceCents: 4900 });
      const s = await c.key('student', 'poor');
      const r = await c.call('POST', '/api/reviews/wallets/poor/purchases', {
        key: s,
        body: { courseId: course.id },
      });
      expect(r.status).toBe(409);
      expect(codeOf(r)).toBe('INSUFFICIENT_FUNDS');
    });

    it('refuses to sell, enroll in or review a course the catalog does not have', async () => {
      const s = await c.key('student', 'lost');
      await c.call('POST', '/api/reviews/wallets/lost/top-ups', {
        key: s,
        body: { amountCents: 10_000 },
      });
      for (const id of ['no-such-course', '01890000-0000-7000-8000-000000000000']) {
        const bought = await c.call('POST', '/api/reviews/wallets/lost/purchases', {
          key: s,
          body: { courseId: id },
        });
        const enrolled = await c.call('POST', '/api/enrollment/enrollments', {
          key: s,
          body: { course: id },
        });
        const reviewed = await c.call(
          'POST',
          `/api/reviews/courses/${encodeURIComponent(id)}/reviews`,
          { key: s, body: { rating: 5 } },
        );
        for (const r of [bought, enrolled, reviewed]) {
          expect(r.status).toBe(404);
          expect(codeOf(r)).toBe('COURSE_NOT_FOUND');
        }
      }
      const wallet = (await c.call('GET', '/api/reviews/wallets/lost', { key: s })).body;
      expect(wallet).toMatchObject({ balanceCents: 10_000, courses: [] });
    });

    it('refuses a review from a student not enrolled in the course with NOT_ENROLLED', async () => {
      const course = await c.course('Ada Park');
      const s = await c.key('student', 'outsider');
      const r = await c.call('POST', `/api/reviews/courses/${course.id}/reviews`, {
        key: s,
        body: { rating: 5 },
      });
      expect(r.status).toBe(403);
      expect(codeOf(r)).toBe('NOT_ENROLLED');
    });

    it("takes the review's topic from the course, and refuses a second review with ALREADY_REVIEWED", async () => {
      const course = await c.course('Ada Park', { topic: 'compilers' });
      const s = await c.key('student', 'critic');
      await c.call('POST', '/api/enrollment/enrollments', { key: s, body: { course: course.id } });
      const chosen = await c.call('POST', `/api/reviews/courses/${course.id}/reviews`, {
        key: s,
        body: { rating: 5, topic: 'anything' },
      });
      expect(chosen.status).toBe(400);
      const r = await c.call('POST', `/api/reviews/courses/${course.id}/reviews`, {
        key: s,
        body: { rating: 5 },
      });
      expect(r.status).toBe(201);
      const { position } = r.body as { position: number };
      const rating = await c.call(
        'GET',
        `/api/reviews/courses/${course.id}/rating?after=${position}`,
      );
      expect(rating.body).toMatchObject({ topic: 'compilers', reviewCount: 1 });
      const again = await c.call('POST', `/api/reviews/courses/${course.id}/reviews`, {
        key: s,
        body: { rating: 1 },
      });
      expect(again.status).toBe(409);
      expect(codeOf(again)).toBe('ALREADY_REVIEWED');
      const revise = await c.call('PUT', `/api/reviews/courses/${course.id}/reviews/nobody`, {
        key: admin,
        body: { rating: 1 },
      });
      expect(codeOf(revise)).toBe('REVIEW_NOT_FOUND');
    });

    it('enrolls once: the same enrollment 50 times at once gives one effect', async () => {
      const course = await c.course('Ada Park');
      const s = await c.key('student', 'eager');
      const results = await Promise.all(
        Array.from({ length: 50 }, () =>
          c.call('POST', '/api/enrollment/enrollments', { key: s, body: { course: course.id } }),
        ),
      );
      const statuses = results.map((r) => r.status).sort();
      expect(statuses.filter((x) => x === 202)).toHaveLength(1);
      expect(new Set(results.filter((r) => r.status !== 202).map(codeOf))).toEqual(
        new Set(['ALREADY_ENROLLED']),
      );
      // Enrollments live on the student's shard.
      const { router } = c.platform.services.get('sharding') as ShardingService;
      const rows = await router.query<{ n: number }>(
        'eager',
        'SELECT count(*)::int AS n FROM app_enrollments WHERE student = $1 AND course = $2',
        ['eager', course.id],
      );
      expect(rows[0]!.n).toBe(1);
    });
  });
});
