import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ShardingService } from '../../src/app/features/sharding.js';
import { RefundCharge } from '../../src/app/reviews/deciders.js';
import { eventually } from '../../src/testing/index.js';
import { type Client, startClient } from './support.js';

interface Purchase {
  purchaseId: string;
  status: string;
  seat: string;
  failedStep: string | null;
  reason: string | null;
  steps: { step: string; phase: string; status: string }[];
}

describe('course purchase saga (embedded defaults)', () => {
  let c: Client;
  let viewer: string;
  beforeAll(async () => {
    c = await startClient();
    viewer = await c.key('viewer', 'v-1');
  });
  afterAll(() => c.close());

  async function buy(student: string, course: string): Promise<Purchase> {
    const key = await c.key('student', student);
    const r = await c.call('POST', '/api/purchases', { key, body: { course } });
    expect(r.status, r.text).toBe(202);
    const { purchaseId } = r.body as { purchaseId: string };
    return eventually(
      async () => {
        const g = await c.call('GET', `/api/purchases/${purchaseId}`, { key });
        const p = g.body as Purchase;
        return p.status === 'running' ? undefined : p;
      },
      'the purchase saga ends',
      { timeoutMs: 20_000 },
    );
  }

  async function balance(student: string): Promise<number> {
    const key = await c.key('student', student);
    const r = await c.call('GET', `/api/reviews/wallets/${student}`, { key });
    return (r.body as { balanceCents: number }).balanceCents;
  }

  async function topUp(student: string, amountCents: number): Promise<void> {
    const key = await c.key('student', student);
    const r = await c.call('POST', `/api/reviews/wallets/${student}/top-ups`, {
      key,
      body: { amountCents },
    });
    expect(r.status, r.text).toBe(201);
  }

  it('a funded purchase completes: seat confirmed, wallet charged at the catalog price, access granted', async () => {
    const course = await c.course('Ada', { priceCents: 4900 });
    await topUp('buyer-1', 5000);
    const p = await buy('buyer-1', course.id);
    expect(p.status).toBe('completed');
    expect(p.seat).toBe('confirmed');
    expect(p.steps.map((s) => `${s.phase}:${s.step}:${s.status}`)).toEqual([
      'run:reserve:completed',
      'run:charge:completed',
      'run:grant:completed',
      'run:receipt:completed',
    ]);
    expect(await balance('buyer-1')).toBe(100);
    // The enrollment is on the student's shard, marked with the purchase that granted it.
    const { router } = c.platform.services.get('sharding') as ShardingService;
    const enrolled = await router.query(
      'buyer-1',
      'SELECT purchase_id FROM app_enrollments WHERE student = $1 AND course = $2',
      ['buyer-1', course.id],
    );
    expect(enrolled).toEqual([{ purchase_id: p.purchaseId }]);
    const again = await c.call('POST', '/api/purchases', {
      key: await c.key('student', 'buyer-1'),
      body: { course: course.id },
    });
    expect(again.status).toBe(409);
    expect(again.text).toContain('ALREADY_ENROLLED');
  });

  it('a declined charge compensates: the pending seat is released, nothing is charged', async () => {
    const course = await c.course('Ada', { priceCents: 4900 });
    await topUp('buyer-2', 1000);
    const p = await buy('buyer-2', course.id);
    expect(p).toMatchObject({ status: 'compensated', seat: 'released', failedStep: 'charge' });
    expect(p.reason).toContain('INSUFFICIENT_FUNDS');
    expect(p.steps.map((s) => `${s.phase}:${s.step}:${s.status}`)).toEqual([
      'run:reserve:completed',
      'run:charge:failed',
      'compensate:reserve:completed',
    ]);
    expect(await balance('buyer-2')).toBe(1000);
  });

  it('a full course is refused at the reservation; a pending seat counts as taken', async () => {
    const course = await c.course('Ada', { priceCents: 100 });
    await c.platform.sql.query('INSERT INTO app_course_seats (course, seats) VALUES ($1, 1)', [
      course.id,
    ]);
    // A saga in flight holds the only seat (the semantic lock).
    await c.platform.sql.query(
      `INSERT INTO app_seat_reservations (purchase_id, course, student, status, amount_cents)
       VALUES ('held-elsewhere', $1, 'someone', 'pending', 100)`,
      [course.id],
    );
    await topUp('buyer-3', 1000);
    const p = await buy('buyer-3', course.id);
    expect(p).toMatchObject({ status: 'compensated', seat: 'none', failedStep: 'reserve' });
    expect(p.reason).toContain('COURSE_FULL');
    expect(await balance('buyer-3')).toBe(1000);
  });

  it('a student reads only their own purchases; the price never comes from the client', async () => {
    const course = await c.course('Ada', { priceCents: 300 });
    await topUp('buyer-4', 300);
    const p = await buy('buyer-4', course.id);
    const other = await c.call('GET', `/api/purchases/${p.purchaseId}`, {
      key: await c.key('student', 'buyer-5'),
    });
    expect(other.status).toBe(403);
    expect((await c.call('GET', `/api/purchases/${p.purchaseId}`, { key: viewer })).status).toBe(
      200,
    );
    const priced = await c.call('POST', '/api/purchases', {
      key: await c.key('student', 'buyer-4'),
      body: { course: course.id, amountCents: 1 },
    });
    expect(priced.status).toBe(400);
    expect((await c.call('GET', '/api/purchases/nope', { key: viewer })).status).toBe(404);
  });

  it('the same Idempotency-Key starts one purchase', async () => {
    const course = await c.course('Ada', { priceCents: 200 });
    await topUp('buyer-6', 1000);
    const key = await c.key('student', 'buyer-6');
    const send = () =>
      c.call('POST', '/api/purchases', {
        key,
        body: { course: course.id },
        headers: { 'idempotency-key': 'buy-once-1' },
      });
    const first = await send();
    const second = await send();
    expect(first.status, first.text).toBe(202);
    expect(second.status).toBe(202);
    expect(second.body).toEqual(first.body);
    const { purchaseId } = first.body as { purchaseId: string };
    await eventually(
      async () =>
        ((await c.call('GET', `/api/purchases/${purchaseId}`, { key })).body as Purchase).status ===
          'completed' || undefined,
      'the purchase completes',
    );
    expect(await balance('buyer-6')).toBe(800);
  });

  it('the demonstration shows a completed and a compensated purchase; the panel counts them', async () => {
    await c.course('Ada', { priceCents: 700 });
    const r = await c.call('POST', '/api/demos/purchase-saga', { key: viewer });
    expect(r.status, r.text).toBe(200);
    const d = r.body as { ok: boolean; steps: string[] };
    expect(d.ok, d.steps.join('\n')).toBe(true);
    expect(d.steps.join('\n')).toContain('compensate reserve: completed');
    const dash = await c.call('GET', '/api/panels', { key: viewer });
    const panel = (
      dash.body as { panels: { id: string; stats: { label: string; value: number }[] }[] }
    ).panels.find((p) => p.id === 'purchases')!;
    const stat = (l: string) => panel.stats.find((s) => s.label === l)!.value;
    expect(stat('completed')).toBeGreaterThanOrEqual(3);
    expect(stat('compensated')).toBeGreaterThanOrEqual(3);
    expect(stat('failed')).toBe(0);
  });
  it("a saga's charge counts in the student's spend and the instructor's earnings; its refund takes it off", async () => {
    const instructor = `ins-${Math.random().toString(36).slice(2, 8)}`;
    const course = await c.course(instructor, { priceCents: 2500 });
    await topUp('spender-1', 2500);
    expect((await buy('spender-1', course.id)).status).toBe('completed');
    const studentKey = await c.key('student', 'spender-1');
    const wallet = await c.call('GET', '/api/reviews/wallets/spender-1', { key: studentKey });
    expect((wallet.body as { spend: unknown }).spend).toMatchObject({
      totalCents: 2500,
      purchases: 1,
    });
    const insKey = await c.key('instructor', instructor);
    const earned = async () =>
      (
        (await c.call('GET', `/api/payouts/instructors/${instructor}`, { key: insKey })).body as {
          earnedCents: number;
        }
      ).earnedCents;
    expect(await earned()).toBe(2500);

    // The charge's compensation, as the saga sends it when a later step fails.
    const { wallets } = c.platform.services.get('reviews') as {
      wallets: { handle(command: unknown): Promise<unknown> };
    };
    const purchaseId = (
      await c.platform.sql.query<{ purchase_id: string }>(
        "SELECT data->>'purchaseId' AS purchase_id FROM cdp_events WHERE type = 'WalletCharged' AND data->>'studentId' = $1",
        ['spender-1'],
      )
    ).rows[0]!.purchase_id;
    await wallets.handle(RefundCharge.parse({ studentId: 'spender-1', purchaseId }));
    const after = await c.call('GET', '/api/reviews/wallets/spender-1', { key: studentKey });
    expect(after.body).toMatchObject({
      balanceCents: 2500,
      spend: { totalCents: 0, purchases: 0 },
    });
    expect(await earned()).toBe(0);
  });
});
