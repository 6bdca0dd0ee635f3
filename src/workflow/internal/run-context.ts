import type { Clock } from '../../core/clock.js';
import { retry } from '../../core/retry.js';
import { type SqlClient, SqlError, type SqlTransaction } from '../../engines/sql/sql-client.js';
import {
  DeadlineExceededError,
  NonDeterminismError,
  NotSerializableError,
  type RecordedError,
  recordError,
  StepFailedError,
} from '../errors.js';
import type { ChildOptions, StepOptions, Workflow, WorkflowContext } from '../workflow.js';
import { decode, encode } from './codec.js';
import type { RunRow, StepRow } from './run-rows.js';
import { isTerminal } from './run-rows.js';
import {
  consumeSignal,
  type Fence,
  finishRun,
  insertRun,
  insertStep,
  lockFence,
  readRun,
  recordStep,
  type StepWrite,
  suspendRun,
} from './store.js';

/** How one execution of a run ended, for the engine. */
export type Outcome =
  | { kind: 'completed'; output: string | null }
  | { kind: 'failed'; error: RecordedError }
  | { kind: 'suspended'; wakeAt: number | null }
  | { kind: 'blocked'; reason: string }
  /** The fence no longer matched: cancelled, or another worker holds the run now. */
  | { kind: 'lost' };

/** What an execution needs from its engine. */
export interface RunHost {
  readonly sql: SqlClient;
  readonly clock: Clock;
  readonly leaseMs: number;
  /** A step ran (or failed) for real, not replayed. */
  onStep(kind: string, ok: boolean, ms: number): void;
  /** A child run was inserted: poll soon. */
  onChildStarted(): void;
  /** The engine could not record something (the database failed): the run is left to a later claim. */
  onError(err: unknown): void;
}

/** Stops the workflow function where it is: a promise that never settles, collected with it. */
function halted<T>(): Promise<T> {
  return new Promise<T>(() => {});
}

class Lost extends Error {}

/**
 * One execution of a claimed run: replays the recorded steps, runs the rest, and ends by
 * completing, failing, suspending (a sleep or a wait not yet over) or stopping (fence lost).
 * Halting never throws into the workflow function (which could catch it): the context's calls
 * return promises that never settle, and the execution's outcome is settled instead.
 */
export class RunExecution implements WorkflowContext {
  readonly runId: string;
  readonly version: string;
  readonly #host: RunHost;
  readonly #fence: Fence;
  readonly #history: Map<number, StepRow>;
  readonly #deadline: number | null;
  readonly #input: string | null;
  readonly #workflow: Workflow<unknown, unknown>;
  #seq = 0;
  #stopped = false;
  /** Settles when the step function running now (if any) returns. */
  #busy: Promise<void> = Promise.resolve();
  #settle!: (o: Outcome) => void;
  readonly #outcome: Promise<Outcome>;

  constructor(host: RunHost, run: RunRow, steps: StepRow[], workflow: Workflow<unknown, unknown>) {
    this.#host = host;
    this.runId = run.id;
    this.version = run.version;
    this.#fence = { runId: run.id, owner: run.owner!, fence: Number(run.fence) };
    this.#history = new Map(steps.map((s) => [s.seq, s]));
    this.#deadline = run.deadline_at?.getTime() ?? null;
    this.#input = run.input;
    this.#workflow = workflow;
    this.#outcome = new Promise((resolve) => {
      this.#settle = resolve;
    });
  }

  /** Run (or replay) the workflow function to its next stop. */
  async execute(): Promise<Outcome> {
    if (this.#deadlinePassed()) {
      void this.#failDeadline();
      return this.#outcome;
    }
    let input: unknown;
    try {
      input = decode(this.#input);
    } catch (err) {
      void this.#end('failed', null, recordError(err));
      return this.#outcome;
    }
    Promise.resolve()
      .then(() => this.#workflow.fn(this, input))
      .then(
        (value) => {
          if (this.#stopped) return;
          let output: string | null;
          try {
            output = encode(value, `the output of run ${this.runId}`);
          } catch (err) {
            return this.#end('failed', null, recordError(err));
          }
          return this.#end('completed', output, null);
        },
        (err: unknown) => {
          if (this.#stopped) return;
          return this.#end('failed', null, recordError(err));
        },
      )
      .catch((err: unknown) => this.#stop({ kind: 'failed', error: recordError(err) }));
    return this.#outcome;
  }

  // --- the context -------------------------------------------------------------------------

  async step<T>(name: string, fn: () => Promise<T> | T, options?: StepOptions): Promise<T> {
    const at = this.#begin(name, 'step');
    if (!at) return halted();
    if (at.rec) return this.#replay<T>(at.rec);
    const started = this.#host.clock.now();
    let attempts = 0;
    let text: string | null;
    try {
      text = await this.#running(
        this.#withRetry(options, async () => {
          attempts++;
          const value = await fn();
          return encode(value, `the result of step "${name}"`);
        }),
      );
    } catch (err) {
      return this.#stepFailed(at.seq, name, 'step', err, attempts, started);
    }
    if (this.#stopped) return halted();
    const ok = await this.#record({
      ...this.#write(at.seq, name, 'step', started),
      status: 'completed',
      result: text,
      attempts,
    });
    this.#host.onStep('step', true, this.#host.clock.now() - started);
    return ok ? decode<T>(text) : halted();
  }

  async transaction<T>(
    name: string,
    fn: (tx: SqlTransaction) => Promise<T>,
    options?: StepOptions,
  ): Promise<T> {
    const at = this.#begin(name, 'transaction');
    if (!at) return halted();
    if (at.rec) return this.#replay<T>(at.rec);
    const started = this.#host.clock.now();
    let attempts = 0;
    let text: string | null;
    try {
      text = await this.#running(
        this.#withRetry(options, () => {
          attempts++;
          return this.#transactionRetried(async (tx) => {
            if (!(await this.#lockFence(tx))) throw new Lost();
            const value = await fn(tx);
            const encoded = encode(value, `the result of step "${name}"`);
            await insertStep(tx, this.runId, {
              ...this.#write(at.seq, name, 'transaction', started),
              status: 'completed',
              result: encoded,
              attempts,
            });
            return encoded;
          });
        }),
      );
    } catch (err) {
      if (err instanceof Lost) return this.#lost();
      return this.#stepFailed(at.seq, name, 'transaction', err, attempts, started);
    }
    this.#host.onStep('transaction', true, this.#host.clock.now() - started);
    return decode<T>(text);
  }

  async sleep(name: string, ms: number): Promise<void> {
    const at = this.#begin(name, 'sleep');
    if (!at) return halted();
    if (at.rec?.status === 'completed') return;
    const now = this.#host.clock.now();
    let wakeAt: number;
    if (at.rec) {
      wakeAt = at.rec.wake_at!.getTime();
    } else {
      wakeAt = now + Math.max(0, ms);
      if (wakeAt > now) {
        const ok = await this.#record({
          ...this.#write(at.seq, name, 'sleep', now),
          status: 'waiting',
          wakeAt: new Date(wakeAt),
          finishedAt: null,
        });
        if (!ok) return halted();
      }
    }
    if (this.#host.clock.now() >= wakeAt) {
      const ok = await this.#record({
        ...this.#write(at.seq, name, 'sleep', at.rec?.started_at.getTime() ?? now),
        status: 'completed',
        wakeAt: new Date(wakeAt),
      });
      return ok ? undefined : halted();
    }
    return this.#suspend('sleeping', wakeAt);
  }

  async waitForSignal<T = unknown>(
    name: string,
    options: { timeoutMs?: number } = {},
  ): Promise<T | null> {
    const at = this.#begin(name, 'signal');
    if (!at) return halted();
    if (at.rec?.status === 'completed') return (decode<T>(at.rec.result) ?? null) as T | null;
    const now = this.#host.clock.now();
    const started = at.rec?.started_at.getTime() ?? now;
    const wakeAt =
      at.rec !== undefined
        ? (at.rec.wake_at?.getTime() ?? null)
        : options.timeoutMs === undefined
          ? null
          : now + Math.max(0, options.timeoutMs);
    let got: { payload: string | null } | undefined;
    try {
      got = await this.#host.sql.transaction(async (tx) => {
        if (!(await this.#lockFence(tx))) throw new Lost();
        const signal = await consumeSignal(tx, this.runId, name, at.seq);
        if (signal) {
          await insertStep(tx, this.runId, {
            ...this.#write(at.seq, name, 'signal', started),
            status: 'completed',
            result: signal.payload ?? 'null',
            wakeAt: wakeAt === null ? null : new Date(wakeAt),
          });
        } else if (!at.rec) {
          await insertStep(tx, this.runId, {
            ...this.#write(at.seq, name, 'signal', started),
            status: 'waiting',
            wakeAt: wakeAt === null ? null : new Date(wakeAt),
            finishedAt: null,
          });
        }
        return signal;
      });
    } catch (err) {
      return this.#lost(err);
    }
    if (got) return (decode<T>(got.payload) ?? null) as T | null;
    if (wakeAt !== null && this.#host.clock.now() >= wakeAt) {
      const ok = await this.#record({
        ...this.#write(at.seq, name, 'signal', started),
        status: 'completed',
        result: null,
        wakeAt: new Date(wakeAt),
      });
      return ok ? null : halted();
    }
    return this.#suspend('waiting', wakeAt);
  }

  async child<I, O>(workflow: Workflow<I, O>, input: I, options: ChildOptions = {}): Promise<O> {
    const at = this.#begin(workflow.name, 'child');
    if (!at) return halted();
    if (at.rec && at.rec.status !== 'waiting') return this.#replay<O>(at.rec);
    const now = this.#host.clock.now();
    const started = at.rec?.started_at.getTime() ?? now;
    const childId = at.rec
      ? decode<string>(at.rec.result)
      : (options.id ?? `${this.runId}/${at.seq}`);
    if (!at.rec) {
      const text = encode(input, `the input of child workflow "${workflow.name}"`);
      try {
        await this.#host.sql.transaction(async (tx) => {
          if (!(await this.#lockFence(tx))) throw new Lost();
          await insertRun(tx, {
            id: childId,
            name: workflow.name,
            version: workflow.version,
            input: text,
            queue: options.queue ?? 'default',
            parentId: this.runId,
            parentSeq: at.seq,
            deadlineAt: options.timeoutMs === undefined ? null : new Date(now + options.timeoutMs),
            now: new Date(now),
            claim: null,
          });
          await insertStep(tx, this.runId, {
            ...this.#write(at.seq, workflow.name, 'child', started),
            status: 'waiting',
            result: JSON.stringify(childId),
            finishedAt: null,
          });
        });
      } catch (err) {
        return this.#lost(err);
      }
      this.#host.onChildStarted();
    }
    let child: RunRow | undefined;
    try {
      child = await readRun(this.#host.sql, childId);
    } catch (err) {
      return this.#lost(err);
    }
    if (child && isTerminal(child.status)) {
      const failed = child.status !== 'completed';
      const error = failed
        ? (child.error ?? { name: 'Error', message: `child run ${childId} ${child.status}` })
        : null;
      const ok = await this.#record({
        ...this.#write(at.seq, workflow.name, 'child', started),
        status: failed ? 'failed' : 'completed',
        result: failed ? JSON.stringify(childId) : child.output,
        error,
      });
      if (!ok) return halted();
      if (error) throw new StepFailedError(workflow.name, at.seq, error);
      return decode<O>(child.output);
    }
    return this.#suspend('waiting', null);
  }

  async patched(id: string): Promise<boolean> {
    if (this.#stopped) return halted();
    const rec = this.#history.get(this.#seq + 1);
    if (rec) {
      if (rec.kind === 'marker' && rec.name === id) {
        this.#seq++;
        return true;
      }
      return false;
    }
    const at = this.#begin(id, 'marker');
    if (!at) return halted();
    const ok = await this.#record({
      ...this.#write(at.seq, id, 'marker', this.#host.clock.now()),
      status: 'completed',
      result: 'true',
    });
    return ok ? true : halted();
  }

  now(name = 'now'): Promise<number> {
    return this.step(name, () => this.#host.clock.now());
  }

  /**
   * Stop before the next step: a newer claim of this run replaces this execution. Settles when
   * the step function running now, if any, has returned (its result is then refused by the
   * fence), so the replacement never runs beside it.
   */
  abandon(): Promise<void> {
    this.#stop({ kind: 'lost' });
    return this.#busy;
  }

  // --- internals ---------------------------------------------------------------------------

  #running<T>(work: Promise<T>): Promise<T> {
    this.#busy = work.then(
      () => {},
      () => {},
    );
    return work;
  }

  /** The next seq, with its record if the history has one; undefined once stopped. */
  #begin(name: string, kind: string): { seq: number; rec: StepRow | undefined } | undefined {
    if (this.#stopped) return undefined;
    const seq = ++this.#seq;
    const rec = this.#history.get(seq);
    if (rec && (rec.name !== name || rec.kind !== kind)) {
      const err = new NonDeterminismError(
        this.runId,
        seq,
        `${rec.kind} "${rec.name}"`,
        `${kind} "${name}"`,
      );
      void this.#end('blocked', null, recordError(err), err.message);
      return undefined;
    }
    if (!rec && this.#deadlinePassed()) {
      void this.#failDeadline();
      return undefined;
    }
    return { seq, rec };
  }

  #replay<T>(rec: StepRow): Promise<T> {
    if (rec.status === 'failed') {
      return Promise.reject(
        new StepFailedError(rec.name, rec.seq, rec.error ?? { name: 'Error', message: 'failed' }),
      );
    }
    return Promise.resolve(decode<T>(rec.result));
  }

  #write(seq: number, name: string, kind: string, startedMs: number): StepWrite {
    return {
      seq,
      name,
      kind,
      status: 'completed',
      result: null,
      error: null,
      attempts: 1,
      wakeAt: null,
      startedAt: new Date(startedMs),
      finishedAt: new Date(this.#host.clock.now()),
    };
  }

  #leaseUntil(): Date {
    return new Date(this.#host.clock.now() + this.#host.leaseMs);
  }

  #lockFence(tx: SqlTransaction): Promise<boolean> {
    return lockFence(tx, this.#fence, this.#leaseUntil(), new Date(this.#host.clock.now()));
  }

  async #record(s: StepWrite): Promise<boolean> {
    if (this.#stopped) return false;
    let ok: boolean;
    try {
      ok = await recordStep(this.#host.sql, this.#fence, this.#leaseUntil(), s);
    } catch (err) {
      this.#host.onError(err);
      ok = false;
    }
    if (!ok) this.#stop({ kind: 'lost' });
    return ok;
  }

  /**
   * A transaction, run again (up to 3 times in all) when the engine reports a deadlock or a
   * serialization failure: it was rolled back whole, so nothing of it happened.
   */
  async #transactionRetried<T>(fn: (tx: SqlTransaction) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#host.sql.transaction(fn);
      } catch (err) {
        if (attempt >= 3 || !(err instanceof SqlError) || !err.retryable) throw err;
      }
    }
  }

  #withRetry<T>(options: StepOptions | undefined, fn: () => Promise<T>): Promise<T> {
    const r = options?.retry;
    const attempts = r?.attempts ?? 1;
    if (attempts <= 1) return fn();
    return retry(fn, {
      attempts,
      clock: this.#host.clock,
      ...(r?.baseDelayMs !== undefined ? { baseDelayMs: r.baseDelayMs } : {}),
      ...(r?.maxDelayMs !== undefined ? { maxDelayMs: r.maxDelayMs } : {}),
      ...(r?.factor !== undefined ? { factor: r.factor } : {}),
      retryIf: (err) =>
        !(err instanceof Lost) && !(err instanceof NotSerializableError) && !this.#stopped,
    });
  }

  async #stepFailed(
    seq: number,
    name: string,
    kind: string,
    err: unknown,
    attempts: number,
    started: number,
  ): Promise<never> {
    this.#host.onStep(kind, false, this.#host.clock.now() - started);
    if (this.#stopped) return halted();
    const error = recordError(err);
    const ok = await this.#record({
      ...this.#write(seq, name, kind, started),
      status: 'failed',
      error,
      attempts: Math.max(1, attempts),
    });
    if (!ok) return halted();
    throw new StepFailedError(name, seq, error);
  }

  async #suspend(status: 'sleeping' | 'waiting', wakeAt: number | null): Promise<never> {
    if (this.#stopped) return halted();
    const wake =
      this.#deadline === null
        ? wakeAt
        : wakeAt === null
          ? this.#deadline
          : Math.min(wakeAt, this.#deadline);
    const now = this.#host.clock.now();
    let ok: boolean;
    try {
      ok = await suspendRun(
        this.#host.sql,
        this.#fence,
        status,
        wake === null ? null : new Date(wake),
        new Date(now),
      );
    } catch (err) {
      this.#host.onError(err);
      ok = false;
    }
    this.#stop(ok ? { kind: 'suspended', wakeAt: wake } : { kind: 'lost' });
    return halted();
  }

  #lost(err?: unknown): Promise<never> {
    if (err !== undefined && !(err instanceof Lost)) this.#host.onError(err);
    this.#stop({ kind: 'lost' });
    return halted();
  }

  #deadlinePassed(): boolean {
    return this.#deadline !== null && this.#host.clock.now() >= this.#deadline;
  }

  #failDeadline(): Promise<void> {
    const err = new DeadlineExceededError(this.runId, this.#deadline!);
    return this.#end('failed', null, recordError(err));
  }

  async #end(
    status: 'completed' | 'failed' | 'blocked',
    output: string | null,
    error: RecordedError | null,
    reason: string | null = null,
  ): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    try {
      const ok = await finishRun(this.#host.sql, this.#fence, {
        status,
        output,
        error,
        reason,
        now: new Date(this.#host.clock.now()),
      });
      if (!ok) this.#settle({ kind: 'lost' });
      else if (status === 'completed') this.#settle({ kind: 'completed', output });
      else if (status === 'blocked') this.#settle({ kind: 'blocked', reason: reason ?? '' });
      else this.#settle({ kind: 'failed', error: error! });
    } catch (err) {
      // The end was not recorded: the run is released or its lease runs out, and another claim
      // replays it.
      this.#host.onError(err);
      this.#settle({ kind: 'lost' });
    }
  }

  #stop(outcome: Outcome): void {
    if (this.#stopped && outcome.kind !== 'lost') return;
    this.#stopped = true;
    this.#settle(outcome);
  }
}
