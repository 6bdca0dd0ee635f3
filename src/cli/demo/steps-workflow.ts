import { check, describe, type Key } from './client.js';
import { expectStatus, field, need, type Step } from './tour-support.js';

/** The tour's workflow steps: a saga, two-phase commit, an idempotency key. */
export const workflowSteps: Step[] = [
  {
    id: 'saga',
    title: 'Buy a course as a saga, and watch a declined one compensate',
    pattern: 'orchestrated saga',
    what: 'A purchase reserves a seat (pending: a semantic lock readers see), charges the wallet, grants access and sends a receipt, each a durable step. A student with an empty wallet is declined at the charge: the seat reservation is compensated (released) and nothing else happened.',
    dashboard:
      "Purchases (orchestrated saga): runs by outcome, the latest saga's steps and compensations",
    async run(s) {
      const student = need(s.student, 'the student key');
      const other = need(s.otherStudent, 'the other student key');
      const c = await s.client.call('POST', '/api/catalog/courses', {
        key: need(s.instructor, 'the instructor key'),
        json: { title: `Sagas on a tour (${s.run})`, topic: 'architecture', priceCents: 1500 },
      });
      expectStatus(c, 201, 'POST /api/catalog/courses as the instructor');
      const course = field<string>(c, 'id');
      const buy = async (who: Key) => {
        const a = await s.client.call('POST', '/api/purchases', { key: who, json: { course } });
        expectStatus(a, 202, `POST /api/purchases as ${who.subject}`);
        const id = field<string>(a, 'purchaseId');
        const deadline = Date.now() + 30_000;
        for (;;) {
          const r = await s.client.call('GET', `/api/purchases/${id}`, { key: who });
          expectStatus(r, 200, 'GET /api/purchases/:id');
          const status = field<string>(r, 'status');
          if (status !== 'running' || Date.now() > deadline) return r;
          await new Promise((done) => setTimeout(done, 100));
        }
      };
      const ok = await buy(student);
      check(
        field(ok, 'status') === 'completed' && field(ok, 'seat') === 'confirmed',
        'the purchase to complete with its seat confirmed',
        () => `${field(ok, 'status')}, seat ${field(ok, 'seat')}`,
      );
      const declined = await buy(other);
      const compensated = field<{ step: string; phase: string; status: string }[]>(
        declined,
        'steps',
      )
        .filter((x) => x.phase === 'compensate')
        .map((x) => x.step);
      check(
        field(declined, 'status') === 'compensated' &&
          field(declined, 'failedStep') === 'charge' &&
          field(declined, 'seat') === 'released',
        'the empty wallet to be declined at the charge, and the seat released by compensation',
        () =>
          `${field(declined, 'status')} at ${field(declined, 'failedStep')}, seat ${field(declined, 'seat')}`,
      );
      return [
        `${student.subject} bought course ${course}: completed, seat confirmed`,
        `${other.subject} (empty wallet): declined at "charge" (${field(declined, 'reason')}); compensated: ${compensated.join(', ')}; seat released`,
      ];
    },
  },
  {
    id: 'two-phase-commit',
    title: 'Pay the instructor out across two databases',
    pattern: 'two-phase commit',
    what: "The instructor's earnings are the purchases of their courses. A payout writes a record in the platform's database and an entry in the payout ledger (MariaDB, or a second database) in one two-phase commit: both commit or neither. Asking for more than is available is refused everywhere.",
    dashboard: 'Instructor payouts: paid (platform) equals paid (ledger); in-doubt transactions 0',
    async run(s) {
      const instructor = need(s.instructor, 'the instructor key');
      const path = `/api/payouts/instructors/${encodeURIComponent(instructor.subject)}`;
      const deadline = Date.now() + 30_000;
      let balance = await s.client.call('GET', path, { key: instructor });
      while (field<number>(balance, 'availableCents') <= 0 && Date.now() < deadline) {
        await new Promise((done) => setTimeout(done, 200));
        balance = await s.client.call('GET', path, { key: instructor });
      }
      expectStatus(balance, 200, `GET ${path} as the instructor`);
      const available = field<number>(balance, 'availableCents');
      check(
        available > 0,
        'earnings from the purchases of the earlier steps',
        () => `${available} cents`,
      );
      const paid = await s.client.call('POST', `${path}/payouts`, {
        key: instructor,
        json: { amountCents: available },
      });
      expectStatus(paid, 201, 'POST .../payouts for everything available');
      const again = await s.client.call('POST', `${path}/payouts`, {
        key: instructor,
        json: { amountCents: 1 },
      });
      expectStatus(again, 409, 'a second payout with nothing left');
      const panels = await s.client.call('GET', '/api/panels');
      const stats = Object.fromEntries(
        (
          field<{ id: string; stats: { label: string; value: unknown }[] }[]>(
            panels,
            'panels',
          ).find((p) => p.id === 'payouts')?.stats ?? []
        ).map((x) => [x.label, x.value]),
      );
      check(
        stats['paid (platform)'] === stats['paid (ledger)'] && stats['in-doubt transactions'] === 0,
        'both sides to hold the same total and nothing to stay prepared',
        () => JSON.stringify(stats),
      );
      return [
        `paid out ${available} cents (${field(paid, 'mode')}); both sides now hold ${stats['paid (ledger)']} cents; in doubt: 0`,
        `a second payout: ${describe(again)}`,
      ];
    },
  },
  {
    id: 'idempotency-key',
    title: 'Send the same top-up twice with one Idempotency-Key',
    pattern: 'idempotency keys',
    what: 'A client that retries a POST after a lost answer must not pay twice. The same Idempotency-Key replays the first response (marked Idempotent-Replayed) and the wallet grows once; the key reused with another amount is refused (422).',
    dashboard: 'none (outcomes are counted in cdp_idempotency_requests_total at /metrics)',
    async run(s) {
      const student = need(s.student, 'the student key');
      const wallet = `/api/reviews/wallets/${encodeURIComponent(student.subject)}`;
      const key = `tour-top-up-${s.run}`;
      const before = await s.client.call('GET', wallet, { key: student });
      expectStatus(before, 200, 'GET the wallet as its student');
      const send = (amountCents: number) =>
        s.client.call('POST', `${wallet}/top-ups`, {
          key: student,
          json: { amountCents },
          headers: { 'idempotency-key': key },
        });
      const first = await send(250);
      expectStatus(first, 201, 'the first top-up with an Idempotency-Key');
      const again = await send(250);
      expectStatus(again, 201, 'the same top-up sent again with the same key');
      check(
        again.headers.get('idempotent-replayed') === 'true' &&
          JSON.stringify(again.body) === JSON.stringify(first.body),
        'the second answer to be the first one replayed (Idempotent-Replayed: true, same body)',
        () => `idempotent-replayed: ${again.headers.get('idempotent-replayed')}`,
      );
      const other = await send(999);
      expectStatus(other, 422, 'the same key with another amount');
      const after = await s.client.call('GET', wallet, { key: student });
      const grew = field<number>(after, 'balanceCents') - field<number>(before, 'balanceCents');
      check(grew === 250, 'the balance to grow by 250 cents once', () => `it grew by ${grew}`);
      return [
        `two POSTs with key ${key}: one top-up of 250 cents; the second answer was a replay`,
        `the key with 999 cents instead: ${describe(other)}`,
      ];
    },
  },
];
