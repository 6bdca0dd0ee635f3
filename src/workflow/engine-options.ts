import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/logger.js';
import type { Registry } from '../core/metrics.js';
import type { SqlClient } from '../engines/sql/sql-client.js';
import type { RunInfo } from './internal/run-rows.js';
import type { Workflow } from './workflow.js';

/** A queue this worker serves, with its limits. */
export interface QueueOptions {
  name: string;
  /** Runs of this queue running at once across all workers (checked under a lock at claim). */
  concurrency?: number;
  /** Runs of this queue this worker executes at once. */
  workerConcurrency?: number;
  /** At most `limit` runs of this queue start per `periodMs`, across all workers. */
  rateLimit?: { limit: number; periodMs: number };
}

export interface WorkflowEngineOptions {
  sql: SqlClient;
  clock?: Clock;
  logger?: Logger;
  /** prom-client registry for `cdp_workflow_*` metrics (default: a private one). */
  metrics?: Registry;
  /**
   * This worker's id, unique among live processes (default: random). A process restarted
   * with the same id takes back at once the runs its previous life held; other workers take
   * them when their lease passes.
   */
  workerId?: string;
  /** Workflows to run (more with `register`). */
  workflows?: Workflow<never, unknown>[];
  /** Queues served besides 'default' (which has no limits). */
  queues?: QueueOptions[];
  /** Runs this worker executes at once (default 64). */
  concurrency?: number;
  /** How long a claim holds without a heartbeat (default 10,000 ms; heartbeats every third). */
  leaseMs?: number;
  /** How often the worker looks for due runs (default 250 ms). */
  pollIntervalMs?: number;
  /** false: start, signal and read runs only; execute none (default true). */
  worker?: boolean;
  /** Apply the `workflow` migrations on open (default true). */
  migrate?: boolean;
}

export interface StartOptions<I> {
  /** The run's id: starting an id that exists returns that run (default: a UUIDv7). */
  id?: string;
  input?: I;
  queue?: string;
  /** The run fails with WORKFLOW_DEADLINE_EXCEEDED if not ended this long after its start. */
  timeoutMs?: number;
}

/** A started run. */
export interface WorkflowHandle<O> {
  readonly runId: string;
  /**
   * The run's output once it completes; rejects with WorkflowFailedError (the recorded error),
   * WorkflowCancelledError or DeadlineExceededError when it ends otherwise.
   */
  result(): Promise<O>;
  status(): Promise<RunInfo>;
}
