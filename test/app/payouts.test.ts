import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../../src/testing/index.js';
import { describeServer } from '../support/servers.js';
import { type Client, startClient } from './support.js';

interface Balance {
  earnedCents: number;
  paidCents: number;
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
