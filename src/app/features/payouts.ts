import { join } from 'node:path';
import { z } from 'zod';
import { errorMessage } from '../../core/errors.js';
import { UuidV7Generator } from '../../core/ids.js';
import type { Migration } from '../../engines/sql/migrations.js';
import { PgliteSqlClient } from '../../engines/sql/pglite-sql-client.js';
import type { SqlClient } from '../../engines/sql/sql-client.js';
import {
  createBranch,
  PgTwoPhaseParticipant,
  TwoPhaseAbortedError,
  TwoPhaseCommitCoordinator,
} from '../../workflow/index.js';
import { documented, refusal } from '../api-docs.js';
import type { PlatformFeature } from '../feature.js';
import {
  ForbiddenError,
  parseInput,
  quote,
  RequestRefusedError,
  singleLine,
} from '../http-errors.js';

/**
 * Instructor payouts as a two-phase commit between the wallet database (the platform's, where
 * purchases are) and a payout ledger: a second embedded database (PGlite preparing
 * transactions). On a PostgreSQL server whose max_prepared_transactions is 0 the feature says
 * it is unavailable (panel, 503). A MariaDB ledger (CDP_MARIADB_URL) is not wired here yet. The payout is written on both or on neither; the dashboard shows the
 * coordinator's outcomes and the in-doubt (prepared, undecided) branches, zero at rest.
 */

const payoutMigrations: Migration[] = [
  {
    module: 'payouts-app',
    version: 1,
    name: 'instructor payouts on the wallet side, and what each instructor was paid',
    sql: `
CREATE TABLE app_instructor_paid (instructor text PRIMARY KEY, paid_cents bigint NOT NULL);
CREATE TABLE app_instructor_payouts (
  id text PRIMARY KEY, instructor text NOT NULL, amount_cents bigint NOT NULL,
  paid_at timestamptz NOT NULL DEFAULT now());
`,
  },
];

const LEDGER_TABLE = `CREATE TABLE IF NOT EXISTS payout_ledger (
  id text PRIMARY KEY, instructor text NOT NULL, amount_cents bigint NOT NULL,
  entered_at timestamptz NOT NULL DEFAULT now())`;

const payoutBody = z.strictObject({ instructor: singleLine(120) });
const payoutView = z.object({
  id: z.string(),
  instructor: z.string(),
  amountCents: z.number().int(),
  status: z.enum(['committed', 'committing']),
});

const docs = {
  payout: documented({
    summary: "Pay out an instructor's earnings (two-phase commit)",
    description:
      "Pays the instructor what their completed course purchases earned and was not paid yet: the payout is recorded in the wallet database and in the payout ledger by one two-phase commit, on both or on neither. 'committing' means the decision is durable and recovery finishes delivering it.",
    tags: ['payouts'],
    roles: ['instructor'],
    access: 'An instructor pays out only their own earnings.',
    body: payoutBody,
    bodyExamples: { own: { summary: 'An instructor', value: { instructor: 'Ada Park' } } },
    responses: {
      201: {
        description: 'Paid',
        schema: payoutView,
        example: {
          id: '0193a5b2-9e3f-7d5a-b123-4c5d6e7f8092',
          instructor: 'Ada Park',
          amountCents: 4900,
          status: 'committed',
        },
      },
    },
    errors: [
      refusal(409, 'NOTHING_DUE', 'instructor "Ada Park" has nothing due'),
      refusal(
        503,
        'PAYOUTS_UNAVAILABLE',
        'payouts need a wallet database that can prepare transactions (max_prepared_transactions > 0)',
      ),
    ],
  }),
};

export const payoutsFeature: PlatformFeature = {
  name: 'payouts',
  description: 'instructor payouts: two-phase commit between the wallet database and a ledger',
  docs: ['docs/patterns/two-phase-commit.md'],
  migrations: payoutMigrations,
  async start(ctx) {
    const { sql, http, lifecycle, logger, clock, config } = ctx;
    const wallet = new PgTwoPhaseParticipant({ name: 'wallet', sql });
    const ids = new UuidV7Generator(clock);
    let unavailable: string | undefined;
    try {
      await wallet.check();
    } catch (err) {
      unavailable = errorMessage(err);
      logger.warn(
        { err: unavailable },
        'payouts unavailable: the wallet database cannot prepare transactions',
      );
    }
    let coordinator: TwoPhaseCommitCoordinator | undefined;
    let ledgerSql: SqlClient | undefined;
    let ledger: PgTwoPhaseParticipant | undefined;
    if (!unavailable) {
      ledgerSql = lifecycle.use(
        'payout ledger',
        await PgliteSqlClient.open({
          // Beside the platform's other files (as media's storage), or in memory.
          dataDir:
            config.dataDir === 'memory://' ? undefined : join(config.dataDir, 'payout-ledger'),
          maxPreparedTransactions: 16,
        }),
      );
      await ledgerSql.exec(LEDGER_TABLE);
      ledger = new PgTwoPhaseParticipant({ name: 'ledger', sql: ledgerSql });
      coordinator = lifecycle.use(
        'payout coordinator',
        await TwoPhaseCommitCoordinator.open({
          sql,
          id: 'payouts',
          participants: [wallet, ledger],
          clock,
          logger,
        }),
      );
    }

    http.post('/api/payouts', docs.payout, async (req, reply) => {
      const by = await ctx.auth.require(req, 'instructor');
      const { instructor } = parseInput(payoutBody, req.body, 'body');
      if (by.role !== 'admin' && by.subject !== instructor) {
        throw new ForbiddenError(
          `this key acts as instructor ${quote(by.subject)}, not as ${quote(instructor)}`,
        );
      }
      if (!coordinator || !ledger) {
        throw new RequestRefusedError(
          'PAYOUTS_UNAVAILABLE',
          503,
          `payouts need a wallet database that can prepare transactions: ${unavailable}`,
        );
      }
      let amount = 0;
      const id = ids.next();
      try {
        const r = await coordinator.execute([
          // In order: the wallet branch decides the amount (its instructor row locked), then
          // the ledger records it.
          createBranch(wallet, async (tx) => {
            await tx.query(
              'INSERT INTO app_instructor_paid (instructor, paid_cents) VALUES ($1, 0) ON CONFLICT DO NOTHING',
              [instructor],
            );
            const paid = await tx.query<{ paid: string }>(
              'SELECT paid_cents::text AS paid FROM app_instructor_paid WHERE instructor = $1 FOR UPDATE',
              [instructor],
            );
            const earned = await tx.query<{ earned: string }>(
              `SELECT coalesce(sum(r.amount_cents), 0)::text AS earned
               FROM app_seat_reservations r JOIN courses c ON c.id::text = r.course
               WHERE r.status = 'confirmed' AND c.instructor = $1`,
              [instructor],
            );
            amount = Number(earned.rows[0]!.earned) - Number(paid.rows[0]!.paid);
            if (amount <= 0) {
              throw new RequestRefusedError(
                'NOTHING_DUE',
                409,
                `instructor ${quote(instructor)} has nothing due`,
              );
            }
            await tx.query(
              'UPDATE app_instructor_paid SET paid_cents = paid_cents + $2 WHERE instructor = $1',
              [instructor, amount],
            );
            await tx.query(
              'INSERT INTO app_instructor_payouts (id, instructor, amount_cents) VALUES ($1, $2, $3)',
              [id, instructor, amount],
            );
          }),
          createBranch(ledger, async (tx) => {
            await tx.query(
              'INSERT INTO payout_ledger (id, instructor, amount_cents) VALUES ($1, $2, $3)',
              [id, instructor, amount],
            );
          }),
        ]);
        return reply.status(201).send({ id, instructor, amountCents: amount, status: r.status });
      } catch (err) {
        if (err instanceof TwoPhaseAbortedError && err.cause instanceof RequestRefusedError) {
          throw err.cause;
        }
        throw err;
      }
    });

    return {
      panel: async () => {
        if (!coordinator) {
          return {
            id: 'payouts',
            title: 'Instructor payouts (two-phase commit)',
            stats: [{ label: 'status', value: 'unavailable', hint: unavailable ?? '' }],
            docs: 'docs/patterns/two-phase-commit.md',
          };
        }
        const counts = await coordinator.statusCounts();
        const inDoubt = await coordinator.inDoubt();
        const count = async (db: SqlClient, table: string) =>
          (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`)).rows[0]!.n;
        return {
          id: 'payouts',
          title: 'Instructor payouts (two-phase commit)',
          stats: [
            ...Object.entries(counts).map(([label, value]) => ({ label, value })),
            {
              label: 'wallet payouts',
              value: await count(sql, 'app_instructor_payouts'),
              hint: 'Payouts recorded in the wallet database.',
            },
            {
              label: 'ledger entries',
              value: await count(ledgerSql!, 'payout_ledger'),
              hint: 'Payouts recorded in the payout ledger: equal to the wallet payouts.',
            },
            {
              label: 'in doubt',
              value: inDoubt.length,
              hint: 'Branches prepared and not yet committed or rolled back: zero at rest.',
            },
          ],
          docs: 'docs/patterns/two-phase-commit.md',
        };
      },
    };
  },
};
