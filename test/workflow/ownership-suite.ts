import { afterEach, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { createRegistry } from '../../src/core/metrics.js';
import type { SqlClient } from '../../src/engines/sql/sql-client.js';
import { eventually, uniq } from '../../src/testing/index.js';
import {
  defineWorkflow,
  WorkflowEngine,
  type WorkflowEngineOptions,
} from '../../src/workflow/index.js';

/**
 * One process never executes a run twice at once: a start racing the worker's take-back of
 * its previous runs, a lease that passes while a step runs, many starts of one id. Run on
 * every SQL engine, like the engine suite; `sql()` is a database shared by the cases.
 */
export function workflowOwnershipSuite(sql: () => SqlClient): void {
  const open: WorkflowEngine[] = [];
  async function engine(options: Partial<WorkflowEngineOptions> = {}): Promise<WorkflowEngine> {
    const e = await WorkflowEngine.open({ sql: sql(), pollIntervalMs: 20, ...options });
    open.push(e);
    return e;
  }
  afterEach(async () => {
    await Promise.all(open.splice(0).map((e) => e.close({ timeoutMs: 200 })));
  });

  it('a run started while the worker takes back its previous runs is executed once', async () => {
    // A worker's first poll takes back the runs its id held in a previous life (every running
    // run of the workflow owned by this id). The client here holds that query until the test
    // lets it go: a start whose insert lands before it must not be taken back beside itself.
    let runs = 0;
    let inserted = false;
    let letGo!: () => void;
    const held = new Promise<void>((r) => {
      letGo = r;
    });
    let reclaimed!: () => void;
    const reclaimDone = new Promise<void>((r) => {
      reclaimed = r;
    });
    let holding = false;
    const id = uniq('run');
    const gated = gatedClient(sql(), async (text, params, run) => {
      if (params?.[0] === id && text.startsWith('INSERT INTO cdp_workflow_runs')) inserted = true;
      if (holding || params?.[6] !== true || !text.includes('lease_expires_at <')) return run();
      holding = true;
      await held;
      try {
        return await run();
      } finally {
        reclaimed();
      }
    });
    const wf = defineWorkflow({ name: uniq('reclaim') }, async (ctx) => {
      await ctx.step('count', async () => {
        runs++;
        letGo();
        await reclaimDone;
      });
      return 'done';
    });
    const e = await engine({ sql: gated, workflows: [wf] });
    expect(holding).toBe(true);
    const started = e.start(wf, { id });
    // A start that inserts at once runs the step, which lets the take-back go; one that waits
    // for the take-back needs it let go here.
    if (!inserted) letGo();
    const h = await started;
    expect(await h.result()).toBe('done');
    expect(runs).toBe(1);
    expect((await e.get(id)).claims).toBe(1);
  });

  it('a run whose lease passed while its step ran is claimed again, and never runs twice at once', async () => {
    // The process is too busy to renew the lease (its heartbeats are dropped here) while a step
    // runs, so its own poller claims the run again under a new fence.
    const clock = new ManualClock(1_700_000_000_000);
    const registry = createRegistry();
    let inside = 0;
    let most = 0;
    let calls = 0;
    let finish!: () => void;
    const stepMayEnd = new Promise<void>((r) => {
      finish = r;
    });
    const gated = gatedClient(sql(), (text, _params, run) =>
      text.includes('SET lease_expires_at = $2') ? Promise.resolve({ rows: [] }) : run(),
    );
    const wf = defineWorkflow({ name: uniq('lapse') }, async (ctx) => {
      await ctx.step('slow', async () => {
        calls++;
        inside++;
        most = Math.max(most, inside);
        await stepMayEnd;
        inside--;
      });
      return 'done';
    });
    const e = await engine({
      sql: gated,
      workflows: [wf],
      clock,
      leaseMs: 1000,
      metrics: registry,
    });
    const h = await e.start(wf);
    await eventually(() => calls === 1 || undefined, 'the step runs');
    await clock.advance(2000);
    // Either a second copy of the step starts, or the first execution is given up.
    await eventually(
      async () =>
        calls === 2 ||
        (await registry.getSingleMetricAsString('cdp_workflow_runs_lost_total')).endsWith(' 1') ||
        undefined,
      'the run is claimed again',
    );
    expect(inside).toBe(1);
    finish();
    expect(await h.result()).toBe('done');
    expect(most).toBe(1);
    const run = await e.get(h.runId);
    expect(run.claims).toBe(2);
    expect(run.steps).toHaveLength(1);
  });

  it('many concurrent starts of one id execute it once', async () => {
    let runs = 0;
    const wf = defineWorkflow({ name: uniq('many') }, async (ctx, input: number) => {
      await ctx.step('count', () => {
        runs++;
      });
      return input;
    });
    const e = await engine({ workflows: [wf] });
    for (let round = 0; round < 20; round++) {
      const id = uniq('run');
      const handles = await Promise.all(
        Array.from({ length: 8 }, (_, i) => e.start(wf, { id, input: i })),
      );
      const outputs = await Promise.all(handles.map((h) => h.result()));
      expect(new Set(outputs).size).toBe(1);
    }
    expect(runs).toBe(20);
  });
}

/** A client whose queries go through `hook`, which calls `run` to send one on. */
function gatedClient(
  inner: SqlClient,
  hook: (
    text: string,
    params: readonly unknown[] | undefined,
    run: () => Promise<unknown>,
  ) => Promise<unknown>,
): SqlClient {
  return new Proxy(inner, {
    get(target, prop) {
      if (prop === 'query') {
        return (text: string, params?: readonly unknown[]) =>
          hook(text, params, () => target.query(text, params as never));
      }
      const value = Reflect.get(target, prop, target) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}
