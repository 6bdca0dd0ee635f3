import { describe, expect, it } from 'vitest';
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
} from '../../src/app/reviews/deciders.js';
import { reviewsMigrations } from '../../src/app/reviews/migrations.js';
import {
  courseRating,
  courseRatingsProjection,
  customerSpend,
  customerSpendProjection,
  refreshReviewViews,
  topCourses,
} from '../../src/app/reviews/read-models.js';
import { ConcurrencyError, ValidationError } from '../../src/core/errors.js';
import { CommandHandler, openAsyncProjection, ReadModelQueries } from '../../src/cqrs/index.js';
import type { SqlClient } from '../../src/engines/sql/sql-client.js';
import { type EventStore, MemoryEventStore, type SqlEventStore } from '../../src/events/index.js';
import { describeOnSqlEventStores } from '../support/sql-event-stores.js';

let n = 0;
const uid = (p: string) => `${p}${process.pid}x${n++}`;

function handlerSuite(getStore: () => EventStore): void {
  it('handles a command: loads, decides, appends, and returns the state and a consistency token', async () => {
    const store = getStore();
    const h = new CommandHandler({ store, decider: courseReviews, streamId: reviewStream });
    const courseId = uid('c');
    const r = await h.handle(
      SubmitReview.parse({ courseId, topic: 'sql', studentId: 's1', rating: 4 }),
    );
    expect(r.version).toBe(1);
    expect(r.position).toBeGreaterThan(0);
    expect([...r.state.ratings]).toEqual([['s1', 4]]);
    const again = await h.handle(WithdrawReview.parse({ courseId, studentId: 'nobody' }));
    expect(again.events).toEqual([]);
    expect(again.position).toBe(0);
    await expect(
      h.handle(SubmitReview.parse({ courseId, topic: 'sql', studentId: 's1', rating: 2 })),
    ).rejects.toThrow(/already reviewed/);
    expect((await h.load(reviewStream({ courseId }))).version).toBe(1);
  });

  it('retries on conflict: concurrent commands on one stream all land, in some order', async () => {
    const store = getStore();
    const h = new CommandHandler({
      store,
      decider: courseReviews,
      streamId: reviewStream,
      maxAttempts: 30,
    });
    const courseId = uid('c');
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        h.handle(
          SubmitReview.parse({ courseId, topic: 'sql', studentId: `s${i}`, rating: (i % 5) + 1 }),
        ),
      ),
    );
    expect(results.map((r) => r.version).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(results.some((r) => r.attempts > 1)).toBe(true);
    expect((await h.load(reviewStream({ courseId }))).state.ratings.size).toBe(8);
    const once = new CommandHandler({
      store,
      decider: courseReviews,
      streamId: reviewStream,
      maxAttempts: 1,
    });
    const racing = await Promise.allSettled(
      Array.from({ length: 4 }, (_, i) =>
        once.handle(SubmitReview.parse({ courseId, topic: 'sql', studentId: `t${i}`, rating: 3 })),
      ),
    );
    const refused = racing.filter((r) => r.status === 'rejected');
    expect(refused.length).toBeGreaterThan(0);
    for (const r of refused)
      expect((r as PromiseRejectedResult).reason).toBeInstanceOf(ConcurrencyError);
  });

  it('loads from a snapshot plus the tail, and ignores snapshots of another evolve version', async () => {
    const store = getStore();
    const h = new CommandHandler({
      store,
      decider: studentWallet,
      streamId: walletStream,
      snapshotEvery: 10,
    });
    const studentId = uid('w');
    for (let i = 0; i < 25; i++) await h.handle(TopUpWallet.parse({ studentId, amountCents: 100 }));
    const loaded = await h.load(walletStream({ studentId }));
    expect(loaded).toMatchObject({ version: 25, snapshotVersion: 20, eventsRead: 5 });
    expect(loaded.state.balanceCents).toBe(2500);
    const v2 = new CommandHandler({
      store,
      decider: { ...studentWallet, version: 2 },
      streamId: walletStream,
      snapshotEvery: 10,
    });
    expect(await v2.load(walletStream({ studentId }))).toMatchObject({
      version: 25,
      snapshotVersion: 0,
      eventsRead: 25,
    });
    await v2.snapshot(walletStream({ studentId }));
    expect(await v2.load(walletStream({ studentId }))).toMatchObject({
      snapshotVersion: 25,
      eventsRead: 0,
    });
    expect((await v2.load(walletStream({ studentId }))).state.balanceCents).toBe(2500);
  });

  it('a malformed command is refused before anything is appended', async () => {
    const store = getStore();
    const studentId = uid('w');
    expect(() => TopUpWallet.parse({ studentId, amountCents: -5 })).toThrow(ValidationError);
    expect(await store.streamVersion(walletStream({ studentId }))).toBe(0);
  });
}

describe('CommandHandler on MemoryEventStore', () => {
  const store = new MemoryEventStore();
  handlerSuite(() => store);
});

function viewSuite(getSql: () => SqlClient, getStore: () => SqlEventStore): void {
  it('inline projections keep course ratings and top courses current at commit, and match the refreshed views', async () => {
    const store = getStore();
    const h = new CommandHandler({
      store,
      decider: courseReviews,
      streamId: reviewStream,
      inline: [courseRatingsProjection],
      maxAttempts: 20,
    });
    const topic = uid('topic');
    const [a, b, c] = [uid('ca'), uid('cb'), uid('cc')];
    const submit = (courseId: string, studentId: string, rating: number) =>
      h.handle(SubmitReview.parse({ courseId, topic, studentId, rating }));
    await submit(a, 's1', 5);
    await submit(a, 's2', 4);
    await submit(b, 's1', 3);
    await submit(c, 's1', 2);
    await submit(c, 's2', 2);
    expect(await courseRating(getSql(), a)).toEqual({
      courseId: a,
      topic,
      reviewCount: 2,
      averageRating: 4.5,
    });
    await h.handle(ReviseReview.parse({ courseId: c, studentId: 's1', rating: 5 }));
    await h.handle(WithdrawReview.parse({ courseId: a, studentId: 's1' }));
    expect(await courseRating(getSql(), a)).toMatchObject({ reviewCount: 1, averageRating: 4 });
    expect(await courseRating(getSql(), c)).toMatchObject({ reviewCount: 2, averageRating: 3.5 });
    const top = await topCourses(getSql(), topic, 2);
    expect(top.map((t) => t.courseId)).toEqual([a, c]);
    // The refreshed materialized view is stale until refreshed, then equal.
    await refreshReviewViews(getSql());
    for (const id of [a, b, c])
      expect(await courseRating(getSql(), id, 'refreshed')).toEqual(
        await courseRating(getSql(), id),
      );
    expect(await topCourses(getSql(), topic, 3, 'refreshed')).toEqual(
      await topCourses(getSql(), topic, 3),
    );
  });

  it('async projection: a query with the consistency token reads its own write', async () => {
    const store = getStore();
    const sub = await openAsyncProjection(store, customerSpendProjection, { pollIntervalMs: 50 });
    try {
      const h = new CommandHandler({ store, decider: studentWallet, streamId: walletStream });
      const studentId = uid('cust');
      await h.handle(TopUpWallet.parse({ studentId, amountCents: 10_000 }));
      await h.handle(PayForCourse.parse({ studentId, courseId: 'c1', amountCents: 2500 }));
      const r = await h.handle(
        PayForCourse.parse({ studentId, courseId: 'c2', amountCents: 1500 }),
      );
      const queries = new ReadModelQueries(getSql());
      const spend = await queries.query('customer-spend', (q) => customerSpend(q, studentId), {
        after: r.position,
        timeoutMs: 30_000,
      });
      expect(spend).toEqual({ customerId: studentId, totalCents: 4000, purchases: 2 });
      await refreshReviewViews(getSql(), { concurrently: true });
      expect(await customerSpend(getSql(), studentId, 'refreshed')).toEqual(spend);
    } finally {
      await sub.close();
    }
  });
}

describeOnSqlEventStores(
  'CommandHandler and read models',
  { migrations: reviewsMigrations, prefix: 'cdp_cqrs', max: 8 },
  (getSql, getStore) => {
    handlerSuite(getStore);
    viewSuite(getSql, getStore);
  },
);
