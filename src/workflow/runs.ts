import type { Queryable } from '../engines/sql/sql-client.js';
import { WorkflowNotFoundError } from './errors.js';
import {
  type RunDetail,
  type RunInfo,
  type RunRow,
  type RunStatus,
  runInfo,
  stepInfo,
} from './internal/run-rows.js';
import { loadSteps, NUDGE_SET, RUN_COLUMNS, readRun } from './internal/store.js';

/**
 * Reading and steering runs from outside a worker (the CLI, an admin route): plain functions on
 * a SqlClient. The engine's methods of the same names call them.
 */

export interface RunFilter {
  status?: RunStatus | RunStatus[];
  name?: string;
  queue?: string;
  /** Runs created before this id's creation (paging, newest first). */
  limit?: number;
}

/** Runs, newest first (default limit 100, at most 1,000). */
export async function listRuns(q: Queryable, filter: RunFilter = {}): Promise<RunInfo[]> {
  const statuses =
    filter.status === undefined
      ? null
      : JSON.stringify(Array.isArray(filter.status) ? filter.status : [filter.status]);
  const limit = Math.max(1, Math.min(1000, Math.trunc(filter.limit ?? 100)));
  const { rows } = await q.query<RunRow>(
    `SELECT ${RUN_COLUMNS} FROM cdp_workflow_runs
     WHERE ($1::jsonb IS NULL OR status IN (SELECT jsonb_array_elements_text($1::jsonb)))
       AND ($2::text IS NULL OR name = $2) AND ($3::text IS NULL OR queue = $3)
     ORDER BY created_at DESC, id DESC LIMIT $4`,
    [statuses, filter.name ?? null, filter.queue ?? null, limit],
  );
  return rows.map(runInfo);
}

/** A run with its step history; WorkflowNotFoundError for an unknown id. */
export async function getRun(q: Queryable, runId: string): Promise<RunDetail> {
  const row = await readRun(q, runId);
  if (!row) throw new WorkflowNotFoundError(runId);
  const steps = await loadSteps(q, runId);
  return { ...runInfo(row), steps: steps.map(stepInfo) };
}

/**
 * Cancel a run and its descendants that have not ended: they become `cancelled`, a worker
 * executing one stops at its next step (its fenced writes fail), and a waiting parent is woken
 * to see the child's end. Returns the ids cancelled (empty if the run had already ended).
 */
export async function cancelRun(q: Queryable, runId: string, now: Date): Promise<string[]> {
  if (!(await readRun(q, runId))) throw new WorkflowNotFoundError(runId);
  const { rows } = await q.query<{ id: string }>(
    `WITH RECURSIVE tree AS (
       SELECT id FROM cdp_workflow_runs WHERE id = $1
       UNION ALL
       SELECT r.id FROM cdp_workflow_runs r JOIN tree t ON r.parent_id = t.id),
     c AS (
       UPDATE cdp_workflow_runs SET status = 'cancelled', owner = NULL, lease_expires_at = NULL,
         error = $3::jsonb, finished_at = $2, updated_at = $2
       WHERE id IN (SELECT id FROM tree)
         AND status NOT IN ('completed', 'failed', 'cancelled')
       RETURNING id, parent_id),
     p AS (
       UPDATE cdp_workflow_runs p SET ${NUDGE_SET.replaceAll('$NOW', '$2')}
       FROM c WHERE p.id = c.parent_id AND p.id NOT IN (SELECT id FROM tree)
       RETURNING p.id)
     SELECT id FROM c`,
    [
      runId,
      now,
      JSON.stringify({
        name: 'WorkflowCancelledError',
        code: 'WORKFLOW_CANCELLED',
        message: `run ${runId} was cancelled`,
      }),
    ],
  );
  return rows.map((r) => r.id);
}

/**
 * Put a failed, cancelled or blocked run back to work from its last recorded step: the last
 * step, if it failed, is forgotten so it runs again; a deadline already passed is dropped.
 * Returns false if the run was not in one of those states.
 */
export async function resumeRun(q: Queryable, runId: string, now: Date): Promise<boolean> {
  if (!(await readRun(q, runId))) throw new WorkflowNotFoundError(runId);
  const { rows } = await q.query(
    `WITH r AS (
       UPDATE cdp_workflow_runs SET status = 'pending', wake_at = $2, error = NULL, output = NULL,
         status_reason = NULL, finished_at = NULL, owner = NULL, lease_expires_at = NULL,
         deadline_at = CASE WHEN deadline_at <= $2 THEN NULL ELSE deadline_at END, updated_at = $2
       WHERE id = $1 AND status IN ('failed', 'cancelled', 'blocked')
       RETURNING id),
     d AS (
       DELETE FROM cdp_workflow_steps s USING r
       WHERE s.run_id = r.id AND s.status = 'failed'
         AND s.seq = (SELECT max(seq) FROM cdp_workflow_steps WHERE run_id = r.id)
       RETURNING s.seq)
     SELECT id FROM r`,
    [runId, now],
  );
  return rows.length > 0;
}

/**
 * Send a signal to a run: kept until a `waitForSignal` of that name consumes it, and the run is
 * woken if it waits. WorkflowNotFoundError for an unknown run.
 */
export async function signalRun(
  q: Queryable,
  runId: string,
  name: string,
  payload: string | null,
  now: Date,
): Promise<void> {
  const { rows } = await q.query(
    `WITH s AS (
       INSERT INTO cdp_workflow_signals (run_id, name, payload, sent_at)
       SELECT id, $2, $3, $4 FROM cdp_workflow_runs WHERE id = $1
       RETURNING run_id),
     p AS (
       UPDATE cdp_workflow_runs p SET ${NUDGE_SET.replaceAll('$NOW', '$4')}
       FROM s WHERE p.id = s.run_id
       RETURNING p.id)
     SELECT run_id FROM s`,
    [runId, name, payload, now],
  );
  if (rows.length === 0) throw new WorkflowNotFoundError(runId);
}
