import { CdpError } from '../core/errors.js';
import type { SqlTransaction } from '../engines/sql/sql-client.js';
import { type RecordedError, StepFailedError, WorkflowUsageError } from './errors.js';
import type { RunDetail } from './internal/run-rows.js';
import {
  defineWorkflow,
  type StepRetry,
  type Workflow,
  type WorkflowContext,
  type WorkflowOptions,
} from './workflow.js';

/**
 * Orchestrated sagas on the durable engine. Each step is a durable step of the run (a SQL step
 * when it declares `transaction: true`) and declares its compensation. When a step before the
 * pivot fails (the pivot included), the steps already done are compensated in reverse order,
 * each compensation a durable step retried with durable backoff (the run sleeps between
 * attempts) until it succeeds. Once the pivot has completed, the saga only goes forward: a
 * failing step after it is retried the same way instead of compensating.
 *
 * History names: a forward step is recorded under its name, a compensation under
 * `compensate:<name>`, backoff sleeps under `retry:<name>:<attempt>` and
 * `retry:compensate:<name>:<attempt>`; `sagaProgress` reads a run's saga from them.
 */

/** What a step's functions see: the saga's input and the results of the steps done so far. */
export interface SagaScope<I> {
  readonly runId: string;
  readonly input: I;
  /** Results of the forward steps done, by step name. */
  readonly results: Readonly<Record<string, unknown>>;
}

interface SagaStepBase {
  /** Unique in the saga; the history records it (compensations as `compensate:<name>`). */
  name: string;
  /**
   * The go/no-go step: if it fails, the steps before it are compensated; once it has
   * completed the saga only goes forward (the steps after it are retried until they succeed).
   * A pivot step has no compensation.
   */
  pivot?: boolean;
  /** In-process retries of one attempt of the step (the engine's step retry). */
  retry?: StepRetry;
}

/** A step whose effects are SQL on the engine's database: effect and checkpoint commit together. */
export interface SagaSqlStep<I, R = unknown> extends SagaStepBase {
  transaction: true;
  run: (tx: SqlTransaction, scope: SagaScope<I>) => Promise<R>;
  /** Undo `run`'s effect, in a transaction committed with its own checkpoint. */
  compensate?: (tx: SqlTransaction, scope: SagaScope<I> & { result: R }) => Promise<void>;
}

/**
 * A step whose effect is elsewhere (an HTTP call, another database): at least once, so the
 * effect must be idempotent (keyed by `runId`), and all-or-nothing when it fails.
 */
export interface SagaCallStep<I, R = unknown> extends SagaStepBase {
  transaction?: false;
  run: (scope: SagaScope<I>) => Promise<R> | R;
  compensate?: (scope: SagaScope<I> & { result: R }) => Promise<void> | void;
}

export type SagaStep<I, R = unknown> = SagaSqlStep<I, R> | SagaCallStep<I, R>;

/** Durable backoff between attempts of a compensation or a step past the pivot. */
export interface SagaBackoff {
  /** First delay in ms. Default 1,000. */
  baseDelayMs?: number;
  /** Largest delay in ms. Default 60,000. */
  maxDelayMs?: number;
}

/** How a saga ended: every step done, or the steps done compensated after a failure. */
export type SagaOutcome<O = Record<string, unknown>> =
  | { status: 'completed'; output: O; steps: string[] }
  | {
      status: 'compensated';
      /** The step that failed, and why. */
      failedStep: string;
      reason: RecordedError;
      /** Steps done before the failure, in the order they were compensated. */
      compensated: string[];
    };

/** Thrown by `Saga.step` after a failure before the pivot has been compensated. */
export class SagaCompensatedError extends CdpError {
  readonly outcome: Extract<SagaOutcome, { status: 'compensated' }>;
  constructor(outcome: Extract<SagaOutcome, { status: 'compensated' }>) {
    super(
      'SAGA_COMPENSATED',
      `saga step "${outcome.failedStep}" failed (${outcome.reason.message}); compensated: ${outcome.compensated.join(', ') || 'nothing to undo'}`,
    );
    this.outcome = outcome;
  }
}

interface Done<I> {
  step: SagaStep<I, unknown>;
  result: unknown;
}

/**
 * A saga inside a workflow function: `const saga = sagaOf(ctx, input)`, then `await
 * saga.step({...})` for each step. A failure before the pivot compensates the steps done and
 * throws SagaCompensatedError (its `outcome` says what failed and what was undone); code after
 * a catch of it must not run further steps of the saga.
 */
export class Saga<I> {
  readonly #ctx: WorkflowContext;
  readonly #input: I;
  readonly #backoff: Required<SagaBackoff>;
  readonly #done: Done<I>[] = [];
  readonly #names = new Set<string>();
  readonly #results: Record<string, unknown> = {};
  #pivoted = false;
  #ended = false;

  constructor(ctx: WorkflowContext, input: I, backoff: SagaBackoff = {}) {
    this.#ctx = ctx;
    this.#input = input;
    this.#backoff = {
      baseDelayMs: backoff.baseDelayMs ?? 1000,
      maxDelayMs: backoff.maxDelayMs ?? 60_000,
    };
  }

  /** True once the pivot step has completed: the saga only goes forward. */
  get pivoted(): boolean {
    return this.#pivoted;
  }

  /** Names of the forward steps done, in order. */
  get steps(): string[] {
    return this.#done.map((d) => d.step.name);
  }

  /** Results of the forward steps done, by name. */
  get results(): Readonly<Record<string, unknown>> {
    return this.#results;
  }

  /** Run one step; its result is kept for later steps and for its compensation. */
  async step<R>(step: SagaStep<I, R>): Promise<R> {
    if (this.#ended) {
      throw new WorkflowUsageError(
        `saga step "${step.name}" after the saga was compensated: end the workflow instead`,
      );
    }
    if (this.#names.has(step.name) || step.name.startsWith('compensate:')) {
      throw new WorkflowUsageError(
        `saga step name "${step.name}" is used twice or starts with "compensate:"; give each step its own name`,
      );
    }
    if (step.pivot && step.compensate) {
      throw new WorkflowUsageError(
        `saga step "${step.name}" is the pivot and has a compensation: a pivot is never undone; drop one of them`,
      );
    }
    this.#names.add(step.name);
    let result: R;
    if (this.#pivoted) {
      result = await this.#untilDone(step.name, () => this.#run(step));
    } else {
      try {
        result = await this.#run(step);
      } catch (err) {
        if (!(err instanceof StepFailedError)) throw err;
        const compensated = await this.compensateAll();
        throw new SagaCompensatedError({
          status: 'compensated',
          failedStep: step.name,
          reason: err.recorded,
          compensated,
        });
      }
    }
    if (step.pivot) this.#pivoted = true;
    this.#done.push({ step: step as SagaStep<I, unknown>, result });
    this.#results[step.name] = result;
    return result;
  }

  /**
   * Compensate every step done, newest first, each until it succeeds; returns their names in
   * that order. For a saga given up by the workflow's own decision (a business rule checked
   * between steps); refused after the pivot.
   */
  async compensateAll(): Promise<string[]> {
    if (this.#pivoted) {
      throw new WorkflowUsageError('the saga passed its pivot: it can no longer be compensated');
    }
    this.#ended = true;
    const names: string[] = [];
    for (const d of [...this.#done].reverse()) {
      const c = d.step.compensate;
      if (!c) continue;
      const name = `compensate:${d.step.name}`;
      const scope = { ...this.#scope(), result: d.result };
      await this.#untilDone(name, () =>
        d.step.transaction === true
          ? this.#ctx.transaction(name, async (tx) => {
              await (c as NonNullable<SagaSqlStep<I>['compensate']>)(tx, scope);
              return null;
            })
          : this.#ctx.step(name, async () => {
              await (c as NonNullable<SagaCallStep<I>['compensate']>)(scope);
              return null;
            }),
      );
      names.push(d.step.name);
    }
    return names;
  }

  #scope(): SagaScope<I> {
    return { runId: this.#ctx.runId, input: this.#input, results: { ...this.#results } };
  }

  #run<R>(step: SagaStep<I, R>): Promise<R> {
    const options = step.retry ? { retry: step.retry } : undefined;
    const scope = this.#scope();
    if (step.transaction === true) {
      const run = step.run;
      return this.#ctx.transaction(step.name, (tx) => run(tx, scope), options);
    }
    const run = step.run;
    return this.#ctx.step(step.name, () => run(scope), options);
  }

  /** Attempts until one succeeds, with a durable sleep between them (the same on replay). */
  async #untilDone<R>(name: string, attempt: () => Promise<R>): Promise<R> {
    for (let n = 1; ; n++) {
      try {
        return await attempt();
      } catch (err) {
        if (!(err instanceof StepFailedError)) throw err;
        const delay = Math.min(this.#backoff.maxDelayMs, this.#backoff.baseDelayMs * 2 ** (n - 1));
        await this.#ctx.sleep(`retry:${name}:${n}`, delay);
      }
    }
  }
}

/** A saga inside a workflow function (see Saga). */
export function sagaOf<I>(ctx: WorkflowContext, input: I, backoff?: SagaBackoff): Saga<I> {
  return new Saga(ctx, input, backoff);
}

export interface SagaDefinition<I, O> {
  /** The steps, in order (at most one pivot). */
  // biome-ignore lint/suspicious/noExplicitAny: each step has its own result type
  steps: SagaStep<I, any>[];
  /** The completed saga's output, from the steps' results (default: the results by name). */
  output?: (scope: SagaScope<I>) => O;
  backoff?: SagaBackoff;
}

/**
 * A saga as a workflow: register it on the engine like any workflow. Its run completes with a
 * SagaOutcome: `completed` with the output, or `compensated` with the failing step and reason.
 */
export function defineSaga<I, O = Record<string, unknown>>(
  options: WorkflowOptions,
  definition: SagaDefinition<I, O>,
): Workflow<I, SagaOutcome<O>> {
  const names = new Set<string>();
  let pivots = 0;
  for (const s of definition.steps) {
    if (names.has(s.name)) {
      throw new WorkflowUsageError(
        `saga "${options.name}" has two steps named "${s.name}"; name each step once`,
      );
    }
    names.add(s.name);
    if (s.pivot) pivots++;
  }
  if (pivots > 1) {
    throw new WorkflowUsageError(
      `saga "${options.name}" has ${pivots} pivot steps; a saga has at most one (the point of no return)`,
    );
  }
  return defineWorkflow<I, SagaOutcome<O>>(options, async (ctx, input) => {
    const saga = new Saga(ctx, input, definition.backoff);
    try {
      for (const s of definition.steps) await saga.step(s);
    } catch (err) {
      if (err instanceof SagaCompensatedError) return err.outcome;
      throw err;
    }
    const output = definition.output
      ? definition.output({ runId: ctx.runId, input, results: saga.results })
      : (saga.results as unknown as O);
    return { status: 'completed', output, steps: saga.steps };
  });
}

/** One line of a saga's progress, read from its run's history. */
export interface SagaStepProgress {
  step: string;
  /** `run`: a forward step; `compensate`: its compensation. */
  phase: 'run' | 'compensate';
  status: 'completed' | 'failed' | 'retrying';
  /** Attempts recorded (failed ones retried after a durable backoff count one each). */
  attempts: number;
  error: RecordedError | null;
}

/**
 * A saga's steps and compensations as its run's history records them, in order (for a
 * dashboard or `cdp workflow show`): one line per step or compensation, its attempts folded.
 */
export function sagaProgress(run: Pick<RunDetail, 'steps'>): SagaStepProgress[] {
  const lines: SagaStepProgress[] = [];
  const byKey = new Map<string, SagaStepProgress>();
  for (const s of run.steps) {
    if (s.kind !== 'step' && s.kind !== 'transaction') continue;
    const compensate = s.name.startsWith('compensate:');
    const step = compensate ? s.name.slice('compensate:'.length) : s.name;
    const key = `${compensate ? 'c' : 'r'}:${step}`;
    let line = byKey.get(key);
    if (!line) {
      line = {
        step,
        phase: compensate ? 'compensate' : 'run',
        status: 'failed',
        attempts: 0,
        error: null,
      };
      byKey.set(key, line);
      lines.push(line);
    }
    line.attempts += s.attempts;
    line.status = s.status === 'completed' ? 'completed' : 'failed';
    line.error = s.status === 'failed' ? s.error : null;
  }
  // A failed line followed by a backoff sleep of that name is being retried.
  for (const s of run.steps) {
    if (s.kind !== 'sleep' || !s.name.startsWith('retry:')) continue;
    const target = s.name.slice('retry:'.length).replace(/:\d+$/, '');
    const compensate = target.startsWith('compensate:');
    const step = compensate ? target.slice('compensate:'.length) : target;
    const line = byKey.get(`${compensate ? 'c' : 'r'}:${step}`);
    if (line && line.status === 'failed') line.status = 'retrying';
  }
  return lines;
}
