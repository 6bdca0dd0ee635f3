import { afterEach, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { createRegistry } from '../../src/core/metrics.js';
import type { SqlClient } from '../../src/engines/sql/sql-client.js';
import { eventually, uniq } from '../../src/testing/index.js';
import {
  defineWorkflow,
  StepFailedError,
  WorkflowCancelledError,
  WorkflowEngine,
  type WorkflowEngineOptions,
  WorkflowFailedError,
} from '../../src/workflow/index.js';

/**
 * The engine's behaviour, run on every SQL engine (PGlite in this process, PostgreSQL):
 * `sql()` is the client of a database shared by the cases, each of which uses workflow names
 * of its own.
 */
export function workflowEngineSuite(sql: () => SqlClient): void {
  const open: WorkflowEngine[] = [];
  async function engine(options: Partial<WorkflowEngineOptions> = {}): Promise<WorkflowEngine> {
    const e = await WorkflowEngine.open({ sql: sql(), pollIntervalMs: 20, ...options });
    open.push(e);
    return e;
  }
  afterEach(async () => {
    await Promise.all(open.splice(0).map((e) => e.close({ timeoutMs: 200 })));
  });

  it('runs a workflow of steps, records each result, and returns its output', async () => {
    const calls: string[] = [];
    const wf = defineWorkflow({ name: uniq('three') }, async (ctx, input: { n: number }) => {
      const a = await ctx.step('a', () => {
        calls.push('a');
        return input.n + 1;
      });
      const b = await ctx.step('b', async () => {
        calls.push('b');
        return { twice: a * 2 };
      });
      await ctx.step('c', () => {
        calls.push('c');
      });
      return b.twice;
    });
    const e = await engine({ workflows: [wf] });
    const h = await e.start(wf, { input: { n: 4 } });
    expect(await h.result()).toBe(10);
    expect(calls).toEqual(['a', 'b', 'c']);
    const run = await e.get(h.runId);
    expect(run.status).toBe('completed');
    expect(run.output).toBe(10);
    expect(run.steps.map((s) => [s.seq, s.name, s.status, s.result])).toEqual([
      [1, 'a', 'completed', 5],
      [2, 'b', 'completed', { twice: 10 }],
      [3, 'c', 'completed', undefined],
    ]);
    expect(run.steps.every((s) => s.durationMs !== null && s.durationMs >= 0)).toBe(true);
  });

  it('starting an id twice returns the same run, executed once', async () => {
    let runs = 0;
    const wf = defineWorkflow({ name: uniq('once') }, async (ctx, input: string) => {
      await ctx.step('count', () => {
        runs++;
      });
      return input;
    });
    const e = await engine({ workflows: [wf] });
    const id = uniq('run');
    const [h1, h2] = await Promise.all([
      e.start(wf, { id, input: 'first' }),
      e.start(wf, { id, input: 'second' }),
    ]);
    expect(h1.runId).toBe(id);
    expect(h2.runId).toBe(id);
    const out = await h1.result();
    expect(await h2.result()).toBe(out);
    expect(runs).toBe(1);
    const h3 = await e.start(wf, { id, input: 'third' });
    expect(await h3.result()).toBe(out);
    expect(runs).toBe(1);
  });

  it('a worker that stops mid-run is replaced: completed steps are not run again, its late write is refused', async () => {
    const name = uniq('takeover');
    const executed: string[] = [];
    let release!: () => void;
    const stuck = new Promise<void>((r) => {
      release = r;
    });
    const stalled = defineWorkflow({ name }, async (ctx) => {
      await ctx.step('one', () => executed.push('A:one'));
      await ctx.step('two', async () => {
        executed.push('A:two');
        await stuck;
        return 'from A';
      });
      return 'A';
    });
    const healthy = defineWorkflow({ name }, async (ctx) => {
      await ctx.step('one', () => executed.push('B:one'));
      const two = await ctx.step('two', () => {
        executed.push('B:two');
        return 'from B';
      });
      return two;
    });
    const a = await engine({ workflows: [stalled], leaseMs: 300, workerId: uniq('a') });
    const h = await a.start(stalled, {});
    await eventually(() => executed.includes('A:two') || undefined, 'worker A runs step two');
    await a.close({ timeoutMs: 10 });
    const b = await engine({ workflows: [healthy], leaseMs: 300, workerId: uniq('b') });
    expect(await b.handle(h.runId).result()).toBe('from B');
    release();
    await new Promise((r) => setTimeout(r, 50));
    expect(executed).toEqual(['A:one', 'A:two', 'B:two']);
    const run = await b.get(h.runId);
    expect(run.steps.map((s) => s.result)).toEqual([1, 'from B']);
    expect(run.claims).toBe(2);
  });

  it('a stalled worker that lost its run cannot commit a SQL step: the effect happens once', async () => {
    const name = uniq('zombie');
    const table = uniq('zombie_effects').replaceAll('-', '_');
    await sql().exec(`CREATE TABLE ${table} (run text)`);
    let resume!: () => void;
    const stall = new Promise<void>((r) => {
      resume = r;
    });
    let stalled = false;
    const effect =
      (runId: string) => async (tx: import('../../src/engines/sql/index.js').SqlTransaction) => {
        await tx.query(`INSERT INTO ${table} VALUES ($1)`, [runId]);
        return 'done';
      };
    // Worker A stalls between two steps (as a long GC pause or a frozen VM would), long enough
    // for its lease to pass; worker B takes the run over and finishes it.
    const slow = defineWorkflow({ name }, async (ctx) => {
      await ctx.step('one', () => 1);
      stalled = true;
      await stall;
      return ctx.transaction('effect', effect(ctx.runId));
    });
    const fast = defineWorkflow({ name }, async (ctx) => {
      await ctx.step('one', () => 1);
      return ctx.transaction('effect', effect(ctx.runId));
    });
    const registry = createRegistry();
    const a = await engine({
      workflows: [slow],
      leaseMs: 300,
      workerId: uniq('a'),
      metrics: registry,
    });
    const h = await a.start(slow);
    await eventually(() => stalled || undefined, 'worker A stalls');
    await a.close({ timeoutMs: 10 });
    const b = await engine({ workflows: [fast], leaseMs: 300, workerId: uniq('b') });
    expect(await b.handle(h.runId).result()).toBe('done');
    resume();
    // A wakes up and tries its SQL step: the fence check in the step's transaction refuses it.
    await eventually(
      async () =>
        (await registry.getSingleMetricAsString('cdp_workflow_runs_lost_total')).endsWith(' 1') ||
        undefined,
      'worker A gives the run up',
    );
    const { rows } = await sql().query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`);
    expect(rows[0]!.n).toBe(1);
  });

  it('retries a step with backoff and records its attempts; a step that keeps failing throws StepFailedError', async () => {
    let tries = 0;
    const wf = defineWorkflow({ name: uniq('retry') }, async (ctx) => {
      const v = await ctx.step(
        'flaky',
        () => {
          tries++;
          if (tries < 3) throw new Error(`try ${tries}`);
          return 'ok';
        },
        { retry: { attempts: 5, baseDelayMs: 1 } },
      );
      try {
        await ctx.step(
          'broken',
          () => {
            throw Object.assign(new Error('always'), { code: 'BROKEN' });
          },
          { retry: { attempts: 2, baseDelayMs: 1 } },
        );
      } catch (err) {
        expect(err).toBeInstanceOf(StepFailedError);
        return `${v}, then ${(err as StepFailedError).recorded.code}`;
      }
      return 'unreachable';
    });
    const e = await engine({ workflows: [wf] });
    const h = await e.start(wf);
    expect(await h.result()).toBe('ok, then BROKEN');
    const run = await e.get(h.runId);
    expect(run.steps.map((s) => [s.name, s.status, s.attempts])).toEqual([
      ['flaky', 'completed', 3],
      ['broken', 'failed', 2],
    ]);
    expect(run.steps[1]!.error).toMatchObject({ message: 'always', code: 'BROKEN' });
  });

  it('a failing workflow rejects its result and keeps the error', async () => {
    const wf = defineWorkflow({ name: uniq('fails') }, async () => {
      throw new TypeError('bad input');
    });
    const e = await engine({ workflows: [wf] });
    const h = await e.start(wf);
    const err = await h.result().catch((x: unknown) => x);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect((err as WorkflowFailedError).recorded).toMatchObject({
      name: 'TypeError',
      message: 'bad input',
    });
    expect((await e.get(h.runId)).status).toBe('failed');
  });

  it('a SQL step commits its effect and its checkpoint together; a result that is not JSON rolls both back', async () => {
    const table = uniq('effects').replaceAll('-', '_');
    await sql().exec(`CREATE TABLE ${table} (v text)`);
    const wf = defineWorkflow({ name: uniq('sqlstep') }, async (ctx) => {
      const n = await ctx.transaction('insert', async (tx) => {
        await tx.query(`INSERT INTO ${table} VALUES ('kept')`);
        const { rows } = await tx.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`);
        return rows[0]!.n;
      });
      try {
        await ctx.transaction('unserializable', async (tx) => {
          await tx.query(`INSERT INTO ${table} VALUES ('rolled back')`);
          return { big: 10n };
        });
      } catch (err) {
        return { n, code: (err as StepFailedError).recorded.code };
      }
      return { n, code: 'none' };
    });
    const e = await engine({ workflows: [wf] });
    const h = await e.start(wf);
    expect(await h.result()).toEqual({ n: 1, code: 'WORKFLOW_NOT_SERIALIZABLE' });
    const { rows } = await sql().query<{ v: string }>(`SELECT v FROM ${table}`);
    expect(rows.map((r) => r.v)).toEqual(['kept']);
    const run = await e.get(h.runId);
    expect(run.steps.map((s) => [s.kind, s.status])).toEqual([
      ['transaction', 'completed'],
      ['transaction', 'failed'],
    ]);
  });

  it('a plain step whose result is not JSON fails with that error, recording nothing else', async () => {
    const wf = defineWorkflow({ name: uniq('notjson') }, async (ctx) => {
      const cyclic: Record<string, unknown> = {};
      cyclic.self = cyclic;
      await ctx.step('cyclic', () => cyclic);
      return 'unreachable';
    });
    const e = await engine({ workflows: [wf] });
    const h = await e.start(wf);
    const err = (await h.result().catch((x: unknown) => x)) as WorkflowFailedError;
    expect(err.recorded.code).toBe('WORKFLOW_STEP_FAILED');
    const run = await e.get(h.runId);
    expect(run.steps).toHaveLength(1);
    expect(run.steps[0]!.error?.code).toBe('WORKFLOW_NOT_SERIALIZABLE');
  });

  it('sleeps durably: the run gives up its worker and wakes on time', async () => {
    const clock = new ManualClock(1_700_000_000_000);
    const wf = defineWorkflow({ name: uniq('sleep') }, async (ctx) => {
      const before = await ctx.now();
      await ctx.sleep('nap', 60_000);
      const after = await ctx.now('after');
      return after - before;
    });
    const e = await engine({ workflows: [wf], clock });
    const h = await e.start(wf);
    await eventually(async () => (await h.status()).status === 'sleeping' || undefined, 'asleep');
    const asleep = await h.status();
    expect(asleep.owner).toBeNull();
    expect(asleep.wakeAt?.getTime()).toBe(1_700_000_060_000);
    await clock.advance(59_999);
    expect((await h.status()).status).toBe('sleeping');
    await clock.advance(1);
    expect(await h.result()).toBe(60_000);
  });

  it('waits for a signal (kept if sent early), and times out to null', async () => {
    const clock = new ManualClock(1_700_000_000_000);
    const wf = defineWorkflow({ name: uniq('signal') }, async (ctx) => {
      const first = await ctx.waitForSignal<{ ok: boolean }>('approve');
      const second = await ctx.waitForSignal('again', { timeoutMs: 5_000 });
      const third = await ctx.waitForSignal('early');
      return { first, second, third };
    });
    const e = await engine({ workflows: [wf], clock });
    const h = await e.start(wf);
    await e.signal(h.runId, 'early', 'kept');
    await eventually(async () => (await h.status()).status === 'waiting' || undefined, 'waits');
    await e.signal(h.runId, 'approve', { ok: true });
    await eventually(
      async () => ((await e.get(h.runId)).steps[1]?.status === 'waiting' ? true : undefined),
      'waits for the second signal',
    );
    await clock.advance(5_000);
    expect(await h.result()).toEqual({ first: { ok: true }, second: null, third: 'kept' });
  });

  it('cancels a waiting run and its child; resume carries on from the last step', async () => {
    const child = defineWorkflow({ name: uniq('child') }, async (ctx, input: number) => {
      await ctx.waitForSignal('go');
      return input * 10;
    });
    const parent = defineWorkflow({ name: uniq('parent') }, async (ctx, input: number) => {
      const r = await ctx.child(child, input, { id: `${ctx.runId}-kid` });
      return r + 1;
    });
    const e = await engine({ workflows: [parent, child] });
    const h = await e.start(parent, { input: 4 });
    const kid = `${h.runId}-kid`;
    await eventually(
      async () => (await e.get(kid).catch(() => undefined))?.status === 'waiting' || undefined,
      'child waits',
    );
    expect((await e.cancel(h.runId)).sort()).toEqual([h.runId, kid].sort());
    expect(await h.result().catch((x: unknown) => x)).toBeInstanceOf(WorkflowCancelledError);
    expect(await e.resume(kid)).toBe(true);
    expect(await e.resume(h.runId)).toBe(true);
    await e.signal(kid, 'go');
    expect(await h.result()).toBe(41);
    expect(await e.handle(kid).result()).toBe(40);
  });

  it('fails a run past its deadline with WORKFLOW_DEADLINE_EXCEEDED', async () => {
    const clock = new ManualClock(1_700_000_000_000);
    const wf = defineWorkflow({ name: uniq('deadline') }, async (ctx) => {
      await ctx.sleep('long', 60_000);
      return 'late';
    });
    const e = await engine({ workflows: [wf], clock });
    const h = await e.start(wf, { timeoutMs: 10_000 });
    await eventually(async () => (await h.status()).status === 'sleeping' || undefined, 'asleep');
    expect((await h.status()).wakeAt?.getTime()).toBe(1_700_000_010_000);
    await clock.advance(10_000);
    const err = await h.result().catch((x: unknown) => x);
    expect((err as { code: string }).code).toBe('WORKFLOW_DEADLINE_EXCEEDED');
  });

  it('keeps runs of an unknown version for a worker that registers it, saying why they wait', async () => {
    const name = uniq('versioned');
    const v1 = defineWorkflow({ name, version: 1 }, async () => 'v1');
    const v2 = defineWorkflow({ name, version: 2 }, async () => 'v2');
    const old = await engine({ workflows: [v1] });
    const h = await old.start(v2);
    await eventually(async () => (await h.status()).statusReason ?? undefined, 'a reason');
    const info = await h.status();
    expect(info.status).toBe('pending');
    expect(info.statusReason).toContain(`"${name}" version 2`);
    await engine({ workflows: [v2] });
    expect(await h.result()).toBe('v2');
  });

  it('blocks a run whose code changed under it, and patched() lets new code pass old histories', async () => {
    const name = uniq('changed');
    const clock = new ManualClock(1_700_000_000_000);
    const before = defineWorkflow({ name }, async (ctx) => {
      await ctx.step('a', () => 1);
      await ctx.sleep('pause', 1000);
      await ctx.step('b', () => 2);
      return 'old';
    });
    const e1 = await engine({ workflows: [before], clock });
    const blocked = await e1.start(before);
    const patched = await e1.start(before);
    await eventually(
      async () =>
        ((await blocked.status()).status === 'sleeping' &&
          (await patched.status()).status === 'sleeping') ||
        undefined,
      'both asleep',
    );
    await e1.close();
    // Same name and version, new code: one variant changes a step, one guards the change.
    const renamed = defineWorkflow({ name }, async (ctx) => {
      await ctx.step('a-renamed', () => 1);
      return 'new';
    });
    const e2 = await engine({ workflows: [renamed], clock });
    await e2.cancel(patched.runId);
    await clock.advance(1000);
    await eventually(
      async () => (await blocked.status()).status === 'blocked' || undefined,
      'blocked',
    );
    const info = await blocked.status();
    expect(info.error?.code).toBe('WORKFLOW_NON_DETERMINISM');
    expect(info.statusReason).toContain('step #1');
    await e2.close();
    const guarded = defineWorkflow({ name }, async (ctx) => {
      await ctx.step('a', () => 1);
      const isNew = await ctx.patched('skip-pause');
      if (!isNew) await ctx.sleep('pause', 1000);
      await ctx.step('b', () => 2);
      return isNew ? 'new path' : 'old path';
    });
    const e3 = await engine({ workflows: [guarded], clock });
    await e3.resume(blocked.runId);
    expect(await blocked.result()).toBe('old path');
    expect(await (await e3.start(guarded)).result()).toBe('new path');
  });

  it('a queue with a global concurrency of 1 runs one at a time across workers', async () => {
    const queue = uniq('q');
    let running = 0;
    let most = 0;
    const wf = defineWorkflow({ name: uniq('queued') }, async (ctx, i: number) => {
      await ctx.step('work', async () => {
        running++;
        most = Math.max(most, running);
        await new Promise((r) => setTimeout(r, 5));
        running--;
      });
      return i;
    });
    const queues = [{ name: queue, concurrency: 1 }];
    const a = await engine({ workflows: [wf], queues });
    await engine({ workflows: [wf], queues });
    const handles = await Promise.all(
      Array.from({ length: 6 }, (_, i) => a.start(wf, { input: i, queue })),
    );
    expect(await Promise.all(handles.map((h) => h.result()))).toEqual([0, 1, 2, 3, 4, 5]);
    expect(most).toBe(1);
  });

  it('a queue rate limit starts at most `limit` runs per period across workers', async () => {
    const clock = new ManualClock(1_700_000_000_000);
    const queue = uniq('rated');
    const wf = defineWorkflow({ name: uniq('rated') }, async (_ctx, i: number) => i);
    const queues = [{ name: queue, rateLimit: { limit: 2, periodMs: 60_000 } }];
    const a = await engine({ workflows: [wf], queues, clock });
    await engine({ workflows: [wf], queues, clock });
    const handles = await Promise.all(
      Array.from({ length: 5 }, (_, i) => a.start(wf, { input: i, queue })),
    );
    const completed = async () => (await a.list({ name: wf.name, status: 'completed' })).length;
    await eventually(async () => ((await completed()) === 2 ? true : undefined), 'two started');
    // Many polls later, still two: the period has not passed.
    for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 30));
    expect(await completed()).toBe(2);
    await clock.advance(60_001);
    await eventually(async () => ((await completed()) === 4 ? true : undefined), 'two more');
    await clock.advance(60_001);
    expect((await Promise.all(handles.map((h) => h.result()))).sort()).toEqual([0, 1, 2, 3, 4]);
  });

  it('refuses an input that is not JSON before storing anything', async () => {
    const wf = defineWorkflow({ name: uniq('badinput') }, async () => 'never');
    const e = await engine({ workflows: [wf] });
    const err = await e.start(wf, { id: uniq('bad'), input: { n: 1n } }).catch((x: unknown) => x);
    expect((err as { code: string }).code).toBe('WORKFLOW_NOT_SERIALIZABLE');
    expect(await e.list({ name: wf.name })).toEqual([]);
  });

  it('lists runs by status and name', async () => {
    const wf = defineWorkflow({ name: uniq('listed') }, async () => 'done');
    const e = await engine({ workflows: [wf] });
    const hs = await Promise.all([e.start(wf), e.start(wf)]);
    await Promise.all(hs.map((h) => h.result()));
    const runs = await e.list({ name: wf.name, status: 'completed' });
    expect(runs.map((r) => r.id).sort()).toEqual(hs.map((h) => h.runId).sort());
    expect(await e.list({ name: wf.name, status: 'failed' })).toEqual([]);
  });
}
