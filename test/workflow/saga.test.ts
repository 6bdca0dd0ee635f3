import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { PgliteSqlClient } from '../../src/engines/sql/pglite-sql-client.js';
import type { SqlClient } from '../../src/engines/sql/sql-client.js';
import { eventually } from '../../src/testing/index.js';
import {
  defineSaga,
  defineWorkflow,
  SagaCompensatedError,
  type SagaOutcome,
  type SagaStep,
  sagaOf,
  sagaProgress,
  WorkflowEngine,
  WorkflowUsageError,
} from '../../src/workflow/index.js';

let n = 0;
const uniq = (p: string) => `${p}-${++n}`;

describe('orchestrated saga on the workflow engine (PGlite)', () => {
  let sql: SqlClient;
  const open: WorkflowEngine[] = [];
  beforeAll(async () => {
    sql = await PgliteSqlClient.open();
    await sql.exec(
      'CREATE TABLE saga_effects (run_id text, step text, kind text, at serial PRIMARY KEY)',
    );
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((e) => e.close({ timeoutMs: 200 })));
  });
  afterAll(() => sql.close());

  async function engine(clock?: ManualClock): Promise<WorkflowEngine> {
    const e = await WorkflowEngine.open({
      sql,
      pollIntervalMs: 20,
      ...(clock ? { clock } : {}),
    });
    open.push(e);
    return e;
  }

  async function effects(runId: string): Promise<string[]> {
    const { rows } = await sql.query<{ step: string; kind: string }>(
      'SELECT step, kind FROM saga_effects WHERE run_id = $1 ORDER BY at',
      [runId],
    );
    return rows.map((r) => `${r.kind}:${r.step}`);
  }

  /** A SQL step writing `do:<name>` and compensating with `undo:<name>`; fails when told. */
  function sqlStep(name: string, fails: (input: { failAt?: string }) => boolean = () => false) {
    return {
      name,
      transaction: true as const,
      run: async (tx, { runId, input }) => {
        await tx.query("INSERT INTO saga_effects (run_id, step, kind) VALUES ($1, $2, 'do')", [
          runId,
          name,
        ]);
        if (fails(input)) throw new Error(`${name} refused`);
        return `${name}-done`;
      },
      compensate: async (tx, { runId, result }) => {
        expect(result).toBe(`${name}-done`);
        await tx.query("INSERT INTO saga_effects (run_id, step, kind) VALUES ($1, $2, 'undo')", [
          runId,
          name,
        ]);
      },
    } satisfies SagaStep<{ failAt?: string }, string>;
  }

  it('runs every step and completes with their results', async () => {
    const saga = defineSaga<{ failAt?: string }>(
      { name: uniq('saga-ok') },
      { steps: ['a', 'b', 'c'].map((s) => sqlStep(s, (i) => i.failAt === s)) },
    );
    const e = await engine();
    e.register(saga);
    const h = await e.start(saga, { input: {} });
    const out = await h.result();
    expect(out).toEqual({
      status: 'completed',
      output: { a: 'a-done', b: 'b-done', c: 'c-done' },
      steps: ['a', 'b', 'c'],
    });
    expect(await effects(h.runId)).toEqual(['do:a', 'do:b', 'do:c']);
  });

  it('a failing step compensates the steps done, newest first; its own rolled-back effect is not undone', async () => {
    const saga = defineSaga<{ failAt?: string }>(
      { name: uniq('saga-fail') },
      { steps: ['a', 'b', 'c', 'd'].map((s) => sqlStep(s, (i) => i.failAt === s)) },
    );
    const e = await engine();
    e.register(saga);
    const h = await e.start(saga, { input: { failAt: 'c' } });
    const out = (await h.result()) as Extract<SagaOutcome, { status: 'compensated' }>;
    expect(out.status).toBe('compensated');
    expect(out.failedStep).toBe('c');
    expect(out.reason.message).toBe('c refused');
    expect(out.compensated).toEqual(['b', 'a']);
    // c's insert rolled back with its failed transaction.
    expect(await effects(h.runId)).toEqual(['do:a', 'do:b', 'undo:b', 'undo:a']);
    const progress = sagaProgress(await e.get(h.runId));
    expect(progress.map((p) => `${p.phase}:${p.step}:${p.status}`)).toEqual([
      'run:a:completed',
      'run:b:completed',
      'run:c:failed',
      'compensate:b:completed',
      'compensate:a:completed',
    ]);
  });

  it('a failing compensation is retried with durable backoff until it succeeds', async () => {
    const clock = new ManualClock(1_700_000_000_000);
    let failures = 2;
    const name = uniq('saga-comp-retry');
    const saga = defineSaga<Record<string, never>>(
      { name },
      {
        backoff: { baseDelayMs: 1000, maxDelayMs: 5000 },
        steps: [
          {
            name: 'hold',
            run: () => 'held',
            compensate: () => {
              if (failures-- > 0) throw new Error('the release service is down');
            },
          },
          {
            name: 'charge',
            run: () => {
              throw new Error('declined');
            },
          },
        ],
      },
    );
    const e = await engine(clock);
    e.register(saga);
    const h = await e.start(saga, { input: {} });
    await eventually(async () => (await h.status()).status === 'sleeping' || undefined, 'backoff');
    expect(sagaProgress(await e.get(h.runId)).find((p) => p.phase === 'compensate')?.status).toBe(
      'retrying',
    );
    await clock.advance(1000);
    await eventually(
      async () =>
        (await e.get(h.runId)).steps.filter((s) => s.name === 'retry:compensate:hold:2').length ===
          1 || undefined,
      'second backoff',
    );
    await clock.advance(2000);
    const out = await h.result();
    expect(out).toMatchObject({
      status: 'compensated',
      failedStep: 'charge',
      compensated: ['hold'],
    });
    const comp = sagaProgress(await e.get(h.runId)).find((p) => p.phase === 'compensate')!;
    expect(comp).toMatchObject({ status: 'completed', attempts: 3 });
  });

  it('after the pivot a failing step is retried until it succeeds instead of compensating', async () => {
    const clock = new ManualClock(1_700_000_000_000);
    let failures = 1;
    const saga = defineSaga<{ failAt?: string }>(
      { name: uniq('saga-pivot') },
      {
        backoff: { baseDelayMs: 500 },
        steps: [
          sqlStep('a'),
          { ...sqlStep('grant'), compensate: undefined, pivot: true },
          {
            name: 'notify',
            run: () => {
              if (failures-- > 0) throw new Error('mail server down');
              return 'sent';
            },
          },
        ],
      },
    );
    const e = await engine(clock);
    e.register(saga);
    const h = await e.start(saga, { input: {} });
    await eventually(async () => (await h.status()).status === 'sleeping' || undefined, 'backoff');
    await clock.advance(500);
    const out = await h.result();
    expect(out).toMatchObject({ status: 'completed', steps: ['a', 'grant', 'notify'] });
    expect(await effects(h.runId)).toEqual(['do:a', 'do:grant']);
  });

  it('a failing pivot compensates the steps before it (the go/no-go point)', async () => {
    const saga = defineSaga<{ failAt?: string }>(
      { name: uniq('saga-pivot-fails') },
      {
        steps: [
          sqlStep('a'),
          { ...sqlStep('grant', (i) => i.failAt === 'grant'), compensate: undefined, pivot: true },
          sqlStep('c'),
        ],
      },
    );
    const e = await engine();
    e.register(saga);
    const h = await e.start(saga, { input: { failAt: 'grant' } });
    expect(await h.result()).toMatchObject({
      status: 'compensated',
      failedStep: 'grant',
      compensated: ['a'],
    });
    expect(await effects(h.runId)).toEqual(['do:a', 'undo:a']);
  });

  it('sagaOf inside a workflow: a business rule between steps compensates explicitly', async () => {
    const wf = defineWorkflow({ name: uniq('saga-of') }, async (ctx, limit: number) => {
      const saga = sagaOf(ctx, {});
      await saga.step(sqlStep('a'));
      const total = await saga.step({ name: 'quote', run: () => 120 });
      if (total > limit) return { undone: await saga.compensateAll() };
      await saga.step(sqlStep('b'));
      return { undone: [] };
    });
    const e = await engine();
    e.register(wf);
    const h = await e.start(wf, { input: 100 });
    expect(await h.result()).toEqual({ undone: ['a'] });
    expect(await effects(h.runId)).toEqual(['do:a', 'undo:a']);
  });

  it('refuses two pivots, a pivot with a compensation, and a step after compensation', async () => {
    expect(() =>
      defineSaga(
        { name: 'two-pivots' },
        {
          steps: [
            { ...sqlStep('a'), compensate: undefined, pivot: true },
            { name: 'b', run: () => 1, pivot: true },
          ],
        },
      ),
    ).toThrow(WorkflowUsageError);
    const wf = defineWorkflow({ name: uniq('saga-misuse') }, async (ctx) => {
      const saga = sagaOf(ctx, {});
      try {
        await saga.step({ name: 'p', run: () => 1, pivot: true, compensate: () => {} });
      } catch (err) {
        return (err as Error).name;
      }
      return 'none';
    });
    const e = await engine();
    e.register(wf);
    expect(await (await e.start(wf)).result()).toBe('WorkflowUsageError');
    expect(
      new SagaCompensatedError({
        status: 'compensated',
        failedStep: 'x',
        reason: { name: 'Error', message: 'no' },
        compensated: [],
      }).code,
    ).toBe('SAGA_COMPENSATED');
  });
});
