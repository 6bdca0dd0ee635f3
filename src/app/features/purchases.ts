import { z } from 'zod';
import type { CommandHandler } from '../../cqrs/index.js';
import {
  type RunDetail,
  type SagaStepProgress,
  sagaProgress,
  type WorkflowEngine,
  WorkflowNotFoundError,
} from '../../workflow/index.js';
import { courseNotFound, documented, examples, refusal } from '../api-docs.js';
import type { Demo, PlatformFeature } from '../feature.js';
import {
  ForbiddenError,
  NotFoundError,
  parseInput,
  quote,
  RequestRefusedError,
  singleLine,
} from '../http-errors.js';
import {
  PURCHASE_SAGA,
  type PurchaseInput,
  type PurchaseOutcome,
  purchaseMigrations,
  purchaseSaga,
} from '../purchases/saga.js';
import {
  TopUpWallet,
  type WalletCommand,
  type WalletEvent,
  type WalletState,
  walletStream,
} from '../reviews/deciders.js';
import type { CatalogService } from './catalog.js';
import type { EnrollmentService } from './enrollment.js';

/**
 * Course purchases as an orchestrated saga (docs/patterns/saga.md): POST starts the saga on
 * the platform's workflow engine and answers 202 with the purchase id (the run id); GET reads
 * where it is. A dashboard panel shows purchases by outcome and the latest saga's steps and
 * compensations.
 */

const purchaseBody = z.strictObject({ course: singleLine(100) });
const idParam = z.object({ id: z.string().min(1).max(200) });

const progressLine = z.object({
  step: z.string(),
  phase: z.enum(['run', 'compensate']),
  status: z.enum(['completed', 'failed', 'retrying']),
  attempts: z.number().int(),
  error: z
    .object({ name: z.string(), message: z.string(), code: z.string().optional() })
    .nullable(),
});
const purchaseView = z.object({
  purchaseId: z.string(),
  student: z.string(),
  course: z.string(),
  amountCents: z.number().int(),
  /** running, completed, compensated or failed (the run itself failed: see the workflow). */
  status: z.enum(['running', 'completed', 'compensated', 'failed']),
  /** The seat: pending (the saga holds it), confirmed, released, or none (never reserved). */
  seat: z.enum(['pending', 'confirmed', 'released', 'none']),
  failedStep: z.string().nullable(),
  reason: z.string().nullable(),
  steps: z.array(progressLine),
});
type PurchaseView = z.infer<typeof purchaseView>;

const examplePurchaseId = '0193a5b2-9e3f-7d5a-b123-4c5d6e7f8091';

const docs = {
  purchase: documented({
    summary: 'Buy a course (a saga)',
    description:
      "Starts the purchase saga: reserve a seat (pending until the saga ends), charge the student's wallet at the catalog price, grant access (the pivot), send the receipt through the outbox. A declined charge or a full course compensates the steps done. Answers at once with the purchase id; follow it with GET /api/purchases/{id}.",
    tags: ['purchases'],
    roles: ['student'],
    access: "The student is the key's subject, never a field of the body.",
    body: purchaseBody,
    bodyExamples: { course: { summary: 'A course', value: { course: examples.courseId } } },
    responses: {
      202: {
        description: 'Accepted: the saga runs',
        schema: z.object({ purchaseId: z.string(), status: z.literal('running') }),
        example: { purchaseId: examplePurchaseId, status: 'running' },
      },
    },
    errors: [
      courseNotFound,
      refusal(
        409,
        'ALREADY_ENROLLED',
        `student "${examples.student}" already has course ${examples.courseId}`,
      ),
    ],
  }),
  get: documented({
    summary: 'A purchase and its saga',
    description:
      "Where the purchase is: the outcome (running, completed, compensated), the seat's state (pending is the saga's semantic lock) and each step and compensation as the run's history records them.",
    tags: ['purchases'],
    roles: ['student', 'viewer'],
    access: 'A student reads only their own purchases.',
    params: idParam,
    responses: {
      200: {
        description: 'The purchase',
        schema: purchaseView,
        example: {
          purchaseId: examplePurchaseId,
          student: examples.student,
          course: examples.courseId,
          amountCents: 4900,
          status: 'compensated',
          seat: 'released',
          failedStep: 'charge',
          reason: `INSUFFICIENT_FUNDS: wallet of ${examples.student} holds 1000 cents, the course costs 4900: top it up first`,
          steps: [
            { step: 'reserve', phase: 'run', status: 'completed', attempts: 1, error: null },
            {
              step: 'charge',
              phase: 'run',
              status: 'failed',
              attempts: 1,
              error: {
                name: 'DomainError',
                message: 'wallet of ... top it up first',
                code: 'INSUFFICIENT_FUNDS',
              },
            },
            { step: 'reserve', phase: 'compensate', status: 'completed', attempts: 1, error: null },
          ],
        },
      },
    },
    errors: [refusal(404, 'PURCHASE_NOT_FOUND', `purchase "${examplePurchaseId}" was not found`)],
  }),
};

function view(run: RunDetail, seat: string | undefined): PurchaseView {
  const input = run.input as PurchaseInput;
  const out = run.output as PurchaseOutcome | null;
  const status =
    run.status === 'completed' && out
      ? out.status
      : run.status === 'failed' || run.status === 'cancelled'
        ? 'failed'
        : 'running';
  const failed = out?.status === 'compensated' ? out : null;
  return {
    purchaseId: run.id,
    student: input.student,
    course: input.course,
    amountCents: input.amountCents,
    status,
    seat: (seat ?? 'none') as PurchaseView['seat'],
    failedStep: failed?.failedStep ?? null,
    reason: failed
      ? `${failed.reason.code ? `${failed.reason.code}: ` : ''}${failed.reason.message}`
      : null,
    steps: sagaProgress(run) as SagaStepProgress[],
  };
}

export const purchasesFeature: PlatformFeature = {
  name: 'purchases',
  description: 'course purchases as an orchestrated saga: seat, wallet charge, access, receipt',
  docs: ['docs/patterns/saga.md'],
  migrations: purchaseMigrations,
  async start(ctx) {
    const { sql, http, services } = ctx;
    const engine = services.get('workflows') as WorkflowEngine;
    const { wallets } = services.get('reviews') as {
      wallets: CommandHandler<WalletCommand, WalletEvent, WalletState>;
    };
    const enrollment = services.get('enrollment') as EnrollmentService;
    const catalog = services.get('catalog') as CatalogService;
    const saga = purchaseSaga({
      wallets,
      grant: (tx, student, course, purchaseId) =>
        enrollment.enroll(tx, student, course, purchaseId),
      receipt: (tx, r) => enrollment.sendReceipt(tx, r),
    });
    engine.register(saga);

    const seatOf = async (purchaseId: string) => {
      const { rows } = await sql.query<{ status: string }>(
        'SELECT status FROM app_seat_reservations WHERE purchase_id = $1',
        [purchaseId],
      );
      return rows[0]?.status;
    };
    const read = async (id: string): Promise<PurchaseView> => {
      let run: RunDetail;
      try {
        run = await engine.get(id);
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) {
          throw new NotFoundError(`purchase ${quote(id)}`, 'PURCHASE_NOT_FOUND');
        }
        throw err;
      }
      if (run.name !== PURCHASE_SAGA) {
        throw new NotFoundError(`purchase ${quote(id)}`, 'PURCHASE_NOT_FOUND');
      }
      return view(run, await seatOf(id));
    };
    const start = async (student: string, courseId: string) => {
      const course = await catalog.require(courseId);
      if (await enrollment.isEnrolled(student, course.id)) {
        throw new RequestRefusedError(
          'ALREADY_ENROLLED',
          409,
          `student ${quote(student)} already has course ${course.id}`,
        );
      }
      const input: PurchaseInput = { student, course: course.id, amountCents: course.priceCents };
      return engine.start(saga, { input });
    };

    http.post('/api/purchases', docs.purchase, async (req, reply) => {
      const student = (await ctx.auth.require(req, 'student')).subject;
      const body = parseInput(purchaseBody, req.body, 'body');
      const h = await start(student, body.course);
      return reply.status(202).send({ purchaseId: h.runId, status: 'running' });
    });
    http.get('/api/purchases/:id', docs.get, async (req) => {
      const by = await ctx.auth.require(req, 'student', 'viewer');
      const { id } = parseInput(idParam, req.params, 'path');
      const p = await read(id);
      if (by.role === 'student' && by.subject !== p.student) {
        throw new ForbiddenError(
          `this key acts as student ${quote(by.subject)}, not as student ${quote(p.student)}`,
        );
      }
      return p;
    });

    const demo: Demo = {
      id: 'purchase-saga',
      title: 'Purchase saga: one completes, one is compensated',
      description:
        "Two new students buy a course: the first has the money and the saga completes (seat confirmed, access granted, receipt sent); the second's wallet is empty, the charge is declined, and the seat reservation is compensated (released).",
      feature: 'purchases',
      async run() {
        const course = (await catalog.list({ limit: 1 }))[0];
        if (!course) {
          return {
            ok: false,
            summary: 'No course in the catalog to buy: add one (POST /api/catalog/courses).',
            figures: [],
            steps: [],
          };
        }
        const tag = `${ctx.clock.now().toString(36)}`;
        const rich = `demo-buyer-${tag}`;
        const poor = `demo-broke-${tag}`;
        if (course.priceCents > 0) {
          await wallets.handle(
            TopUpWallet.parse({ studentId: rich, amountCents: course.priceCents }),
          );
        }
        const runs = [await start(rich, course.id), await start(poor, course.id)];
        const outcomes = await Promise.all(runs.map((h) => h.result()));
        const views = await Promise.all(runs.map((h) => read(h.runId)));
        const steps = views.flatMap((v, i) => [
          `${i === 0 ? rich : poor} buys ${course.id} for ${course.priceCents} cents: ${v.status}`,
          ...v.steps.map(
            (s) =>
              `  ${s.phase === 'compensate' ? 'compensate ' : ''}${s.step}: ${s.status}${s.error ? ` (${s.error.code ?? s.error.name})` : ''}`,
          ),
          `  seat ${v.seat}`,
        ]);
        const balances = await Promise.all(
          [rich, poor].map(
            async (s) => (await wallets.load(walletStream({ studentId: s }))).state.balanceCents,
          ),
        );
        const ok =
          outcomes[0]!.status === 'completed' &&
          outcomes[1]!.status === 'compensated' &&
          views[0]!.seat === 'confirmed' &&
          views[1]!.seat === 'released' &&
          balances[0] === 0 &&
          balances[1] === 0;
        return {
          ok,
          summary: ok
            ? 'The first purchase completed; the second was declined at the charge and its seat reservation was released.'
            : 'The purchases did not end as expected: see the steps.',
          figures: [
            { label: 'completed', value: views.filter((v) => v.status === 'completed').length },
            { label: 'compensated', value: views.filter((v) => v.status === 'compensated').length },
            { label: 'buyer balance', value: balances[0]!, unit: 'cents' },
          ],
          steps,
        };
      },
    };

    return {
      service: { saga },
      demos: [demo],
      panel: async () => {
        const { rows } = await sql.query<{ outcome: string; n: number }>(
          `SELECT CASE WHEN status = 'completed' THEN (output::jsonb)->>'status'
                       WHEN status IN ('failed', 'cancelled') THEN 'failed'
                       ELSE 'running' END AS outcome, count(*)::int AS n
           FROM cdp_workflow_runs WHERE name = $1 GROUP BY 1`,
          [PURCHASE_SAGA],
        );
        const count = (s: string) => rows.find((r) => r.outcome === s)?.n ?? 0;
        const seats = await sql.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM app_seat_reservations WHERE status = 'pending'",
        );
        const latest = (await engine.list({ name: PURCHASE_SAGA, limit: 1 }))[0];
        const detail = latest ? await engine.get(latest.id) : undefined;
        return {
          id: 'purchases',
          title: 'Course purchases (orchestrated saga)',
          stats: [
            {
              label: 'completed',
              value: count('completed'),
              hint: 'Purchases whose every step is done.',
            },
            {
              label: 'compensated',
              value: count('compensated'),
              hint: 'Purchases that failed before the pivot (declined charge, full course) and whose steps were undone.',
            },
            { label: 'running', value: count('running'), hint: 'Purchase sagas not ended yet.' },
            {
              label: 'failed',
              value: count('failed'),
              hint: 'Runs that ended outside the saga (cancelled, code error): should be zero.',
            },
            {
              label: 'pending seats',
              value: seats.rows[0]!.n,
              hint: 'Seats held by a saga in flight: the semantic lock readers see.',
            },
          ],
          charts: [
            {
              title: 'Purchases by outcome',
              stats: ['completed', 'compensated', 'running'],
              hint: 'Completed purchases against those undone by compensation; running ones are sagas in flight.',
            },
            {
              title: 'Pending seats',
              stats: ['pending seats'],
              hint: 'Seats a saga holds while it runs: back to zero once every purchase ends.',
            },
          ],
          table: {
            columns: ['latest purchase', 'step', 'phase', 'status', 'attempts'],
            rows: detail
              ? sagaProgress(detail).map((s) => [detail.id, s.step, s.phase, s.status, s.attempts])
              : [],
          },
          docs: 'docs/patterns/saga.md',
        };
      },
    };
  },
};
