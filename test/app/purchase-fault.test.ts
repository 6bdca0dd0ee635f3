import type { ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { purchaseMigrations } from '../../src/app/purchases/saga.js';
import { studentWallet, TopUpWallet, walletStream } from '../../src/app/reviews/deciders.js';
import { CommandHandler } from '../../src/cqrs/index.js';
import { migrate } from '../../src/engines/sql/migrations.js';
import { PgSqlClient } from '../../src/engines/sql/pg-sql-client.js';
import { eventStoreMigrations, SqlEventStore } from '../../src/events/index.js';
import { createTempDatabase, eventually, type TempDatabase } from '../../src/testing/index.js';
import { WorkflowEngine, workflowMigrations } from '../../src/workflow/index.js';
import { describeServer } from '../support/servers.js';
import { exited, spawnWorker } from '../support/worker-process.js';

const here = dirname(fileURLToPath(import.meta.url));
/** Purchases in the run: CI runs 1,000; the 10,000 run is `CDP_PURCHASE_FAULT_RUNS=10000`. */
const RUNS = Number(process.env.CDP_PURCHASE_FAULT_RUNS ?? 1000);
const WORKERS = 4;
const STUDENTS = Math.max(50, Math.floor(RUNS / 5));
const COURSES = 50;

/** Spawn a worker process (fault/purchase-worker-process.ts); `ready` resolves once it is ready or dead. */
const worker = (env: Record<string, string>) =>
  spawnWorker(join(here, 'fault', 'purchase-worker-process.ts'), env);

describeServer('purchase saga fault run: PostgreSQL', 'CDP_DATABASE_URL', (url) => {
  let db: TempDatabase;
  let sql: PgSqlClient;
  const children: ChildProcess[] = [];
  beforeAll(async () => {
    db = await createTempDatabase(url, { prefix: 'cdp_purchase_fault' });
    sql = await PgSqlClient.open({ url: db.url, max: 8 });
    await migrate(sql, [...eventStoreMigrations, ...workflowMigrations, ...purchaseMigrations]);
    await sql.exec(`
      CREATE TABLE fault_access (student text NOT NULL, course text NOT NULL);
      CREATE TABLE fault_receipts (purchase_id text NOT NULL, amount_cents integer NOT NULL);`);
  });
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await Promise.all(children.map(exited));
    await sql.close();
    await db.drop();
  });

  it(`${RUNS.toLocaleString('en')} purchases through ${WORKERS} worker processes SIGKILLed at random: money conserved, zero runs stuck, each effect once`, async () => {
    const started = Date.now();
    // Seeded choices, so that a failing run can be repeated.
    let seed = 42;
    const rand = (n: number) => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return Math.floor((seed / 2 ** 31) * n);
    };
    const store = new SqlEventStore(sql);
    const wallets = new CommandHandler({ store, decider: studentWallet, streamId: walletStream });
    // Wallets from 0 to 400.00: some purchases are declined. Every fifth course has few seats.
    let moneyIn = 0;
    for (let s = 0; s < STUDENTS; s++) {
      const amountCents = rand(40_001);
      if (amountCents === 0) continue;
      moneyIn += amountCents;
      await wallets.handle(TopUpWallet.parse({ studentId: `st-${s}`, amountCents }));
    }
    for (let c = 0; c < COURSES; c += 5) {
      await sql.query('INSERT INTO app_course_seats (course, seats) VALUES ($1, $2)', [
        `co-${c}`,
        Math.max(1, Math.floor(RUNS / COURSES / 2)),
      ]);
    }
    const client = await WorkflowEngine.open({ sql, worker: false, migrate: false });
    const purchase = { name: 'course-purchase', version: 1 };
    const inputs = Array.from({ length: RUNS }, (_, i) => {
      const c = rand(COURSES);
      return {
        id: `p-${i}`,
        input: { student: `st-${rand(STUDENTS)}`, course: `co-${c}`, amountCents: 500 + c * 90 },
      };
    });
    for (let i = 0; i < inputs.length; i += 50) {
      await Promise.all(inputs.slice(i, i + 50).map((p) => client.start(purchase, p)));
    }
    await client.close();

    let n = 0;
    const alive = new Map<number, { child: ChildProcess; ready: Promise<void> }>();
    const spawnSlot = (slot: number) => {
      const w = worker({
        PF_DB_URL: db.url,
        PF_WORKER_ID: n % 2 === 0 ? `slot-${slot}` : `slot-${slot}-${n}`,
        PF_LEASE_MS: '1000',
        PF_CONCURRENCY: '16',
      });
      n++;
      children.push(w.child);
      alive.set(slot, w);
      return w.ready;
    };
    await Promise.all(Array.from({ length: WORKERS }, (_, s) => spawnSlot(s)));
    const ended = async () => {
      const { rows } = await sql.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM cdp_workflow_runs WHERE status IN ('completed', 'failed', 'cancelled')",
      );
      return rows[0]!.n;
    };
    let kills = 0;
    const until = Date.now() + Math.max(60_000, RUNS * 60);
    // A random worker is SIGKILLed every 0.5-1.5 s while runs remain, and restarted at once.
    while (Date.now() < until && (await ended()) < RUNS) {
      await new Promise((r) => setTimeout(r, 500 + Math.random() * 1000));
      const slot = Math.floor(Math.random() * WORKERS);
      const victim = alive.get(slot)!;
      await victim.ready;
      victim.child.kill('SIGKILL');
      await exited(victim.child);
      kills++;
      void spawnSlot(slot);
    }
    await eventually(
      async () => ((await ended()) === RUNS ? true : undefined),
      'every purchase saga ends',
      { timeoutMs: 120_000 },
    );
    const seconds = (Date.now() - started) / 1000;

    const { rows: outcomes } = await sql.query<{ outcome: string; n: number }>(
      `SELECT coalesce((output::jsonb)->>'status', status) AS outcome, count(*)::int AS n
       FROM cdp_workflow_runs GROUP BY 1 ORDER BY 1`,
    );
    const count = (o: string) => outcomes.find((r) => r.outcome === o)?.n ?? 0;
    const { rows: why } = await sql.query<{ k: string; n: number }>(
      `SELECT (output::jsonb)->>'failedStep' || ':' || coalesce((output::jsonb)->'reason'->>'code', (output::jsonb)->'reason'->>'name') AS k,
              count(*)::int AS n
       FROM cdp_workflow_runs WHERE (output::jsonb)->>'status' = 'compensated' GROUP BY 1 ORDER BY 1`,
    );
    // Money: the wallets' events, per purchase.
    const { rows: money } = await sql.query<{
      type: string;
      n: number;
      cents: string;
      dup: number;
    }>(
      `SELECT type, count(*)::int AS n, coalesce(sum((data->>'amountCents')::bigint), 0)::text AS cents,
              count(*)::int - count(DISTINCT data->>'purchaseId')::int AS dup
       FROM cdp_events WHERE type IN ('WalletCharged', 'ChargeRefunded') GROUP BY type`,
    );
    const of = (t: string) => money.find((r) => r.type === t) ?? { n: 0, cents: '0', dup: 0 };
    const revenue = Number(of('WalletCharged').cents) - Number(of('ChargeRefunded').cents);
    const { rows: expected } = await sql.query<{ cents: string }>(
      `SELECT coalesce(sum((input::jsonb->>'amountCents')::bigint), 0)::text AS cents
       FROM cdp_workflow_runs WHERE (output::jsonb)->>'status' = 'completed'`,
    );
    let balances = 0;
    for (let s = 0; s < STUDENTS; s++) {
      balances += (await wallets.load(walletStream({ studentId: `st-${s}` }))).state.balanceCents;
    }
    const { rows: seats } = await sql.query<{ status: string; n: number }>(
      'SELECT status, count(*)::int AS n FROM app_seat_reservations GROUP BY status',
    );
    const seat = (s: string) => seats.find((r) => r.status === s)?.n ?? 0;
    const { rows: effects } = await sql.query<{
      access: number;
      receipts: number;
      dupReceipts: number;
      dupAccess: number;
    }>(
      `SELECT (SELECT count(*)::int FROM fault_access) AS access,
              (SELECT count(*)::int FROM fault_receipts) AS receipts,
              (SELECT count(*)::int - count(DISTINCT purchase_id)::int FROM fault_receipts) AS "dupReceipts",
              (SELECT count(*)::int - count(DISTINCT (student, course))::int FROM fault_access) AS "dupAccess"`,
    );
    const { rows: moved } = await sql.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM cdp_workflow_runs WHERE claims > 1',
    );
    const figures = {
      runs: RUNS,
      workers: WORKERS,
      kills,
      seconds,
      completed: count('completed'),
      compensated: count('compensated'),
      compensatedBy: Object.fromEntries(why.map((r) => [r.k, r.n])),
      runsTakenOver: moved[0]!.n,
      moneyIn,
      balances,
      revenue,
      charges: of('WalletCharged').n,
      refunds: of('ChargeRefunded').n,
      seats: Object.fromEntries(seats.map((r) => [r.status, r.n])),
      ...effects[0],
    };
    console.log(`purchase saga fault run: ${JSON.stringify(figures)}`);

    expect(kills).toBeGreaterThan(0);
    // Zero runs stuck: every saga completed or compensated, none failed.
    expect(count('completed') + count('compensated')).toBe(RUNS);
    // Money in = money out: what the wallets hold plus what completed purchases kept.
    expect(balances + revenue).toBe(moneyIn);
    expect(revenue).toBe(Number(expected[0]!.cents));
    // Each charge and refund once per purchase; each refund undoes a charge.
    expect(of('WalletCharged').dup).toBe(0);
    expect(of('ChargeRefunded').dup).toBe(0);
    expect(of('ChargeRefunded').n).toBeGreaterThan(0);
    // Seats: confirmed for each completed purchase, no semantic lock left behind.
    expect(seat('pending')).toBe(0);
    expect(seat('confirmed')).toBe(count('completed'));
    expect(effects[0]).toEqual({
      access: count('completed'),
      receipts: count('completed'),
      dupReceipts: 0,
      dupAccess: 0,
    });
  }, 1_800_000);
});
