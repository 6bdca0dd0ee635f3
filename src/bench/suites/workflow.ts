import { PgSqlClient } from '../../engines/sql/pg-sql-client.js';
import { createTempDatabase } from '../../testing/temp-database.js';
import { defineWorkflow, WorkflowEngine } from '../../workflow/index.js';
import { type BenchSuite, interleave, median, result } from '../harness.js';

const STARTERS = 16;
const POOL = 16;

/** `starters` loops each running workflows back to back for `durationMs`; workflows per second. */
async function throughput(run: () => Promise<unknown>, durationMs: number): Promise<number> {
  let n = 0;
  const start = performance.now();
  const end = start + durationMs;
  await Promise.all(
    Array.from({ length: STARTERS }, async () => {
      while (performance.now() < end) {
        await run();
        n++;
      }
    }),
  );
  return n / ((performance.now() - start) / 1000);
}

type Dbos = typeof import('@dbos-inc/dbos-sdk').DBOS;

/** DBOS Transact on its own database: the same three steps, each a checkpointed runStep. */
async function openDbos(url: string): Promise<{ dbos: Dbos; run: (i: number) => Promise<number> }> {
  const { DBOS } = await import('@dbos-inc/dbos-sdk');
  DBOS.setConfig({
    name: 'cdp-bench-workflow',
    systemDatabaseUrl: url,
    systemDatabasePoolSize: POOL,
    logLevel: 'error',
  });
  const threeSteps = DBOS.registerWorkflow(
    async (i: number) => {
      const a = await DBOS.runStep(async () => i + 1, { name: 'a' });
      const b = await DBOS.runStep(async () => a * 2, { name: 'b' });
      return DBOS.runStep(async () => b - 1, { name: 'c' });
    },
    { name: 'threeSteps' },
  );
  await DBOS.launch();
  return { dbos: DBOS, run: (i) => threeSteps(i) };
}

const suite: BenchSuite = {
  name: 'workflow',
  description:
    'Durable workflows on PostgreSQL: 3-step workflows per second (16 concurrent starters) vs DBOS Transact, a durable step vs a plain transaction, and recovery of 1,000 interrupted runs',
  requires: ['CDP_DATABASE_URL'],
  async run(ctx) {
    const url = ctx.env.CDP_DATABASE_URL!;
    const rounds = ctx.quick ? 3 : 7;
    const durationMs = ctx.quick ? 1500 : 4000;
    const oursDb = await createTempDatabase(url, { name: 'cdp_bench_workflow' });
    const dbosDb = await createTempDatabase(url, { name: 'cdp_bench_workflow_dbos' });
    const sql = await PgSqlClient.open({ url: oursDb.url, max: POOL });
    let dbos: Dbos | undefined;
    const engines: WorkflowEngine[] = [];
    try {
      const threeSteps = defineWorkflow({ name: 'three-steps' }, async (wctx, i: number) => {
        const a = await wctx.step('a', () => i + 1);
        const b = await wctx.step('b', () => a * 2);
        return wctx.step('c', () => b - 1);
      });
      const engine = await WorkflowEngine.open({ sql, workflows: [threeSteps], concurrency: 64 });
      engines.push(engine);
      const peer = await openDbos(dbosDb.url);
      dbos = peer.dbos;
      let i = 0;
      ctx.progress(`3-step throughput: ${rounds} interleaved rounds of ${durationMs} ms`);
      const tp = await interleave(
        {
          ours: () =>
            throughput(
              async () => (await engine.start(threeSteps, { input: i++ })).result(),
              durationMs,
            ),
          dbos: () => throughput(() => peer.run(i++), durationMs),
        },
        rounds,
      );

      ctx.progress('step overhead: a durable SQL step vs the same insert in a plain transaction');
      await sql.exec('CREATE TABLE cdp_bench_workflow_effects (run text, k int)');
      const STEPS = 20;
      const insert = 'INSERT INTO cdp_bench_workflow_effects (run, k) VALUES ($1, $2)';
      const sqlSteps = defineWorkflow({ name: 'sql-steps' }, async (wctx) => {
        for (let k = 0; k < STEPS; k++) {
          await wctx.transaction(`s${k}`, (tx) => tx.query(insert, [wctx.runId, k]).then(() => k));
        }
      });
      engine.register(sqlSteps);
      const perStep = async (f: () => Promise<unknown>) => {
        const xs: number[] = [];
        for (let r = 0; r < (ctx.quick ? 5 : 20); r++) {
          const t = performance.now();
          await f();
          xs.push((performance.now() - t) / STEPS);
        }
        return median(xs);
      };
      const overhead = await interleave(
        {
          durable: () => perStep(async () => (await engine.start(sqlSteps)).result()),
          plain: () =>
            perStep(async () => {
              for (let k = 0; k < STEPS; k++) {
                await sql.transaction((tx) => tx.query(insert, ['plain', k]));
              }
            }),
        },
        rounds,
      );

      ctx.progress('recovery: 1,000 runs interrupted at their second step, then a restart');
      const RUNS = 1000;
      const never = new Promise<number>(() => {});
      const held = defineWorkflow({ name: 'recover' }, async (wctx, n: number) => {
        await wctx.step('first', () => n);
        return wctx.step('second', () => never);
      });
      const crashed = await WorkflowEngine.open({
        sql,
        workerId: 'bench-recovery',
        workflows: [held],
        concurrency: RUNS,
      });
      const ids = Array.from({ length: RUNS }, (_, n) => `recover-${n}`);
      for (let n = 0; n < RUNS; n += 50) {
        await Promise.all(
          ids.slice(n, n + 50).map((id, k) => crashed.start(held, { id, input: n + k })),
        );
      }
      // The worker stops where it is (no heartbeat, nothing released), as a killed one would.
      await crashed.close({ timeoutMs: 0 });
      const finished = defineWorkflow({ name: 'recover' }, async (wctx, n: number) => {
        await wctx.step('first', () => n);
        return wctx.step('second', () => n * 2);
      });
      const t0 = performance.now();
      const restarted = await WorkflowEngine.open({
        sql,
        workerId: 'bench-recovery',
        workflows: [finished],
        concurrency: 256,
        migrate: false,
      });
      engines.push(restarted);
      for (;;) {
        const { rows } = await sql.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM cdp_workflow_runs WHERE name = 'recover' AND status = 'completed'`,
        );
        if (rows[0]!.n >= RUNS) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      const recoveryMs = performance.now() - t0;

      const params = {
        rounds,
        durationMs,
        starters: STARTERS,
        poolSize: POOL,
        server: 'PostgreSQL on 127.0.0.1',
        ours: 'engine.start(...).result(), executed by the starting worker',
        peer: 'DBOS.registerWorkflow + DBOS.runStep, called directly',
      };
      return [
        result({
          id: 'workflow.3step.throughput',
          metric: 'throughput',
          unit: 'workflows/s',
          ours: Math.round(tp.ours),
          peer: { name: 'DBOS Transact 5', value: Math.round(tp.dbos) },
          higherIsBetter: true,
          params,
        }),
        result({
          id: 'workflow.step.overhead',
          metric: 'latency per step (median)',
          unit: 'ms',
          ours: Math.round(overhead.durable * 1000) / 1000,
          peer: {
            name: 'plain transaction, same insert',
            value: Math.round(overhead.plain * 1000) / 1000,
          },
          higherIsBetter: false,
          params: { rounds, stepsPerWorkflow: STEPS, sequential: true },
        }),
        result({
          id: 'workflow.recovery',
          metric: 'time to resume and complete',
          unit: 'ms',
          ours: Math.round(recoveryMs),
          higherIsBetter: false,
          params: {
            runs: RUNS,
            how: 'the worker restarts under its id and takes its runs back at once; other workers would take them when the lease (10 s) passes',
          },
        }),
      ];
    } finally {
      await Promise.all(engines.map((e) => e.close({ timeoutMs: 1000 })));
      await dbos?.shutdown();
      await sql.close();
      await oursDb.drop();
      await dbosDb.drop();
    }
  },
};

export default suite;
