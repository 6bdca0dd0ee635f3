import type { SqlTransaction } from '../engines/sql/sql-client.js';

/** Retries of one step, in this process, with exponential backoff and full jitter. */
export interface StepRetry {
  /** Attempts in all, the first included. Default 1 (no retry). */
  attempts?: number;
  /** First delay in ms. Default 100. */
  baseDelayMs?: number;
  /** Largest delay in ms. Default 10_000. */
  maxDelayMs?: number;
  /** Growth factor between attempts. Default 2. */
  factor?: number;
}

export interface StepOptions {
  retry?: StepRetry;
}

export interface ChildOptions {
  /** The child's run id. Default: `<parent id>/<step seq>`, the same on every replay. */
  id?: string;
  queue?: string;
  timeoutMs?: number;
}

/**
 * What a workflow function uses to do anything durable. Each call is one step of the run's
 * history, identified by its call order and name: keep the order of calls a function of the
 * input and earlier step results (no clock, randomness or I/O outside steps).
 */
export interface WorkflowContext {
  /** The run's id. */
  readonly runId: string;
  /** The run's workflow version. */
  readonly version: string;
  /**
   * A step: `fn` runs and its result (or error) is recorded before the workflow goes on; on
   * replay the recorded result is returned and `fn` does not run. A crash between `fn`'s end
   * and its record runs `fn` again: the effect is at least once, the recorded result exactly once.
   */
  step<T>(name: string, fn: () => Promise<T> | T, options?: StepOptions): Promise<T>;
  /**
   * A SQL step: `fn` runs in a transaction on the engine's SqlClient, and its checkpoint is
   * written in the same transaction: its effects and its record commit together, exactly once.
   */
  transaction<T>(
    name: string,
    fn: (tx: SqlTransaction) => Promise<T>,
    options?: StepOptions,
  ): Promise<T>;
  /** Durable sleep: the run gives up its worker and is woken on time by any worker. */
  sleep(name: string, ms: number): Promise<void>;
  /**
   * Wait for a signal sent with `engine.signal(runId, name, payload)` (signals are kept until
   * consumed, so one sent early is not lost). Resolves to its payload, or `null` after
   * `timeoutMs` without one.
   */
  waitForSignal<T = unknown>(name: string, options?: { timeoutMs?: number }): Promise<T | null>;
  /** Start a child workflow and wait for its result (its failure throws a StepFailedError). */
  child<I, O>(workflow: Workflow<I, O>, input: I, options?: ChildOptions): Promise<O>;
  /**
   * A version marker (Temporal's `patched`): true for runs that reach this point with the new
   * code (the marker is recorded), false for runs whose history was written before it.
   */
  patched(id: string): Promise<boolean>;
  /** Time as recorded in the history (a step): the same on every replay. */
  now(name?: string): Promise<number>;
}

export type WorkflowFunction<I, O> = (ctx: WorkflowContext, input: I) => Promise<O>;

/** A workflow definition: `defineWorkflow` makes it, `engine.register` runs it. */
export interface Workflow<I = unknown, O = unknown> {
  readonly name: string;
  readonly version: string;
  readonly fn: WorkflowFunction<I, O>;
}

export interface WorkflowOptions {
  /** Stable name: runs are matched to code by it. */
  name: string;
  /**
   * The code's version (default '1'). A worker runs only runs of the versions it registered;
   * runs of another version wait for a worker that has it.
   */
  version?: string | number;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;

/** Define a workflow: an async function of steps, identified by name and version. */
export function defineWorkflow<I = unknown, O = unknown>(
  options: WorkflowOptions,
  fn: WorkflowFunction<I, O>,
): Workflow<I, O> {
  if (!NAME.test(options.name)) {
    throw new TypeError(
      `workflow name ${JSON.stringify(options.name)} must be 1-128 letters, digits, _ . : or -, starting with a letter or digit`,
    );
  }
  const version = String(options.version ?? '1');
  if (!NAME.test(version)) {
    throw new TypeError(
      `workflow version ${JSON.stringify(version)} must be 1-128 letters, digits, _ . : or -`,
    );
  }
  return Object.freeze({ name: options.name, version, fn });
}
