import { randomBytes } from 'node:crypto';
import { setTimeout as sleepReal } from 'node:timers/promises';
import { type Clock, systemClock } from '../core/clock.js';
import { ClosedError, errorMessage } from '../core/errors.js';
import { UuidV7Generator } from '../core/ids.js';
import { type Logger, silentLogger } from '../core/logger.js';
import { createRegistry } from '../core/metrics.js';
import { migrate } from '../engines/sql/migrations.js';
import type { SqlClient } from '../engines/sql/sql-client.js';
import type {
  QueueOptions,
  StartOptions,
  WorkflowEngineOptions,
  WorkflowHandle,
} from './engine-options.js';
import { WorkflowNotFoundError, WorkflowUsageError } from './errors.js';
import { encode } from './internal/codec.js';
import { endError, liveWorkers } from './internal/engine-helpers.js';
import { workflowMetrics } from './internal/metrics.js';
import { type Outcome, RunExecution, type RunHost } from './internal/run-context.js';
import {
  isTerminal,
  type RunDetail,
  type RunInfo,
  type RunRow,
  runInfo,
} from './internal/run-rows.js';
import {
  type ClaimFilter,
  claimExpired,
  claimLimited,
  claimReady,
  heartbeat,
  insertRun,
  loadSteps,
  markUnknown,
  readRun,
  releaseRun,
} from './internal/store.js';
import { cancelRun, getRun, listRuns, type RunFilter, resumeRun, signalRun } from './runs.js';
import { workflowMigrations } from './sql-migrations.js';
import type { Workflow } from './workflow.js';

interface Local {
  queue: string;
  done: Promise<Outcome>;
  /**
   * Stop this execution before its next step (a newer claim of the run replaces it); settles
   * once the step it is running, if any, has returned.
   */
  supersede(): Promise<void>;
}

const DEFAULT_QUEUE = 'default';

/**
 * The durable workflow engine on a SqlClient (PGlite or PostgreSQL): starts runs, executes the
 * ones it claims (as many workers as there are processes), and reads and steers runs.
 */
export class WorkflowEngine {
  readonly workerId: string;
  readonly #sql: SqlClient;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #metrics: ReturnType<typeof workflowMetrics>;
  readonly #ids: UuidV7Generator;
  readonly #workflows = new Map<string, Workflow<never, unknown>>();
  readonly #queues = new Map<string, QueueOptions>();
  readonly #concurrency: number;
  readonly #leaseMs: number;
  readonly #pollMs: number;
  readonly #worker: boolean;
  readonly #active = new Map<string, Local>();
  readonly #stop = new AbortController();
  /** Workflow keys registered since the last poll: runs this worker id held are taken back. */
  #reclaimOwn = new Set<string>();
  /** The take-back in flight, if any. */
  #reclaiming: Promise<void> | undefined;
  #kick: (() => void) | undefined;
  #kicked = false;
  #loop: Promise<void> | undefined;
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  #polls = 0;
  #closed = false;

  private constructor(options: WorkflowEngineOptions) {
    this.#sql = options.sql;
    this.#clock = options.clock ?? systemClock;
    this.#logger = options.logger ?? silentLogger();
    this.#metrics = workflowMetrics(options.metrics ?? createRegistry());
    this.#ids = new UuidV7Generator(this.#clock);
    this.workerId = options.workerId ?? `w-${randomBytes(6).toString('hex')}`;
    this.#concurrency = options.concurrency ?? 64;
    this.#leaseMs = options.leaseMs ?? 10_000;
    this.#pollMs = options.pollIntervalMs ?? 250;
    this.#worker = options.worker ?? true;
    this.#queues.set(DEFAULT_QUEUE, { name: DEFAULT_QUEUE });
    for (const q of options.queues ?? []) this.#queues.set(q.name, q);
    for (const wf of options.workflows ?? []) this.register(wf);
  }

  /** Open an engine: applies the migrations and, as a worker, starts polling. */
  static async open(options: WorkflowEngineOptions): Promise<WorkflowEngine> {
    if (options.migrate !== false) await migrate(options.sql, workflowMigrations);
    const engine = new WorkflowEngine(options);
    if (engine.#worker) {
      liveWorkers(options.sql).add(engine.workerId);
      engine.#startWorker();
    }
    return engine;
  }

  /** Run these workflows in this worker (their name and version). */
  register(...workflows: Workflow<never, unknown>[]): this {
    for (const wf of workflows) {
      const key = `${wf.name}@${wf.version}`;
      const existing = this.#workflows.get(key);
      if (existing && existing !== wf) {
        throw new WorkflowUsageError(
          `workflow "${wf.name}" version ${wf.version} is already registered with another function; give the new code a new version`,
        );
      }
      if (!existing) {
        this.#workflows.set(key, wf);
        this.#reclaimOwn.add(key);
      }
    }
    this.#wake();
    return this;
  }

  /**
   * Start a run (or find the run with this id). When this worker has the workflow and room,
   * it executes the run at once; otherwise any worker serving the queue claims it.
   */
  async start<I, O>(
    workflow: Workflow<I, O> | { name: string; version?: string | number },
    options: StartOptions<I> = {},
  ): Promise<WorkflowHandle<O>> {
    this.#open();
    const version = String(workflow.version ?? '1');
    const queue = options.queue ?? DEFAULT_QUEUE;
    const id = options.id ?? this.#ids.next();
    if (id.length === 0 || id.length > 256 || id.includes('\0')) {
      throw new WorkflowUsageError('a run id must be 1-256 characters without NUL');
    }
    const input = encode(options.input, `the input of workflow "${workflow.name}"`);
    const now = this.#clock.now();
    const key = `${workflow.name}@${version}`;
    const wf = this.#workflows.get(key);
    const q = this.#queues.get(queue);
    const inline =
      this.#worker &&
      wf !== undefined &&
      q !== undefined &&
      q.concurrency === undefined &&
      q.rateLimit === undefined &&
      this.#room(q);
    // The take-back of runs this worker id held in a previous life claims every running run of
    // the workflow owned by this id: it must be over before this life inserts one of its own.
    if (inline && this.#reclaimOwn.size + (this.#reclaiming ? 1 : 0) > 0) {
      await this.#reclaimOwnRuns();
    }
    const { row, inserted } = await insertRun(this.#sql, {
      id,
      name: workflow.name,
      version,
      input,
      queue,
      parentId: null,
      parentSeq: null,
      deadlineAt: options.timeoutMs === undefined ? null : new Date(now + options.timeoutMs),
      now: new Date(now),
      claim: inline ? { owner: this.workerId, leaseUntil: new Date(now + this.#leaseMs) } : null,
    });
    if (!inserted && row.name !== workflow.name) {
      throw new WorkflowUsageError(
        `run id ${JSON.stringify(id)} belongs to workflow "${row.name}", not "${workflow.name}"; use another id`,
      );
    }
    if (inserted) {
      this.#metrics.started.inc({ workflow: workflow.name });
      if (inline) this.#execute(row, []);
      else this.#wake();
    }
    return this.handle<O>(id);
  }

  /** A handle on an existing run. */
  handle<O>(runId: string): WorkflowHandle<O> {
    return {
      runId,
      result: () => this.#result<O>(runId),
      status: async () => {
        const row = await readRun(this.#sql, runId);
        if (!row) throw new WorkflowNotFoundError(runId);
        return runInfo(row);
      },
    };
  }

  /** Send a signal to a run (kept until a `waitForSignal` of that name consumes it). */
  async signal(runId: string, name: string, payload?: unknown): Promise<void> {
    this.#open();
    const text = encode(payload, `the payload of signal "${name}"`);
    await signalRun(this.#sql, runId, name, text, new Date(this.#clock.now()));
    this.#wake();
  }

  /** Cancel a run and its children; returns the ids cancelled. */
  cancel(runId: string): Promise<string[]> {
    this.#open();
    return cancelRun(this.#sql, runId, new Date(this.#clock.now()));
  }

  /** Put a failed, cancelled or blocked run back to work from its last recorded step. */
  async resume(runId: string): Promise<boolean> {
    this.#open();
    const ok = await resumeRun(this.#sql, runId, new Date(this.#clock.now()));
    this.#wake();
    return ok;
  }

  list(filter?: RunFilter): Promise<RunInfo[]> {
    return listRuns(this.#sql, filter);
  }

  get(runId: string): Promise<RunDetail> {
    return getRun(this.#sql, runId);
  }

  /**
   * Stop claiming, wait for the executions in flight to reach their next stop (bounded by
   * `timeoutMs`, default the lease), and release what is still held so other workers take it.
   */
  async close(options: { timeoutMs?: number } = {}): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    liveWorkers(this.#sql).delete(this.workerId);
    this.#stop.abort();
    this.#kick?.();
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    await this.#loop;
    const pending = [...this.#active.values()].map((l) => l.done);
    if (pending.length > 0) {
      const wait = sleepReal(options.timeoutMs ?? this.#leaseMs, undefined, { ref: false });
      await Promise.race([Promise.allSettled(pending), wait]);
    }
  }

  // --- worker --------------------------------------------------------------------------------

  #open(): void {
    if (this.#closed) throw new ClosedError('the workflow engine');
  }

  #room(q: QueueOptions): boolean {
    if (this.#active.size >= this.#concurrency) return false;
    if (q.workerConcurrency === undefined) return true;
    let n = 0;
    for (const l of this.#active.values()) if (l.queue === q.name) n++;
    return n < q.workerConcurrency;
  }

  #wake(): void {
    this.#kicked = true;
    this.#kick?.();
  }

  #startWorker(): void {
    this.#heartbeat = setInterval(
      () => {
        if (this.#active.size === 0) return;
        heartbeat(
          this.#sql,
          this.workerId,
          [...this.#active.keys()],
          new Date(this.#clock.now() + this.#leaseMs),
        ).catch((err: unknown) => this.#error(err, 'heartbeat'));
      },
      Math.max(50, Math.floor(this.#leaseMs / 3)),
    );
    this.#heartbeat.unref();
    this.#loop = this.#run();
  }

  async #run(): Promise<void> {
    while (!this.#closed) {
      this.#kicked = false;
      let full = false;
      try {
        full = await this.#poll();
      } catch (err) {
        this.#error(err, 'poll');
      }
      if (this.#closed) break;
      if (full || this.#kicked) continue;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.#pollMs);
        this.#kick = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#kick = undefined;
    }
  }

  /** One round of claims; true when a claim came back full (more may be due). */
  async #poll(): Promise<boolean> {
    if (this.#workflows.size === 0) return false;
    this.#polls++;
    const now = this.#clock.now();
    const keys = [...this.#workflows.keys()];
    const base = (queues: string[], limit: number): ClaimFilter => ({
      owner: this.workerId,
      keys,
      queues,
      now: new Date(now),
      leaseUntil: new Date(now + this.#leaseMs),
      limit,
    });
    let full = false;
    const free = () => this.#concurrency - this.#active.size;
    const open = [...this.#queues.values()].filter(
      (q) =>
        q.concurrency === undefined &&
        q.rateLimit === undefined &&
        q.workerConcurrency === undefined,
    );
    // After `keys` is read: every key it holds is taken back before any other claim of it.
    await this.#reclaimOwnRuns();
    if (free() > 0 && open.length > 0) {
      const limit = free();
      const expired = await claimExpired(this.#sql, {
        ...base(
          open.map((q) => q.name),
          limit,
        ),
        own: false,
      });
      this.#claimed(expired, 'expired');
      if (free() > 0) {
        const limit2 = free();
        const rows = await claimReady(
          this.#sql,
          base(
            open.map((q) => q.name),
            limit2,
          ),
        );
        this.#claimed(rows, 'ready');
        full = rows.length === limit2 || expired.length === limit;
      }
    }
    for (const q of this.#queues.values()) {
      if (open.includes(q) || free() <= 0) continue;
      let limit = free();
      if (q.workerConcurrency !== undefined) {
        let n = 0;
        for (const l of this.#active.values()) if (l.queue === q.name) n++;
        limit = Math.min(limit, q.workerConcurrency - n);
      }
      if (limit <= 0) continue;
      const expired = await claimExpired(this.#sql, { ...base([q.name], limit), own: false });
      this.#claimed(expired, 'expired');
      limit -= expired.length;
      if (limit <= 0) continue;
      const rows =
        q.concurrency === undefined && q.rateLimit === undefined
          ? await claimReady(this.#sql, base([q.name], limit))
          : await claimLimited(this.#sql, base([q.name], limit), {
              ...(q.concurrency !== undefined ? { concurrency: q.concurrency } : {}),
              ...(q.rateLimit ? { rateLimit: q.rateLimit } : {}),
            });
      this.#claimed(rows, 'ready');
    }
    if (this.#polls % 20 === 1) {
      await markUnknown(this.#sql, this.workerId, keys, [...this.#queues.keys()], new Date(now));
    }
    return full;
  }

  /**
   * Take back the runs of newly registered workflows that this worker id held in a previous
   * life (one query at a time; start() and the poller share it). Settles when none is pending.
   */
  async #reclaimOwnRuns(): Promise<void> {
    for (;;) {
      if (this.#reclaiming) {
        await this.#reclaiming;
        continue;
      }
      if (this.#reclaimOwn.size === 0) return;
      const own = [...this.#reclaimOwn];
      this.#reclaimOwn = new Set();
      const now = this.#clock.now();
      const reclaim = claimExpired(this.#sql, {
        owner: this.workerId,
        keys: own,
        queues: [...this.#queues.keys()],
        now: new Date(now),
        leaseUntil: new Date(now + this.#leaseMs),
        limit: 10_000,
        own: true,
        // PGlite is held by this process alone: runs of workers not alive in it are orphans.
        ...(this.#sql.engine === 'pglite' ? { liveOwners: [...liveWorkers(this.#sql)] } : {}),
      }).then(
        (rows) => this.#claimed(rows, 'expired'),
        (err: unknown) => {
          for (const key of own) this.#reclaimOwn.add(key);
          throw err;
        },
      );
      this.#reclaiming = reclaim.finally(() => {
        this.#reclaiming = undefined;
      });
      await this.#reclaiming;
    }
  }

  #claimed(rows: RunRow[], reason: 'ready' | 'expired'): void {
    for (const row of rows) {
      this.#metrics.claims.inc({ reason });
      this.#execute(row, undefined);
    }
  }

  /** Execute a claimed run; `steps` given for a run inserted here (it has none yet). */
  #execute(row: RunRow, steps: undefined | []): void {
    // A claim of a run this process is still executing under an older fence (its lease passed
    // while the process was too busy to renew it): the old execution stops before its next
    // step, and this one starts after the step it is running returns, never beside it.
    const before = this.#active.get(row.id)?.supersede() ?? Promise.resolve();
    let execution: RunExecution | undefined;
    let superseded = false;
    const wf = this.#workflows.get(`${row.name}@${row.version}`)!;
    const host: RunHost = {
      sql: this.#sql,
      clock: this.#clock,
      leaseMs: this.#leaseMs,
      onStep: (kind, ok, ms) => {
        this.#metrics.steps.inc({ kind, outcome: ok ? 'completed' : 'failed' });
        this.#metrics.stepSeconds.observe({ kind }, ms / 1000);
      },
      onChildStarted: () => this.#wake(),
      onError: (err) => this.#error(err, `run ${row.id}`),
    };
    const done = (async (): Promise<Outcome> => {
      await before;
      const history = steps ?? (await loadSteps(this.#sql, row.id));
      if (superseded) return { kind: 'lost' };
      execution = new RunExecution(host, row, history, wf as Workflow<unknown, unknown>);
      return execution.execute();
    })().catch((err: unknown): Outcome => {
      this.#error(err, `run ${row.id}`);
      return { kind: 'lost' };
    });
    const local: Local = {
      queue: row.queue,
      done,
      supersede: () => {
        superseded = true;
        return execution ? execution.abandon() : done.then(() => {});
      },
    };
    this.#active.set(row.id, local);
    this.#metrics.active.set(this.#active.size);
    void done.then((outcome) => {
      // A newer claim of the same run (after this one's lease lapsed) may have replaced it.
      if (this.#active.get(row.id) === local) this.#active.delete(row.id);
      this.#metrics.active.set(this.#active.size);
      this.#ended(row, outcome);
    });
  }

  #ended(row: RunRow, outcome: Outcome): void {
    switch (outcome.kind) {
      case 'completed':
      case 'failed':
      case 'blocked':
        this.#metrics.finished.inc({ workflow: row.name, status: outcome.kind });
        if (outcome.kind === 'blocked') {
          this.#logger.warn({ runId: row.id, reason: outcome.reason }, 'workflow run blocked');
        }
        break;
      case 'suspended':
        if (outcome.wakeAt !== null) this.#wakeAt(outcome.wakeAt);
        break;
      case 'lost':
        this.#metrics.lost.inc();
        releaseRun(
          this.#sql,
          { runId: row.id, owner: this.workerId, fence: Number(row.fence) },
          new Date(this.#clock.now()),
        ).catch((err: unknown) => this.#error(err, `release of run ${row.id}`));
        break;
    }
    this.#wake();
  }

  /** Poll when a run this worker suspended is due (any worker may take it first). */
  #wakeAt(at: number): void {
    const delay = at - this.#clock.now();
    if (delay > 10 * 60_000) return;
    this.#clock.sleep(Math.max(0, delay), this.#stop.signal).then(
      () => this.#wake(),
      () => {},
    );
  }

  async #result<O>(runId: string): Promise<O> {
    for (;;) {
      const local = this.#active.get(runId);
      if (local) {
        const outcome = await local.done;
        if (outcome.kind === 'completed') {
          return (outcome.output === null ? undefined : JSON.parse(outcome.output)) as O;
        }
        if (outcome.kind === 'failed') throw endError(runId, 'failed', outcome.error, null);
        continue;
      }
      const row = await readRun(this.#sql, runId);
      if (!row) throw new WorkflowNotFoundError(runId);
      if (isTerminal(row.status)) {
        if (row.status === 'completed') {
          return (row.output === null ? undefined : JSON.parse(row.output)) as O;
        }
        throw endError(runId, row.status, row.error, row.deadline_at);
      }
      if (this.#active.has(runId)) continue;
      await sleepReal(this.#pollMs, undefined, { ref: true });
    }
  }

  #error(err: unknown, where: string): void {
    this.#metrics.errors.inc();
    this.#logger.error({ err: errorMessage(err) }, `workflow engine: ${where} failed`);
  }
}
