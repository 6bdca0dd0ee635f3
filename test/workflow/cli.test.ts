import { afterAll, beforeAll, expect, it } from 'vitest';
import { PgSqlClient } from '../../src/engines/sql/pg-sql-client.js';
import { createTempDatabase, type TempDatabase } from '../../src/testing/index.js';
import { defineWorkflow, WorkflowEngine } from '../../src/workflow/index.js';
import { collect, spawnCdp } from '../support/cli.js';
import { describeServer } from '../support/servers.js';

describeServer('cdp workflow list|show|cancel|resume: PostgreSQL', 'CDP_DATABASE_URL', (url) => {
  let db: TempDatabase;
  let sql: PgSqlClient;
  let engine: WorkflowEngine;
  let done: string;
  let waiting: string;
  const cdp = async (...args: string[]) =>
    collect(spawnCdp(['workflow', ...args], { CDP_DATABASE_URL: db.url }));

  beforeAll(async () => {
    db = await createTempDatabase(url, { prefix: 'cdp_wf_cli' });
    sql = await PgSqlClient.open({ url: db.url });
    const quick = defineWorkflow({ name: 'quick' }, async (ctx, n: number) => {
      const a = await ctx.step('double', () => n * 2);
      return ctx.step('add', () => a + 1);
    });
    const patient = defineWorkflow({ name: 'patient' }, async (ctx) => {
      await ctx.step('prepare', () => 'ready');
      return ctx.waitForSignal('go');
    });
    engine = await WorkflowEngine.open({ sql, workflows: [quick, patient], pollIntervalMs: 20 });
    const h = await engine.start(quick, { id: 'quick-1', input: 20 });
    await h.result();
    done = h.runId;
    waiting = (await engine.start(patient, { id: 'patient-1' })).runId;
    for (;;) {
      if ((await engine.handle(waiting).status()).status === 'waiting') break;
      await new Promise((r) => setTimeout(r, 20));
    }
  });
  afterAll(async () => {
    await engine.close();
    await sql.close();
    await db.drop();
  });

  it('lists runs as a table and as JSON, filtered by status', async () => {
    const text = await cdp('list');
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/quick-1\s+quick\s+1\s+completed/);
    expect(text.stdout).toMatch(/patient-1\s+patient\s+1\s+waiting/);
    const json = await cdp('list', '--status', 'completed', '--json');
    expect(JSON.parse(json.stdout).map((r: { id: string }) => r.id)).toEqual([done]);
    const bad = await cdp('list', '--status', 'asleep');
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('--status must be one of');
  });

  it('shows a run with its steps, and names an unknown id', async () => {
    const shown = await cdp('show', done);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain('output    41');
    expect(shown.stdout).toMatch(/1\s+double\s+step\s+completed\s+1/);
    expect(shown.stdout).toMatch(/2\s+add\s+step\s+completed\s+1/);
    const json = JSON.parse((await cdp('show', done, '--json')).stdout);
    expect(json.steps.map((s: { result: number }) => s.result)).toEqual([40, 41]);
    const missing = await cdp('show', 'no-such-run');
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain('WORKFLOW_RUN_NOT_FOUND');
  });

  it('cancels a waiting run and resumes it', async () => {
    const cancelled = await cdp('cancel', waiting);
    expect(cancelled.stdout).toContain(`cancelled ${waiting}`);
    expect((await engine.handle(waiting).status()).status).toBe('cancelled');
    const resumed = await cdp('resume', waiting);
    expect(resumed.stdout).toContain('pending again');
    await engine.signal(waiting, 'go', 'now');
    expect(await engine.handle(waiting).result()).toBe('now');
    expect((await cdp('resume', done)).stdout).toContain('nothing to resume');
  });
});
