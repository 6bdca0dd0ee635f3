import type { ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { PgSqlClient } from '../../src/engines/sql/pg-sql-client.js';
import { createTempDatabase, eventually, type TempDatabase } from '../../src/testing/index.js';
import { WorkflowEngine } from '../../src/workflow/index.js';
import { describeServer } from '../support/servers.js';
import { exited, spawnWorker } from '../support/worker-process.js';

const here = dirname(fileURLToPath(import.meta.url));

/** Spawn a worker process (fault/saga-worker-process.ts); `ready` resolves once it is ready or dead. */
const worker = (env: Record<string, string>) =>
  spawnWorker(join(here, 'fault', 'saga-worker-process.ts'), env);

const STEPS = ['s1', 's2', 's3', 's4', 's5'];

describeServer('saga crash tests: PostgreSQL', 'CDP_DATABASE_URL', (url) => {
  let db: TempDatabase;
  let sql: PgSqlClient;
  const children: ChildProcess[] = [];
  beforeAll(async () => {
    db = await createTempDatabase(url, { prefix: 'cdp_saga_crash' });
    sql = await PgSqlClient.open({ url: db.url });
    const e = await WorkflowEngine.open({ sql, worker: false });
    await e.close();
    // SQL steps write saga_effects in their transaction; the call step s3 writes saga_calls
    // under its key (and logs each attempt in saga_call_attempts).
    await sql.exec(`
      CREATE TABLE saga_effects (run_id text NOT NULL, step text NOT NULL, kind text NOT NULL);
      CREATE TABLE saga_calls (run_id text NOT NULL, kind text NOT NULL, PRIMARY KEY (run_id, kind));
      CREATE TABLE saga_call_attempts (run_id text NOT NULL, kind text NOT NULL);`);
  });
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await Promise.all(children.map(exited));
    await sql.close();
    await db.drop();
  });

  /** Effects of a run, as `kind:step` -> times: SQL steps from saga_effects, s3 from saga_calls. */
  async function effects(runId: string): Promise<Record<string, number>> {
    const { rows } = await sql.query<{ k: string; n: number }>(
      `SELECT kind || ':' || step AS k, count(*)::int AS n FROM saga_effects WHERE run_id = $1 GROUP BY 1
       UNION ALL SELECT kind || ':s3', count(*)::int FROM saga_calls WHERE run_id = $1 GROUP BY 1`,
      [runId],
    );
    return Object.fromEntries(rows.map((r) => [r.k, r.n]));
  }

  it('a 5-step saga worker SIGKILLed before and after each step and each compensation: every run ends completed or compensated, each effect once', async () => {
    // Runs that complete: a kill around each forward step. Runs where s5 fails: a kill around
    // s5 (its failure record) and around each compensation, s4 back to s1.
    const points = [
      ...STEPS.flatMap((s) => [`before:${s}`, `after:${s}`]).map((p) => ({ p, failAt: '' })),
      ...['s5', 'compensate:s4', 'compensate:s3', 'compensate:s2', 'compensate:s1']
        .flatMap((s) => [`before:${s}`, `after:${s}`])
        .map((p) => ({ p, failAt: 's5' })),
    ];
    const runId = (p: { p: string; failAt: string }) =>
      `${p.failAt ? 'fail' : 'ok'}-${p.p.replace(/:/g, '-')}`;
    // In batches of 5 processes, to spare the machine's memory and cores.
    const how: (NodeJS.Signals | number | null)[] = [];
    for (let i = 0; i < points.length; i += 5) {
      const batch = points.slice(i, i + 5).map((point) => {
        const w = worker({
          SAGA_DB_URL: db.url,
          SAGA_WORKER_ID: `crash-${runId(point)}`,
          SAGA_LEASE_MS: '1500',
          SAGA_START: runId(point),
          SAGA_FAIL_AT: point.failAt,
          SAGA_CRASH: point.p,
        });
        children.push(w.child);
        return w.child;
      });
      how.push(...(await Promise.all(batch.map(exited))));
    }
    // Each crasher died by its own SIGKILL at its boundary.
    expect(how).toEqual(points.map(() => 'SIGKILL'));
    // Workers of later batches take over runs of earlier crashers whose lease passed: those
    // runs already recovered; the others wait for the restarted workers below.
    const before = await sql.query<{ status: string }>('SELECT status FROM cdp_workflow_runs');
    expect(before.rows).toHaveLength(points.length);

    // Restarted: one process under a crashed worker's id (takes its run back at once) and one
    // new worker (takes the others when their leases pass).
    const recovery = [`crash-${runId(points[0]!)}`, 'recovery'].map((id) => {
      const w = worker({ SAGA_DB_URL: db.url, SAGA_WORKER_ID: id, SAGA_LEASE_MS: '1500' });
      children.push(w.child);
      return w;
    });
    await Promise.all(recovery.map((w) => w.ready));
    const runs = await eventually(
      async () => {
        const { rows } = await sql.query<{ id: string; status: string; output: string }>(
          'SELECT id, status, output FROM cdp_workflow_runs ORDER BY id',
        );
        return rows.every((r) => r.status === 'completed') ? rows : undefined;
      },
      'every interrupted run ends',
      { timeoutMs: 60_000 },
    );
    expect(runs).toHaveLength(points.length);
    const once = (keys: string[]) => Object.fromEntries(keys.map((k) => [k, 1]));
    for (const point of points) {
      const id = runId(point);
      const out = JSON.parse(runs.find((r) => r.id === id)!.output) as {
        status: string;
        compensated?: string[];
        failedStep?: string;
      };
      const got = await effects(id);
      if (point.failAt) {
        expect({ id, ...out }).toMatchObject({
          id,
          status: 'compensated',
          failedStep: 's5',
          compensated: ['s4', 's3', 's2', 's1'],
        });
        // s5's write rolled back with its failing transaction; s1..s4 done and undone once.
        expect({ id, ...got }).toEqual({
          id,
          ...once(['s1', 's2', 's3', 's4'].flatMap((s) => [`do:${s}`, `undo:${s}`])),
        });
      } else {
        expect({ id, status: out.status }).toEqual({ id, status: 'completed' });
        expect({ id, ...got }).toEqual({ id, ...once(STEPS.map((s) => `do:${s}`)) });
      }
    }
    for (const w of recovery) w.child.kill('SIGKILL');
    await Promise.all(recovery.map((w) => exited(w.child)));
  }, 180_000);
});
