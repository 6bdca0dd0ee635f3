import type { CommandHandler } from '../../cqrs/index.js';
import { DomainError } from '../../cqrs/index.js';
import type { Migration } from '../../engines/sql/migrations.js';
import type { SqlTransaction } from '../../engines/sql/sql-client.js';
import {
  defineSaga,
  type SagaBackoff,
  type SagaOutcome,
  type Workflow,
} from '../../workflow/index.js';
import {
  ChargeWallet,
  RefundCharge,
  type WalletCommand,
  type WalletEvent,
  type WalletState,
} from '../reviews/deciders.js';

/**
 * A course purchase as an orchestrated saga on the workflow engine:
 *   reserve  (SQL)   a seat row in status 'pending' (the semantic lock: readers see a pending
 *                    purchase, and the seat counts as taken); refused when the course is full.
 *                    Compensation: the seat is released.
 *   charge   (call)  the student's event-sourced wallet, once per purchase id (the decider
 *                    ignores a repeat). A declined charge fails the saga. Compensation: a refund.
 *   grant    (SQL)   the pivot: the seat is confirmed and the student given access, in one
 *                    transaction. A refusal (the student got access meanwhile) compensates
 *                    the charge and the seat; once it commits the purchase only goes forward.
 *   receipt  (SQL)   the receipt, written through the outbox in the step's transaction.
 * The run id is the purchase id.
 */

export const purchaseMigrations: Migration[] = [
  {
    module: 'purchases-app',
    version: 1,
    name: 'seat reservations (pending, confirmed, released) and course seat limits',
    sql: `
CREATE TABLE app_seat_reservations (
  purchase_id text PRIMARY KEY,
  course text NOT NULL,
  student text NOT NULL,
  status text NOT NULL CHECK (status IN ('pending', 'confirmed', 'released')),
  amount_cents integer NOT NULL,
  reserved_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX app_seat_reservations_taken ON app_seat_reservations (course) WHERE status <> 'released';
CREATE TABLE app_course_seats (course text PRIMARY KEY, seats integer NOT NULL CHECK (seats >= 0));
`,
  },
];

export interface PurchaseInput {
  student: string;
  course: string;
  /** From the catalog when the purchase was asked for, never from the client. */
  amountCents: number;
}

export interface PurchaseOutput {
  purchaseId: string;
  balanceCents: number;
}

export type PurchaseOutcome = SagaOutcome<PurchaseOutput>;

export interface PurchaseSagaDeps {
  wallets: CommandHandler<WalletCommand, WalletEvent, WalletState>;
  /**
   * Give the student access, in the step's transaction; false when refused (then the step
   * fails with ACCESS_REFUSED and the purchase is compensated). Access granted by the same
   * purchase id before (the step ran again after a crash) is not a refusal.
   */
  grant(tx: SqlTransaction, student: string, course: string, purchaseId: string): Promise<boolean>;
  /** Send the receipt (through the outbox), in the step's transaction. */
  receipt(
    tx: SqlTransaction,
    r: { purchaseId: string; student: string; course: string; amountCents: number },
  ): Promise<void>;
  backoff?: SagaBackoff;
}

export const PURCHASE_SAGA = 'course-purchase';

export function purchaseSaga(deps: PurchaseSagaDeps): Workflow<PurchaseInput, PurchaseOutcome> {
  return defineSaga<PurchaseInput, PurchaseOutput>(
    { name: PURCHASE_SAGA, version: 1 },
    {
      ...(deps.backoff ? { backoff: deps.backoff } : {}),
      steps: [
        {
          name: 'reserve',
          transaction: true,
          run: async (tx, { runId, input }) => {
            // The course's seat limit row, locked: reservations of one course queue here.
            const limit = await tx.query<{ seats: number }>(
              'SELECT seats FROM app_course_seats WHERE course = $1 FOR UPDATE',
              [input.course],
            );
            if (limit.rows[0]) {
              const taken = await tx.query<{ n: number }>(
                `SELECT count(*)::int AS n FROM app_seat_reservations
                 WHERE course = $1 AND status <> 'released'`,
                [input.course],
              );
              if (taken.rows[0]!.n >= limit.rows[0].seats) {
                throw new DomainError(
                  `course ${input.course} is full (${limit.rows[0].seats} seats taken or pending)`,
                  'COURSE_FULL',
                );
              }
            }
            await tx.query(
              `INSERT INTO app_seat_reservations (purchase_id, course, student, status, amount_cents)
               VALUES ($1, $2, $3, 'pending', $4)`,
              [runId, input.course, input.student, input.amountCents],
            );
            return 'pending';
          },
          compensate: async (tx, { runId }) => {
            await tx.query(
              `UPDATE app_seat_reservations SET status = 'released', updated_at = now()
               WHERE purchase_id = $1 AND status = 'pending'`,
              [runId],
            );
          },
        },
        {
          name: 'charge',
          run: async ({ runId, input }) => {
            const r = await deps.wallets.handle(
              ChargeWallet.parse({
                studentId: input.student,
                purchaseId: runId,
                courseId: input.course,
                amountCents: input.amountCents,
              }),
            );
            return r.state.balanceCents;
          },
          compensate: async ({ runId, input }) => {
            await deps.wallets.handle(
              RefundCharge.parse({ studentId: input.student, purchaseId: runId }),
            );
          },
        },
        {
          name: 'grant',
          transaction: true,
          pivot: true,
          run: async (tx, { runId, input }) => {
            await tx.query(
              `UPDATE app_seat_reservations SET status = 'confirmed', updated_at = now()
               WHERE purchase_id = $1`,
              [runId],
            );
            if (!(await deps.grant(tx, input.student, input.course, runId))) {
              throw new DomainError(
                `student ${input.student} already has access to course ${input.course}`,
                'ACCESS_REFUSED',
              );
            }
            return 'granted';
          },
        },
        {
          name: 'receipt',
          transaction: true,
          run: async (tx, { runId, input }) => {
            await deps.receipt(tx, { purchaseId: runId, ...input });
            return 'sent';
          },
        },
      ],
      output: ({ runId, results }) => ({
        purchaseId: runId,
        balanceCents: results.charge as number,
      }),
    },
  );
}
