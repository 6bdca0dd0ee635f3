/**
 * A saga worker as its own process, for the saga crash test (saga-crash.test.ts). It runs
 * `fiveStepSaga`: steps s1..s5, s3 a call step (its effect keyed by run id, so a repeat is
 * absorbed) and the others SQL steps; each step's compensation writes an `undo` row the same
 * way. Input `{ failAt: 's5' }` makes s5 fail after writing (its transaction rolls back), so
 * s4..s1 are compensated. Configured by environment:
 *   SAGA_DB_URL       the database
 *   SAGA_WORKER_ID    this worker's id
 *   SAGA_LEASE_MS     lease of its claims
 *   SAGA_START        a run id to start (it executes it itself), with SAGA_FAIL_AT as failAt
 *   SAGA_CRASH        `before:<history name>` or `after:<history name>` (e.g. `after:s2`,
 *                     `before:compensate:s3`): SIGKILL itself there, in the run SAGA_START only
 *   SAGA_CONCURRENCY  runs it executes at once (default 64)
 */
import { PgSqlClient } from '../../../src/engines/sql/pg-sql-client.js';
import type { SqlTransaction } from '../../../src/engines/sql/sql-client.js';
import {
  defineSaga,
  defineWorkflow,
  type SagaStep,
  type WorkflowContext,
  WorkflowEngine,
} from '../../../src/workflow/index.js';

const env = process.env;
const crash = env.SAGA_CRASH ?? '';
const startId = env.SAGA_START;

type Input = { failAt?: string };

const sql = await PgSqlClient.open({ url: env.SAGA_DB_URL!, max: 8 });

function sqlStep(name: string): SagaStep<Input, string> {
  const write = (tx: SqlTransaction, runId: string, kind: string) =>
    tx.query('INSERT INTO saga_effects (run_id, step, kind) VALUES ($1, $2, $3)', [
      runId,
      name,
      kind,
    ]);
  return {
    name,
    transaction: true,
    run: async (tx, { runId, input }) => {
      await write(tx, runId, 'do');
      if (input.failAt === name) throw new Error(`${name} refused`);
      return name;
    },
    compensate: async (tx, { runId }) => {
      await write(tx, runId, 'undo');
    },
  };
}

/** A call step: at least once, made exactly once by its key (run id, kind). */
function callStep(name: string): SagaStep<Input, string> {
  const call = async (runId: string, kind: string) => {
    await sql.query('INSERT INTO saga_call_attempts (run_id, kind) VALUES ($1, $2)', [runId, kind]);
    await sql.query(
      'INSERT INTO saga_calls (run_id, kind) VALUES ($1, $2) ON CONFLICT DO NOTHING',
      [runId, kind],
    );
  };
  return {
    name,
    run: async ({ runId }) => {
      await call(runId, 'do');
      return name;
    },
    compensate: async ({ runId }) => call(runId, 'undo'),
  };
}

const saga = defineSaga<Input>(
  { name: 'five-step-saga-inner' },
  { steps: [sqlStep('s1'), sqlStep('s2'), callStep('s3'), sqlStep('s4'), sqlStep('s5')] },
);

function maybeCrash(runId: string, point: string): void {
  if (runId === startId && crash === point) process.kill(process.pid, 'SIGKILL');
}

/** The context with a self-kill hook before and after each step and SQL step (done or failed). */
function crashing(ctx: WorkflowContext): WorkflowContext {
  const around =
    <A extends unknown[], R>(f: (name: string, ...a: A) => Promise<R>) =>
    async (name: string, ...a: A): Promise<R> => {
      maybeCrash(ctx.runId, `before:${name}`);
      try {
        return await f(name, ...a);
      } finally {
        // After the step's record: its result, or its failure (a StepFailedError).
        maybeCrash(ctx.runId, `after:${name}`);
      }
    };
  return new Proxy(ctx, {
    get(target, prop) {
      if (prop === 'step') return around(target.step.bind(target));
      if (prop === 'transaction') return around(target.transaction.bind(target));
      const v = Reflect.get(target, prop, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

export const fiveStepSaga = defineWorkflow({ name: 'five-step-saga' }, (ctx, input: Input) =>
  saga.fn(crashing(ctx), input),
);

const engine = await WorkflowEngine.open({
  sql,
  workerId: env.SAGA_WORKER_ID!,
  leaseMs: Number(env.SAGA_LEASE_MS ?? 2000),
  pollIntervalMs: 50,
  concurrency: Number(env.SAGA_CONCURRENCY ?? 64),
  workflows: [fiveStepSaga],
});
if (startId) {
  await engine.start(fiveStepSaga, {
    id: startId,
    input: env.SAGA_FAIL_AT ? { failAt: env.SAGA_FAIL_AT } : {},
  });
}
process.stdout.write('ready\n');
process.on('SIGTERM', () => {
  void engine
    .close({ timeoutMs: 1000 })
    .then(() => sql.close())
    .then(() => process.exit(0));
});
setInterval(() => {}, 1 << 30);
