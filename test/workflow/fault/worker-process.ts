/**
 * A workflow worker as its own process, for the crash and fault tests (crash.test.ts). It runs
 * `fiveSteps`: five SQL steps, each inserting one row into wf_effects and checkpointing in the
 * same transaction. Configured by environment:
 *   WF_DB_URL        the database
 *   WF_WORKER_ID     this worker's id
 *   WF_LEASE_MS      lease of its claims
 *   WF_START         a run id to start (it executes it itself)
 *   WF_CRASH         `before:k`, `during:k` (effect written, not committed) or `after:k`
 *                    (checkpoint committed): SIGKILL itself there, in the run WF_START only
 *   WF_STEP_SLEEP_MS time each step holds its transaction (default 0)
 *   WF_CONCURRENCY   runs it executes at once (default 64)
 */
import { PgSqlClient } from '../../../src/engines/sql/pg-sql-client.js';
import { defineWorkflow, WorkflowEngine } from '../../../src/workflow/index.js';

const env = process.env;
const crash = env.WF_CRASH ?? '';
const startId = env.WF_START;
const stepSleep = Number(env.WF_STEP_SLEEP_MS ?? 0) / 1000;

function maybeCrash(runId: string, point: string): void {
  if (runId === startId && crash === point) process.kill(process.pid, 'SIGKILL');
}

export const fiveSteps = defineWorkflow(
  { name: 'five-steps' },
  async (ctx, input: { base: number }) => {
    let total = input.base;
    for (let k = 1; k <= 5; k++) {
      maybeCrash(ctx.runId, `before:${k}`);
      total = await ctx.transaction(`s${k}`, async (tx) => {
        await tx.query('INSERT INTO wf_effects (run_id, step) VALUES ($1, $2)', [ctx.runId, k]);
        if (stepSleep > 0) await tx.query('SELECT pg_sleep($1)', [stepSleep]);
        maybeCrash(ctx.runId, `during:${k}`);
        return total + k;
      });
      maybeCrash(ctx.runId, `after:${k}`);
    }
    return total;
  },
);

const sql = await PgSqlClient.open({ url: env.WF_DB_URL!, max: 8 });
const engine = await WorkflowEngine.open({
  sql,
  workerId: env.WF_WORKER_ID!,
  leaseMs: Number(env.WF_LEASE_MS ?? 2000),
  pollIntervalMs: 50,
  concurrency: Number(env.WF_CONCURRENCY ?? 64),
  workflows: [fiveSteps],
});
if (startId) await engine.start(fiveSteps, { id: startId, input: { base: 100 } });
process.stdout.write('ready\n');
// Runs until killed; SIGTERM closes cleanly.
process.on('SIGTERM', () => {
  void engine
    .close({ timeoutMs: 1000 })
    .then(() => sql.close())
    .then(() => process.exit(0));
});
setInterval(() => {}, 1 << 30);
