import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../../src/testing/index.js';
import { type Client, startClient } from './support.js';

describe('instructor payouts by two-phase commit (embedded defaults)', () => {
  let c: Client;
  beforeAll(async () => {
    c = await startClient();
  });
  afterAll(() => c.close());

  it('pays an instructor their completed purchases once, on both databases; nothing is left in doubt', async () => {
    const course = await c.course('Grace Hopper', { priceCents: 2500 });
    const student = await c.key('student', 'payer-1');
    await c.call('POST', '/api/reviews/wallets/payer-1/top-ups', {
      key: student,
      body: { amountCents: 3000 },
    });
    const p = await c.call('POST', '/api/purchases', { key: student, body: { course: course.id } });
    const { purchaseId } = p.body as { purchaseId: string };
    await eventually(
      async () =>
        (
          (await c.call('GET', `/api/purchases/${purchaseId}`, { key: student })).body as {
            status: string;
          }
        ).status === 'completed' || undefined,
      'the purchase completes',
    );
    const instructor = await c.key('instructor', 'Grace Hopper');
    const paid = await c.call('POST', '/api/payouts', {
      key: instructor,
      body: { instructor: 'Grace Hopper' },
    });
    expect(paid.status, paid.text).toBe(201);
    expect(paid.body).toMatchObject({ amountCents: 2500, status: 'committed' });
    const again = await c.call('POST', '/api/payouts', {
      key: instructor,
      body: { instructor: 'Grace Hopper' },
    });
    expect(again.status, again.text).toBe(409);
    expect(again.text).toContain('NOTHING_DUE');
    const other = await c.call('POST', '/api/payouts', {
      key: await c.key('instructor', 'Someone Else'),
      body: { instructor: 'Grace Hopper' },
    });
    expect(other.status).toBe(403);
    const { rows } = await c.platform.sql.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM app_instructor_payouts WHERE instructor = $1',
      ['Grace Hopper'],
    );
    expect(rows[0]!.n).toBe(1);
    const viewer = await c.key('viewer', 'v-2');
    const panels = (await c.call('GET', '/api/panels', { key: viewer })).body as {
      panels: { id: string; stats: { label: string; value: number }[] }[];
    };
    const panel = panels.panels.find((x) => x.id === 'payouts')!;
    expect(panel.stats.find((s) => s.label === 'in doubt')?.value).toBe(0);
    expect(panel.stats.find((s) => s.label === 'committed')?.value).toBe(1);
    expect(panel.stats.find((s) => s.label === 'wallet payouts')?.value).toBe(1);
    expect(panel.stats.find((s) => s.label === 'ledger entries')?.value).toBe(1);
  });
});
