import { join } from 'node:path';
import { z } from 'zod';
import { CdpError, errorMessage } from '../../core/errors.js';
import { UuidV7Generator } from '../../core/ids.js';
import { PgliteSqlClient } from '../../engines/sql/pglite-sql-client.js';
import type { SqlClient } from '../../engines/sql/sql-client.js';
import {
  createBranch,
  PgTwoPhaseParticipant,
  TwoPhaseAbortedError,
  TwoPhaseCommitCoordinator,
  type TwoPhaseParticipant,
  twoPhaseCommitMigrations,
} from '../../workflow/index.js';
import { documented, refusal } from '../api-docs.js';
import type { PlatformFeature } from '../feature.js';
import { ForbiddenError, parseInput, RequestRefusedError } from '../http-errors.js';

/**
 * Instructor payouts as a two-phase commit between the platform's database (PostgreSQL or
 * PGlite: the payout record) and a payout ledger (MariaDB when CDP_MARIADB_URL is set, otherwise
 * a second embedded database): both records commit, or neither does. When the platform's
 * PostgreSQL server does not allow prepared transactions (`max_prepared_transactions = 0`), the
 * payout runs as a saga instead (record pending, write the ledger, confirm; cancel the record
 * when the ledger refuses), and the panel says so and why.
 */

const LEDGER_TABLE_PG = `CREATE TABLE IF NOT EXISTS app_payout_ledger (
  payout_id text PRIMARY KEY,
  platform text NOT NULL,
  instructor text NOT NULL,
  amount_cents bigint NOT NULL CHECK (amount_cents > 0),
  paid_at timestamptz NOT NULL DEFAULT now()
)`;
const LEDGER_DB_MARIADB = 'cdp_payout_ledger';
const LEDGER_TABLE_MARIADB = `CREATE TABLE IF NOT EXISTS ${LEDGER_DB_MARIADB}.app_payout_ledger (
  payout_id VARCHAR(64) PRIMARY KEY,
  platform VARCHAR(16) NOT NULL,
  instructor VARCHAR(200) NOT NULL,
  amount_cents BIGINT NOT NULL,
  paid_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
) ENGINE=InnoDB`;

/** The ledger as the feature uses it: one statement at a time (placeholders `$n` or `?`). */
interface Ledger {
  engine: string;
  participant: TwoPhaseParticipant<unknown>;
  /** The ledger entry, inside a two-phase branch (`db` is the branch's statement runner). */
  branchInsert(db: unknown, payoutId: string, instructor: string, cents: number): Promise<void>;
  /** The ledger entry on its own (saga mode); an entry already there is kept (a retry). */
  insert(payoutId: string, instructor: string, cents: number): Promise<void>;
  total(): Promise<number>;
  close(): Promise<void>;
}

class PayoutRefusedError extends RequestRefusedError {
  constructor(message: string) {
    super('PAYOUT_REFUSED', 409, message);
  }
}

const notThem = refusal(403, 'FORBIDDEN', 'this key acts as instructor "bob", not as "ada"');
const instructorParam = z.object({ instructor: z.string().min(1).max(120) });
const payoutBody = z.object({ amountCents: z.number().int().positive().max(100_000_000) });
const balance = z.object({
  instructor: z.string(),
  earnedCents: z.number(),
  paidCents: z.number(),
  /** Earnings of purchase sagas still before their pivot: not available until it passes. */
  pendingCents: z.number(),
  availableCents: z.number(),
  mode: z.enum(['two-phase-commit', 'saga']),
});
const payoutResult = z.object({
  id: z.string(),
  instructor: z.string(),
  amountCents: z.number(),
  status: z.enum(['paid', 'cancelled']),
  mode: z.enum(['two-phase-commit', 'saga']),
});

/** The ledger; `platform` (the coordinator id) marks this platform's entries in a shared one. */
async function openLedger(
  mariadbUrl: string | undefined,
  dataDir: string | undefined,
  platform: string,
): Promise<Ledger> {
  if (mariadbUrl) {
    const { MariaDbTwoPhaseParticipant } = await import('../../workflow/mariadb.js');
    const participant = await MariaDbTwoPhaseParticipant.open({ name: 'ledger', url: mariadbUrl });
    await participant.query(`CREATE DATABASE IF NOT EXISTS ${LEDGER_DB_MARIADB}`);
    await participant.query(LEDGER_TABLE_MARIADB);
    const columns = `${LEDGER_DB_MARIADB}.app_payout_ledger (payout_id, platform, instructor, amount_cents) VALUES (?, ?, ?, ?)`;
    return {
      engine: 'mariadb',
      participant: participant as TwoPhaseParticipant<unknown>,
      async branchInsert(db, id, instructor, cents) {
        await (db as typeof participant).query(`INSERT INTO ${columns}`, [
          id,
          platform,
          instructor,
          cents,
        ]);
      },
      async insert(id, instructor, cents) {
        await participant.query(`INSERT IGNORE INTO ${columns}`, [id, platform, instructor, cents]);
      },
      async total() {
        const { rows } = await participant.query<{ total: string | null }>(
          `SELECT sum(amount_cents) AS total FROM ${LEDGER_DB_MARIADB}.app_payout_ledger WHERE platform = ?`,
          [platform],
        );
        return Number(rows[0]?.total ?? 0);
      },
      close: () => participant.close(),
    };
  }
  const sql = await PgliteSqlClient.open({
    ...(dataDir ? { dataDir: join(dataDir, 'payout-ledger') } : {}),
    maxPreparedTransactions: 16,
  });
  await sql.exec(LEDGER_TABLE_PG);
  const participant = new PgTwoPhaseParticipant({ name: 'ledger', sql });
  const insert =
    'INSERT INTO app_payout_ledger (payout_id, platform, instructor, amount_cents) VALUES ($1, $2, $3, $4)';
  return {
    engine: 'pglite (second embedded database)',
    participant: participant as TwoPhaseParticipant<unknown>,
    async branchInsert(db, id, instructor, cents) {
      await (db as SqlClient).query(insert, [id, platform, instructor, cents]);
    },
    async insert(id, instructor, cents) {
      await sql.query(`${insert} ON CONFLICT (payout_id) DO NOTHING`, [
        id,
        platform,
        instructor,
        cents,
      ]);
    },
    async total() {
      const { rows } = await sql.query<{ total: string | null }>(
        'SELECT sum(amount_cents)::text AS total FROM app_payout_ledger WHERE platform = $1',
        [platform],
      );
      return Number(rows[0]?.total ?? 0);
    },
    close: () => sql.close(),
  };
}

/**
 * An instructor's earnings (the purchases of their courses, as projected), payouts (not
 * cancelled), and pending earnings: the projected charges and refunds of purchase sagas whose
 * seat is not confirmed yet. A saga's charge is final only at its pivot (the seat confirmed and
 * access granted); before it, a later failure refunds the charge. Counting only settled
 * earnings as available means a refund never takes an instructor's balance below what was paid
 * out. A saga's net is pending while it runs and 0 once it was compensated.
 */
async function amounts(
  q: Pick<SqlClient, 'query'>,
  instructor: string,
): Promise<{ earned: number; paid: number; pending: number }> {
  const { rows } = await q.query<{ earned: string; paid: string; pending: string }>(
    `SELECT
       (SELECT coalesce(sum(p.amount_cents), 0) FROM app_purchases p JOIN courses c ON c.id::text = p.course_id
         WHERE c.instructor = $1)::text AS earned,
       (SELECT coalesce(sum(amount_cents), 0) FROM app_payouts
         WHERE instructor = $1 AND status <> 'cancelled')::text AS paid,
       (SELECT coalesce(sum(p.amount_cents), 0)
          FROM app_seat_reservations r
          JOIN courses c ON c.id::text = r.course
          JOIN cdp_events e ON e.type IN ('WalletCharged', 'ChargeRefunded')
                           AND e.stream_id = 'wallet-' || r.student
                           AND e.data->>'purchaseId' = r.purchase_id
          JOIN app_purchases p ON p.event_id = e.event_id
         WHERE c.instructor = $1 AND r.status <> 'confirmed')::text AS pending`,
    [instructor],
  );
  const r = rows[0]!;
  return { earned: Number(r.earned), paid: Number(r.paid), pending: Number(r.pending) };
}

export const payoutsFeature: PlatformFeature = {
  name: 'payouts',
  description:
    'Instructor payouts: a two-phase commit between the platform database and a payout ledger (MariaDB, or a second embedded database)',
  docs: ['docs/patterns/two-phase-commit.md'],
  migrations: [
    ...twoPhaseCommitMigrations,
    {
      module: 'payouts-app',
      version: 1,
      name: 'payout records and the coordinator id',
      sql: `CREATE TABLE app_payouts (
        id text PRIMARY KEY,
        instructor text NOT NULL,
        amount_cents bigint NOT NULL CHECK (amount_cents > 0),
        status text NOT NULL CHECK (status IN ('pending', 'paid', 'cancelled')),
        created_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX app_payouts_instructor ON app_payouts (instructor);
      CREATE TABLE app_payout_accounts (instructor text PRIMARY KEY);
      CREATE TABLE app_payout_settings (coordinator_id text NOT NULL);`,
    },
  ],
  async start({ sql, config, clock, logger, registry, lifecycle, http, auth }) {
    const ids = new UuidV7Generator(clock);
    const wallet = new PgTwoPhaseParticipant({ name: 'platform', sql });
    // The ledger (a second database, or MariaDB) and the coordinator open in the background, so
    // that the platform's start does not wait for them; recovery of what a crash left prepared
    // runs as the coordinator opens. Requests wait for them.
    const setup = (async () => {
      let mode: 'two-phase-commit' | 'saga' = 'two-phase-commit';
      let why = '';
      try {
        await wallet.check();
      } catch (err) {
        mode = 'saga';
        why = `the platform's database does not allow prepared transactions (${errorMessage(err)})`;
      }
      // One coordinator id per platform database, kept across restarts, so that recovery finds
      // this database's prepared branches and never those of another platform on the same ledger.
      await sql.query(
        `INSERT INTO app_payout_settings (coordinator_id)
         SELECT $1 WHERE NOT EXISTS (SELECT 1 FROM app_payout_settings)`,
        [`p${ids.next().replace(/-/g, '').slice(-11)}`],
      );
      const { rows } = await sql.query<{ coordinator_id: string }>(
        'SELECT coordinator_id FROM app_payout_settings LIMIT 1',
      );
      const coordinatorId = rows[0]!.coordinator_id;
      const ledger = await openLedger(
        config.mariadbUrl,
        config.database.kind === 'pglite' ? config.database.dataDir : undefined,
        coordinatorId,
      );
      const coordinator =
        mode === 'two-phase-commit'
          ? await TwoPhaseCommitCoordinator.open({
              sql,
              id: coordinatorId,
              participants: [wallet, ledger.participant],
              clock,
              logger,
              registry,
            }).catch(async (err) => {
              await ledger.close();
              throw err;
            })
          : undefined;
      return { ledger, coordinator, mode, why };
    })();
    setup.catch((err) => logger.error({ err: errorMessage(err) }, 'payouts could not start'));
    lifecycle.defer('payouts', async () => {
      const opened = await setup.catch(() => undefined);
      await opened?.coordinator?.close();
      await opened?.ledger.close();
    });

    const balanceOf = async (instructor: string) => {
      const { mode } = await setup;
      const b = await amounts(sql, instructor);
      return {
        instructor,
        earnedCents: b.earned,
        paidCents: b.paid,
        pendingCents: b.pending,
        availableCents: b.earned - b.paid - b.pending,
        mode,
      };
    };

    /** Record the payout in the platform's database, refusing more than is available. */
    const record = async (
      tx: Pick<SqlClient, 'query'>,
      id: string,
      instructor: string,
      cents: number,
      status: 'pending' | 'paid',
    ) => {
      // One payout of an instructor at a time: the row lock orders them.
      await tx.query(
        'INSERT INTO app_payout_accounts (instructor) VALUES ($1) ON CONFLICT DO NOTHING',
        [instructor],
      );
      await tx.query('SELECT 1 FROM app_payout_accounts WHERE instructor = $1 FOR UPDATE', [
        instructor,
      ]);
      const b = await amounts(tx, instructor);
      const available = b.earned - b.paid - b.pending;
      if (cents > available) {
        const pending =
          b.pending > 0
            ? ` (${b.pending} cents more are earned by purchases not yet past their pivot, and become available when they complete)`
            : '';
        throw new PayoutRefusedError(
          available > 0
            ? `instructor ${instructor} has ${available} cents available, less than the ${cents} asked for${pending}; ask for at most ${available}`
            : `instructor ${instructor} has nothing available to pay out${pending}`,
        );
      }
      await tx.query(
        'INSERT INTO app_payouts (id, instructor, amount_cents, status) VALUES ($1, $2, $3, $4)',
        [id, instructor, cents, status],
      );
    };

    const pay = async (instructor: string, cents: number) => {
      const { ledger, coordinator, mode } = await setup;
      const id = ids.next();
      if (coordinator) {
        try {
          await coordinator.execute([
            createBranch(wallet, (tx) => record(tx, id, instructor, cents, 'paid')),
            createBranch(ledger.participant, (db: unknown) =>
              ledger.branchInsert(db, id, instructor, cents),
            ),
          ]);
        } catch (err) {
          if (err instanceof TwoPhaseAbortedError && err.cause instanceof CdpError) throw err.cause;
          throw err;
        }
        return { id, instructor, amountCents: cents, status: 'paid' as const, mode };
      }
      // Saga: record pending (the money is held), write the ledger, confirm; cancel when the
      // ledger refuses. The ledger write is keyed by the payout id, so a retry cannot pay twice.
      await sql.transaction((tx) => record(tx, id, instructor, cents, 'pending'));
      try {
        await ledger.insert(id, instructor, cents);
      } catch (err) {
        logger.warn({ err: errorMessage(err), payout: id }, 'payout ledger refused: cancelling');
        await sql.query("UPDATE app_payouts SET status = 'cancelled' WHERE id = $1", [id]);
        return { id, instructor, amountCents: cents, status: 'cancelled' as const, mode };
      }
      await sql.query("UPDATE app_payouts SET status = 'paid' WHERE id = $1", [id]);
      return { id, instructor, amountCents: cents, status: 'paid' as const, mode };
    };

    const mayActFor = (by: { role: string; subject: string }, instructor: string) => {
      if (by.role === 'admin' || by.role === 'viewer') return;
      if (by.subject !== instructor) {
        throw new ForbiddenError(
          `this key acts as instructor "${by.subject}", not as "${instructor}"`,
        );
      }
    };

    http.get(
      '/api/payouts/instructors/:instructor',
      documented({
        summary: "An instructor's earnings, payouts and what is available",
        description:
          "Earnings are the purchases of the instructor's courses; payouts already made (or pending in a saga) are subtracted, and so are the earnings of purchase sagas not yet past their pivot (`pendingCents`: a later step may still refund them). `mode` says how payouts run on this platform: two-phase commit, or a saga when the database cannot prepare transactions.",
        tags: ['payouts'],
        roles: ['instructor', 'viewer'],
        access: 'An instructor reads only their own.',
        params: instructorParam,
        responses: {
          200: {
            description: 'The balance',
            schema: balance,
            example: {
              instructor: 'ada',
              earnedCents: 4900,
              paidCents: 1000,
              pendingCents: 0,
              availableCents: 3900,
              mode: 'two-phase-commit',
            },
          },
        },
        errors: [notThem],
      }),
      async (req) => {
        const by = await auth.require(req, 'instructor', 'admin', 'viewer');
        const { instructor } = parseInput(instructorParam, req.params, 'path');
        mayActFor(by, instructor);
        return balanceOf(instructor);
      },
    );
    http.post(
      '/api/payouts/instructors/:instructor/payouts',
      documented({
        summary: 'Pay an instructor out',
        description:
          "Moves the amount from the instructor's earnings (a payout record in the platform database) to the payout ledger (MariaDB, or a second embedded database) in one two-phase commit: both records commit or neither does. The amount may not exceed what is available (409).",
        tags: ['payouts'],
        roles: ['instructor'],
        access: 'An instructor pays out only their own earnings.',
        params: instructorParam,
        body: payoutBody,
        bodyExamples: { tenEuros: { summary: 'Pay out 10.00', value: { amountCents: 1000 } } },
        responses: {
          201: {
            description: 'Paid (or, in saga mode, cancelled because the ledger refused)',
            schema: payoutResult,
            example: {
              id: '0190f3c2-7a1b-7c3d-8e4f-5a6b7c8d9e0f',
              instructor: 'ada',
              amountCents: 1000,
              status: 'paid',
              mode: 'two-phase-commit',
            },
          },
        },
        errors: [
          notThem,
          refusal(
            409,
            'PAYOUT_REFUSED',
            'instructor ada has 900 cents available, less than the 1000 asked for; ask for at most 900',
          ),
        ],
      }),
      async (req, reply) => {
        const by = await auth.require(req, 'instructor', 'admin');
        const { instructor } = parseInput(instructorParam, req.params, 'path');
        mayActFor(by, instructor);
        const { amountCents } = parseInput(payoutBody, req.body, 'body');
        return reply.status(201).send(await pay(instructor, amountCents));
      },
    );

    return {
      service: { pay, balanceOf },
      panel: async () => {
        const { ledger, coordinator, mode, why } = await setup;
        const { rows } = await sql.query<{ status: string; n: number; cents: string }>(
          'SELECT status, count(*)::int AS n, sum(amount_cents)::text AS cents FROM app_payouts GROUP BY status',
        );
        const by = (s: string) => rows.find((r) => r.status === s);
        const inDoubt = coordinator ? (await coordinator.inDoubt()).length : 0;
        return {
          id: 'payouts',
          title: `Instructor payouts (${mode === 'saga' ? 'saga' : 'two-phase commit'})`,
          stats: [
            {
              label: 'in-doubt transactions',
              value: inDoubt,
              hint: 'Branches prepared and not yet committed or rolled back: zero at rest; recovery finishes any a crash left',
            },
            {
              label: 'paid (platform)',
              value: Number(by('paid')?.cents ?? 0),
              unit: 'cents',
              hint: 'The sum of paid payout records in the platform database',
            },
            {
              label: 'paid (ledger)',
              value: await ledger.total(),
              unit: 'cents',
              hint: 'The sum of the ledger entries: equal to the platform figure when every payout committed on both sides',
            },
            {
              label: 'payouts paid',
              value: by('paid')?.n ?? 0,
              hint: 'Payouts committed on both sides',
            },
            { label: 'mode', value: mode, hint: why || 'both databases can prepare transactions' },
            {
              label: 'ledger',
              value: ledger.engine,
              hint: 'Where the payout ledger lives: MariaDB when CDP_MARIADB_URL is set, otherwise a second embedded database',
            },
          ],
          charts: [
            {
              title: 'Paid on each side',
              stats: ['paid (platform)', 'paid (ledger)'],
              unit: 'cents',
              hint: 'The two lines lie on each other: every payout commits on both databases or on neither.',
            },
            {
              title: 'In-doubt transactions',
              stats: ['in-doubt transactions'],
              hint: 'Prepared branches waiting for the decision: a blip during a payout, zero at rest.',
            },
          ],
          docs: 'docs/patterns/two-phase-commit.md',
        };
      },
    };
  },
};
