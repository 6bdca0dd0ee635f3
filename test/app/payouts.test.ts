import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChargeWallet, RefundCharge } from '../../src/app/reviews/deciders.js';
import { eventually } from '../../src/testing/index.js';
import { describeServer } from '../support/servers.js';
import { type Client, startClient } from './support.js';

interface Balance {
  earnedCents: number;
  paidCents: number;
  pendingCents: number;
  availableCents: number;
  mode: string;
}

/** An instructor with one course bought by one student: earnings equal to the course's price. */
async function earningInstructor(c: Client, name: string) {
  const course = await c.course(name, { priceCents: 3000 });
  const student = `${name}-student`;
  const studentKey = await c.key('student', student);
  const wallet = `/api/reviews/wallets/${student}`;
  expect(
    (await c.call('POST', `${wallet}/top-ups`, { key: studentKey, body: { amountCents: 5000 } }))
      .status,
  ).toBe(201);
  expect(
    (
      await c.call('POST', `${wallet}/purchases`, {
        key: studentKey,
        body: { courseId: course.id },
      })
    ).status,
  ).toBe(201);
  const key = await c.key('instructor', name);
  const path = `/api/payouts/instructors/${name}`;
  // The purchase reaches the read model the earnings come from.
  await eventually(
    async () =>
      ((await c.call('GET', path, { key })).body as Balance).earnedCents === course.priceCents,
    "the purchase in the instructor's earnings",
  );
  return { key, path, priceCents: course.priceCents };
}

async function panel(c: Client) {
  const r = await c.call('GET', '/api/panels');
  const panels = (
    r.body as { panels: { id: string; stats: { label: string; value: unknown }[] }[] }
  ).panels;
  const p = panels.find((x) => x.id === 'payouts')!;
  return Object.fromEntries(p.stats.map((s) => [s.label, s.value]));
}

function payoutSuite(label: string, env: () => Record<string, string>, mode: string) {
  describe(`instructor payouts: ${label}`, () => {
    let c: Client;
    beforeAll(async () => {
      c = await startClient(env());
    });
    afterAll(() => c?.close());

    it(`pays out once on both sides (${mode}), refuses more than is available and other instructors' keys`, async () => {
      const name = `ins${Math.random().toString(36).slice(2, 8)}`;
      const { key, path, priceCents } = await earningInstructor(c, name);
      const before = await panel(c);
      const paid = await c.call('POST', `${path}/payouts`, { key, body: { amountCents: 1000 } });
      expect(paid.status).toBe(201);
      expect(paid.body).toMatchObject({ status: 'paid', amountCents: 1000, mode });

      const balance = (await c.call('GET', path, { key })).body as Balance;
      expect(balance).toMatchObject({ paidCents: 1000, availableCents: priceCents - 1000, mode });

      const tooMuch = await c.call('POST', `${path}/payouts`, {
        key,
        body: { amountCents: priceCents },
      });
      expect(tooMuch.status).toBe(409);
      expect(tooMuch.body).toMatchObject({ error: { code: 'PAYOUT_REFUSED' } });

      const other = await c.key('instructor', `${name}-other`);
      const stolen = await c.call('POST', `${path}/payouts`, {
        key: other,
        body: { amountCents: 1 },
      });
      expect(stolen.status).toBe(403);

      // Both sides hold the same money: the platform's paid records and the ledger's entries.
      const after = await panel(c);
      expect(Number(after['paid (platform)']) - Number(before['paid (platform)'])).toBe(1000);
      expect(Number(after['paid (ledger)']) - Number(before['paid (ledger)'])).toBe(1000);
      expect(after['in-doubt transactions']).toBe(0);
      expect(after.mode).toBe(mode);
    });

    it("keeps a purchase saga's earnings pending until its pivot, so that its refund never takes the balance below what was paid out", async () => {
      const name = `ins${Math.random().toString(36).slice(2, 8)}`;
      const { key, path, priceCents } = await earningInstructor(c, name);
      // A purchase saga between its charge and its pivot: the seat reserved (pending), the
      // wallet charged, as the saga's first two steps leave them.
      const course = await c.course(name, { priceCents: 2000 });
      const student = `${name}-saga-student`;
      const studentKey = await c.key('student', student);
      expect(
        (
          await c.call('POST', `/api/reviews/wallets/${student}/top-ups`, {
            key: studentKey,
            body: { amountCents: 2000 },
          })
        ).status,
      ).toBe(201);
      const purchaseId = `p-${name}`;
      await c.platform.sql.query(
        `INSERT INTO app_seat_reservations (purchase_id, course, student, status, amount_cents)
         VALUES ($1, $2, $3, 'pending', 2000)`,
        [purchaseId, course.id, student],
      );
      const { wallets } = c.platform.services.get('reviews') as {
        wallets: { handle(command: unknown): Promise<unknown> };
      };
      await wallets.handle(
        ChargeWallet.parse({
          studentId: student,
          purchaseId,
          courseId: course.id,
          amountCents: 2000,
        }),
      );
      const balance = async () => (await c.call('GET', path, { key })).body as Balance;
      await eventually(
        async () => (await balance()).earnedCents === priceCents + 2000,
        "the saga's charge in the instructor's earnings",
      );
      expect(await balance()).toMatchObject({ pendingCents: 2000, availableCents: priceCents });

      const all = await c.call('POST', `${path}/payouts`, {
        key,
        body: { amountCents: priceCents + 2000 },
      });
      expect(all.status).toBe(409);
      expect((all.body as { error: { message: string } }).error.message).toContain(
        'not yet past their pivot',
      );
      const paid = await c.call('POST', `${path}/payouts`, {
        key,
        body: { amountCents: priceCents },
      });
      expect(paid.status).toBe(201);

      // A later step fails: the saga releases the seat and refunds the charge.
      await c.platform.sql.query(
        "UPDATE app_seat_reservations SET status = 'released' WHERE purchase_id = $1",
        [purchaseId],
      );
      await wallets.handle(RefundCharge.parse({ studentId: student, purchaseId }));
      await eventually(
        async () => (await balance()).earnedCents === priceCents,
        "the refund in the instructor's earnings",
      );
      expect(await balance()).toMatchObject({
        paidCents: priceCents,
        pendingCents: 0,
        availableCents: 0,
      });
      const nothing = await c.call('POST', `${path}/payouts`, { key, body: { amountCents: 1 } });
      expect(nothing.status).toBe(409);
      expect((nothing.body as { error: { message: string } }).error.message).toContain(
        'nothing available',
      );
    });
  });
}

payoutSuite(
  'embedded (PGlite platform and a second PGlite ledger)',
  () => ({}),
  'two-phase-commit',
);

describeServer('instructor payouts with a MariaDB ledger', 'CDP_MARIADB_URL', (url) => {
  payoutSuite(
    'PGlite platform and MariaDB ledger (XA)',
    () => ({ CDP_MARIADB_URL: url }),
    'two-phase-commit',
  );
});

describeServer(
  'instructor payouts on a PostgreSQL server without prepared transactions',
  'CDP_DATABASE_URL',
  (url) => {
    // The main test server keeps max_prepared_transactions = 0: the payout runs as a saga.
    payoutSuite('PostgreSQL platform (saga)', () => ({ CDP_DATABASE_URL: url }), 'saga');
  },
);
