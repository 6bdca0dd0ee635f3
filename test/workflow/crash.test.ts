import type { ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { PgSqlClient } from '../../src/engines/sql/pg-sql-client.js';
import { createTempDatabase, eventually, type TempDatabase } from '../../src/testing/index.js';
import { defineWorkflow, WorkflowEngine } from '../../src/workflow/index.js';
import { describeServer } from '../support/servers.js';
import { exited, spawnWorker } from '../support/worker-process.js';

const here = dirname(fileURLToPath(import.meta.url));

/** Spawn a worker process (fault/worker-process.ts); `ready` resolves once it is ready or dead. */
const worker = (env: Record<string, string>) =>
  spawnWorker(join(here, 'fault', 'worker-process.ts'), env);

describeServer('workflow crash tests: PostgreSQL', 'CDP_DATABASE_URL', (url) => {
  let db: TempDatabase;
  let sql: PgSqlClient;
  const children: ChildProcess[] = [];
  beforeAll(async () => {
    db = await createTempDatabase(url, { prefix: 'cdp_wf_crash' });
    sql = await PgSqlClient.open({ url: db.url });
    // The engine's tables, and the effect table every step writes once.
    const e = await WorkflowEngine.open({ sql, worker: false });
    await e.close();
    await sql.exec('CREATE TABLE wf_effects (run_id text NOT NULL, step int NOT NULL)');
  });
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await Promise.all(children.map(exited));
    await sql.close();
    await db.drop();
  });

  async function effects(prefix: string) {
    const { rows } = await sql.query<{ run_id: string; step: number; n: number }>(
      `SELECT run_id, step, count(*)::int AS n FROM wf_effects WHERE run_id LIKE $1 || '%'
       GROUP BY run_id, step ORDER BY run_id, step`,
      [prefix],
    );
    return rows;
  }

  it('a worker SIGKILLed before, during and after each of 5 SQL steps: every run completes, each effect once', async () => {
    const points = [1, 2, 3, 4, 5].flatMap((k) => [`before:${k}`, `during:${k}`, `after:${k}`]);
    const crashers = points.map((point) => {
      const w = worker({
        WF_DB_URL: db.url,
        WF_WORKER_ID: `crash-${point}`,
        // Long enough that no crasher outlives another's lease on a loaded machine: a crasher
        // is a whole worker and would otherwise recover and finish a dead one's run before the
        // restart (seen once in CI).
        WF_LEASE_MS: '6000',
        WF_START: `boundary-${point}`,
        WF_CRASH: point,
      });
      children.push(w.child);
      return w.child;
    });
    const how = await Promise.all(crashers.map(exited));
    // Each crasher died by its own SIGKILL at its boundary: nothing else ended it.
    expect(how).toEqual(points.map(() => 'SIGKILL'));
    const before = await sql.query<{ status: string; n: number }>(
      `SELECT status, count(*)::int AS n FROM cdp_workflow_runs GROUP BY status`,
    );
    expect(before.rows).toEqual([{ status: 'running', n: points.length }]);

    // Restarted: one process under a crashed worker's id (takes its run back at once) and one
    // new worker (takes the others when their leases pass).
    const recovery = ['crash-after:5', 'recovery'].map((id) => {
      const w = worker({ WF_DB_URL: db.url, WF_WORKER_ID: id, WF_LEASE_MS: '1500' });
      children.push(w.child);
      return w;
    });
    await Promise.all(recovery.map((w) => w.ready));
    const runs = await eventually(
      async () => {
        const { rows } = await sql.query<{ id: string; status: string; output: string }>(
          `SELECT id, status, output FROM cdp_workflow_runs WHERE id LIKE 'boundary-%' ORDER BY id`,
        );
        return rows.every((r) => r.status === 'completed') ? rows : undefined;
      },
      'every interrupted run completes',
      { timeoutMs: 30_000 },
    );
    expect(runs).toHaveLength(points.length);
    expect(runs.every((r) => r.output === '115')).toBe(true);
    const counted = await effects('boundary-');
    expect(counted).toHaveLength(points.length * 5);
    expect(counted.filter((r) => r.n !== 1)).toEqual([]);
    const { rows: steps } = await sql.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM cdp_workflow_steps WHERE run_id LIKE 'boundary-%' AND status = 'completed'`,
    );
    expect(steps[0]!.n).toBe(points.length * 5);
    for (const w of recovery) w.child.kill('SIGKILL');
    await Promise.all(recovery.map((w) => exited(w.child)));
  }, 120_000);

  it('fault run: workers SIGKILLed at random under load: zero runs stuck, each SQL step effect once', async () => {
    const runs = Number(process.env.CDP_WF_FAULT_RUNS ?? 200);
    const client = await WorkflowEngine.open({ sql, worker: false });
    const fiveSteps = defineWorkflow({ name: 'five-steps' }, async () => 0);
    for (let i = 0; i < runs; i++) {
      await client.start(fiveSteps, { id: `fault-${i}`, input: { base: 0 } });
    }
    await client.close();
    let n = 0;
    const alive = new Map<number, { child: ChildProcess; ready: Promise<void> }>();
    const spawnSlot = (slot: number) => {
      const w = worker({
        WF_DB_URL: db.url,
        // Every other restart takes its previous life's id back; the others are new workers.
        WF_WORKER_ID: n % 2 === 0 ? `slot-${slot}` : `slot-${slot}-${n}`,
        WF_LEASE_MS: '1000',
        WF_STEP_SLEEP_MS: '30',
        WF_CONCURRENCY: '4',
      });
      n++;
      children.push(w.child);
      alive.set(slot, w);
      return w.ready;
    };
    await Promise.all([0, 1, 2].map(spawnSlot));
    const completed = async () => {
      const { rows } = await sql.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM cdp_workflow_runs WHERE id LIKE 'fault-%' AND status = 'completed'`,
      );
      return rows[0]!.n;
    };
    let kills = 0;
    const until = Date.now() + 40_000;
    // Kill a random worker every 300-700 ms while runs remain (at most 40 s), restarting it at once.
    while (Date.now() < until && (await completed()) < runs) {
      await new Promise((r) => setTimeout(r, 300 + Math.random() * 400));
      const slot = Math.floor(Math.random() * 3);
      // Only a worker that got going is killed: a slow start would otherwise die unborn.
      const victim = alive.get(slot)!;
      await victim.ready;
      victim.child.kill('SIGKILL');
      await exited(victim.child);
      kills++;
      void spawnSlot(slot);
    }
    const done = await eventually(
      async () => {
        const { rows } = await sql.query<{ status: string; n: number }>(
          `SELECT status, count(*)::int AS n FROM cdp_workflow_runs WHERE id LIKE 'fault-%' GROUP BY status`,
        );
        return rows.length === 1 && rows[0]!.status === 'completed' ? rows[0]!.n : undefined;
      },
      'every run completes',
      { timeoutMs: 60_000 },
    );
    const counted = await effects('fault-');
    const duplicated = counted.filter((r) => r.n !== 1);
    const { rows: claims } = await sql.query<{ moved: number }>(
      `SELECT count(*)::int AS moved FROM cdp_workflow_runs WHERE id LIKE 'fault-%' AND claims > 1`,
    );
    console.log(
      `workflow fault run: ${JSON.stringify({ runs, kills, completed: done, effects: counted.length, duplicated: duplicated.length, runsTakenOver: claims[0]!.moved })}`,
    );
    expect(kills).toBeGreaterThan(0);
    expect(done).toBe(runs);
    expect(counted).toHaveLength(runs * 5);
    expect(duplicated).toEqual([]);
    expect(claims[0]!.moved).toBeGreaterThan(0);
  }, 180_000);
});
