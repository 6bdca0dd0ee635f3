import { CdpError } from '../core/errors.js';

/** What a recorded error keeps: enough to rethrow the same error on every replay. */
export interface RecordedError {
  name: string;
  message: string;
  code?: string;
}

export function recordError(err: unknown): RecordedError {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return {
      name: err.name,
      message: err.message,
      ...(typeof code === 'string' ? { code } : {}),
    };
  }
  return { name: 'Error', message: String(err) };
}

/** No run has this id. */
export class WorkflowNotFoundError extends CdpError {
  readonly runId: string;
  constructor(runId: string) {
    super(
      'WORKFLOW_RUN_NOT_FOUND',
      `no workflow run has id ${JSON.stringify(runId)}; list runs with \`cdp workflow list\``,
    );
    this.runId = runId;
  }
}

/**
 * A step failed (after its retries). The same error, rebuilt from the record, is thrown on
 * every replay, so workflow code that catches it takes the same path each time.
 */
export class StepFailedError extends CdpError {
  readonly step: string;
  readonly seq: number;
  /** The failing error's name, message and code, as recorded. */
  readonly recorded: RecordedError;
  constructor(step: string, seq: number, recorded: RecordedError) {
    super(
      'WORKFLOW_STEP_FAILED',
      `step "${step}" (#${seq}) failed: ${recorded.name}${recorded.code ? ` [${recorded.code}]` : ''}: ${recorded.message}`,
    );
    this.step = step;
    this.seq = seq;
    this.recorded = recorded;
  }
}

/** A step's result (or a workflow's input or output) is not JSON: nothing of it was stored. */
export class NotSerializableError extends CdpError {
  constructor(what: string, options?: { cause?: unknown }) {
    super(
      'WORKFLOW_NOT_SERIALIZABLE',
      `${what} cannot be stored as JSON (${(options?.cause as Error | undefined)?.message ?? 'not JSON'}); ` +
        'return plain data (no BigInt, functions, cycles or class instances that lose their meaning)',
      options,
    );
  }
}

/**
 * The workflow's code asked for a step other than the one recorded at this point of its
 * history: the code changed under a run in flight. The run is kept, marked `blocked`; deploy
 * the old code (or guard the change with `ctx.patched`) and `resume` it.
 */
export class NonDeterminismError extends CdpError {
  readonly runId: string;
  readonly seq: number;
  readonly expected: string;
  readonly actual: string;
  constructor(runId: string, seq: number, expected: string, actual: string) {
    super(
      'WORKFLOW_NON_DETERMINISM',
      `run ${runId}: the workflow code asked for ${actual} at step #${seq}, but the run's history records ${expected} there. ` +
        'The code changed under a run in flight: register a new version for new runs, or guard the change with ctx.patched(), then resume the run',
    );
    this.runId = runId;
    this.seq = seq;
    this.expected = expected;
    this.actual = actual;
  }
}

/** The run passed its deadline (`timeoutMs` at start). */
export class DeadlineExceededError extends CdpError {
  readonly runId: string;
  constructor(runId: string, deadline: number) {
    super(
      'WORKFLOW_DEADLINE_EXCEEDED',
      `run ${runId} passed its deadline (${new Date(deadline).toISOString()}) and was failed; ` +
        'start it again with a longer timeoutMs, or resume it with a new deadline',
    );
    this.runId = runId;
  }
}

/** The run was cancelled; its result rejects with this. */
export class WorkflowCancelledError extends CdpError {
  readonly runId: string;
  constructor(runId: string) {
    super('WORKFLOW_CANCELLED', `run ${runId} was cancelled; resume it to carry on`);
    this.runId = runId;
  }
}

/** The workflow function threw (not a step): carried as the run's error. */
export class WorkflowFailedError extends CdpError {
  readonly runId: string;
  readonly recorded: RecordedError;
  constructor(runId: string, recorded: RecordedError) {
    super(
      'WORKFLOW_FAILED',
      `run ${runId} failed: ${recorded.name}${recorded.code ? ` [${recorded.code}]` : ''}: ${recorded.message}`,
    );
    this.runId = runId;
    this.recorded = recorded;
  }
}

/** A start, signal or option was refused: wrong input at the API's edge. */
export class WorkflowUsageError extends CdpError {
  constructor(message: string) {
    super('WORKFLOW_USAGE', message);
  }
}
