import type { Queryable, SqlClient, SqlTransaction } from '../../engines/sql/sql-client.js';
import type { RecordedError } from '../errors.js';
import type { RunRow, StepRow } from './run-rows.js';

/**
 * The engine's statements. Every write a worker makes for a run it executes is fenced: it
 * matches the run's `owner` and `fence` (bumped by each claim) and `status = 'running'`, in the
 * same statement or transaction as the write, so a worker that lost its lease (or a run that
 * was cancelled) writes nothing more, whatever it still computes.
 */

export const RUN_COLUMNS =
  'id, name, version, status, status_reason, input, output, error, queue, parent_id, owner, fence, claims, created_at, started_at, updated_at, finished_at, deadline_at, wake_at';

export const STEP_COLUMNS =
  'seq, name, kind, status, result, error, attempts, wake_at, started_at, finished_at';

/** Who holds a run: the fence of a claim. */
export interface Fence {
  runId: string;
  owner: string;
  fence: number;
}

export interface NewRun {
  id: string;
  name: string;
  version: string;
  input: string | null;
  queue: string;
  parentId: string | null;
  parentSeq: number | null;
  deadlineAt: Date | null;
  now: Date;
  /** Set when the starting worker executes the run itself: it is inserted claimed. */
  claim: { owner: string; leaseUntil: Date } | null;
}

/** Insert a run unless its id exists; returns the row that holds the id and whether it is new. */
export async function insertRun(
  q: Queryable,
  r: NewRun,
): Promise<{ row: RunRow; inserted: boolean }> {
  const claimed = r.claim !== null;
  const { rows } = await q.query<RunRow>(
    `INSERT INTO cdp_workflow_runs (id, name, version, status, input, queue, parent_id, parent_seq,
       owner, fence, lease_expires_at, wake_at, deadline_at, claims, created_at, started_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $15)
     ON CONFLICT (id) DO NOTHING
     RETURNING ${RUN_COLUMNS}`,
    [
      r.id,
      r.name,
      r.version,
      claimed ? 'running' : 'pending',
      r.input,
      r.queue,
      r.parentId,
      r.parentSeq,
      r.claim?.owner ?? null,
      claimed ? 1 : 0,
      r.claim?.leaseUntil ?? null,
      claimed ? null : r.now,
      r.deadlineAt,
      claimed ? 1 : 0,
      r.now,
      claimed ? r.now : null,
    ],
  );
  if (rows[0]) return { row: rows[0], inserted: true };
  const existing = await q.query<RunRow>(
    `SELECT ${RUN_COLUMNS} FROM cdp_workflow_runs WHERE id = $1`,
    [r.id],
  );
  return { row: existing.rows[0]!, inserted: false };
}

export interface ClaimFilter {
  owner: string;
  /** `name@version` of every workflow this worker runs. */
  keys: string[];
  queues: string[];
  now: Date;
  leaseUntil: Date;
  limit: number;
}

const CLAIM_SET = `status = 'running', owner = $1, fence = r.fence + 1, lease_expires_at = $2,
  claims = r.claims + 1, started_at = COALESCE(r.started_at, $3), updated_at = $3,
  status_reason = NULL, nudged = false`;

/** Claim runs that are due (pending, or sleeping/waiting past their wake time). */
export async function claimReady(q: Queryable, f: ClaimFilter): Promise<RunRow[]> {
  const { rows } = await q.query<RunRow>(
    `WITH c AS (
       SELECT id FROM cdp_workflow_runs
       WHERE status IN ('pending', 'sleeping', 'waiting') AND wake_at <= $3
         AND queue IN (SELECT jsonb_array_elements_text($4::jsonb))
         AND (name || '@' || version) IN (SELECT jsonb_array_elements_text($5::jsonb))
       ORDER BY wake_at
       LIMIT $6
       FOR UPDATE SKIP LOCKED)
     UPDATE cdp_workflow_runs r SET ${CLAIM_SET}
     FROM c WHERE r.id = c.id
     RETURNING ${prefixed('r')}`,
    [f.owner, f.leaseUntil, f.now, JSON.stringify(f.queues), JSON.stringify(f.keys), f.limit],
  );
  return rows;
}

/**
 * Claim runs whose holder's lease passed (a dead or stalled worker), or, with `own`, runs held
 * under this worker's id by its previous process, or, with `liveOwners` (PGlite: one process
 * holds the database), runs held by any worker not in that list.
 */
export async function claimExpired(
  q: Queryable,
  f: ClaimFilter & { own: boolean; liveOwners?: string[] },
): Promise<RunRow[]> {
  const { rows } = await q.query<RunRow>(
    `WITH c AS (
       SELECT id FROM cdp_workflow_runs
       WHERE status = 'running' AND (lease_expires_at < $3 OR ($7 AND owner = $1)
           OR ($8::jsonb IS NOT NULL AND owner NOT IN (SELECT jsonb_array_elements_text($8::jsonb))))
         AND queue IN (SELECT jsonb_array_elements_text($4::jsonb))
         AND (name || '@' || version) IN (SELECT jsonb_array_elements_text($5::jsonb))
       LIMIT $6
       FOR UPDATE SKIP LOCKED)
     UPDATE cdp_workflow_runs r SET ${CLAIM_SET}
     FROM c WHERE r.id = c.id
     RETURNING ${prefixed('r')}`,
    [
      f.owner,
      f.leaseUntil,
      f.now,
      JSON.stringify(f.queues),
      JSON.stringify(f.keys),
      f.limit,
      f.own,
      f.liveOwners === undefined ? null : JSON.stringify(f.liveOwners),
    ],
  );
  return rows;
}

/**
 * For a queue with global limits: claim under a transaction-scoped advisory lock on the queue,
 * within `concurrency` runs running at once across workers and `rateLimit` starts per period.
 */
export async function claimLimited(
  sql: SqlClient,
  f: ClaimFilter,
  limits: { concurrency?: number; rateLimit?: { limit: number; periodMs: number } },
): Promise<RunRow[]> {
  const queue = f.queues[0]!;
  return sql.transaction(async (tx) => {
    await tx.query(`SELECT pg_advisory_xact_lock(hashtext('cdp_workflow_queue:' || $1))`, [queue]);
    let room = f.limit;
    if (limits.concurrency !== undefined) {
      const { rows } = await tx.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM cdp_workflow_runs
         WHERE queue = $1 AND status = 'running' AND lease_expires_at >= $2`,
        [queue, f.now],
      );
      room = Math.min(room, limits.concurrency - rows[0]!.n);
    }
    if (limits.rateLimit) {
      const since = new Date(f.now.getTime() - limits.rateLimit.periodMs);
      const { rows } = await tx.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM cdp_workflow_runs WHERE queue = $1 AND started_at > $2`,
        [queue, since],
      );
      // Only first starts count: runs resumed from a sleep started earlier.
      room = Math.min(room, limits.rateLimit.limit - rows[0]!.n);
    }
    if (room <= 0) return [];
    const { rows } = await tx.query<RunRow>(
      `WITH c AS (
         SELECT id FROM cdp_workflow_runs
         WHERE status IN ('pending', 'sleeping', 'waiting') AND wake_at <= $3 AND queue = $4
           AND (name || '@' || version) IN (SELECT jsonb_array_elements_text($5::jsonb))
         ORDER BY wake_at
         LIMIT $6
         FOR UPDATE SKIP LOCKED)
       UPDATE cdp_workflow_runs r SET ${CLAIM_SET}
       FROM c WHERE r.id = c.id
       RETURNING ${prefixed('r')}`,
      [f.owner, f.leaseUntil, f.now, queue, JSON.stringify(f.keys), room],
    );
    return rows;
  });
}

/** Mark due runs in these queues whose workflow this worker lacks, saying why they wait. */
export async function markUnknown(
  q: Queryable,
  owner: string,
  keys: string[],
  queues: string[],
  now: Date,
): Promise<void> {
  await q.query(
    `UPDATE cdp_workflow_runs SET status_reason = 'worker ' || $1 || ' serves this queue but has not registered workflow "' ||
       name || '" version ' || version || '; the run is kept and starts when a worker that registers it polls the queue'
     WHERE status = 'pending' AND status_reason IS NULL AND wake_at <= $2
       AND queue IN (SELECT jsonb_array_elements_text($3::jsonb))
       AND (name || '@' || version) NOT IN (SELECT jsonb_array_elements_text($4::jsonb))`,
    [owner, now, JSON.stringify(queues), JSON.stringify(keys)],
  );
}

export async function loadSteps(q: Queryable, runId: string): Promise<StepRow[]> {
  const { rows } = await q.query<StepRow>(
    `SELECT ${STEP_COLUMNS} FROM cdp_workflow_steps WHERE run_id = $1 ORDER BY seq`,
    [runId],
  );
  return rows;
}

/** Extend the leases of the runs this worker is executing. */
export async function heartbeat(
  q: Queryable,
  owner: string,
  runIds: string[],
  leaseUntil: Date,
): Promise<void> {
  // Rows locked by a step's transaction are skipped (that transaction extends the lease
  // itself), so a heartbeat never waits for, or deadlocks with, a step.
  await q.query(
    `UPDATE cdp_workflow_runs SET lease_expires_at = $2
     WHERE id IN (SELECT id FROM cdp_workflow_runs
                  WHERE owner = $1 AND status = 'running'
                    AND id IN (SELECT jsonb_array_elements_text($3::jsonb))
                  FOR UPDATE SKIP LOCKED)`,
    [owner, leaseUntil, JSON.stringify(runIds)],
  );
}

/** Let go of a run this worker stopped executing, so that any worker may claim it now. */
export async function releaseRun(q: Queryable, f: Fence, now: Date): Promise<void> {
  await q.query(
    `UPDATE cdp_workflow_runs SET lease_expires_at = $4
     WHERE id = $1 AND owner = $2 AND fence = $3 AND status = 'running'`,
    [f.runId, f.owner, f.fence, now],
  );
}

export interface StepWrite {
  seq: number;
  name: string;
  kind: string;
  status: 'waiting' | 'completed' | 'failed';
  result: string | null;
  error: RecordedError | null;
  attempts: number;
  wakeAt: Date | null;
  startedAt: Date;
  finishedAt: Date | null;
}

function stepParams(s: StepWrite) {
  return [
    s.seq,
    s.name,
    s.kind,
    s.status,
    s.result,
    s.error === null ? null : JSON.stringify(s.error),
    s.attempts,
    s.wakeAt,
    s.startedAt,
    s.finishedAt,
  ];
}

/**
 * Record a step (or complete a waiting one) if this worker still holds the run, in one
 * statement that also extends the lease. False when the fence no longer matches.
 */
export async function recordStep(
  q: Queryable,
  f: Fence,
  leaseUntil: Date,
  s: StepWrite,
): Promise<boolean> {
  const { rows } = await q.query(
    `WITH f AS (
       UPDATE cdp_workflow_runs SET lease_expires_at = $4, updated_at = $13
       WHERE id = $1 AND owner = $2 AND fence = $3 AND status = 'running'
       RETURNING id)
     INSERT INTO cdp_workflow_steps
       (run_id, seq, name, kind, status, result, error, attempts, wake_at, started_at, finished_at)
     SELECT f.id, $5::int, $6::text, $7::text, $8::text, $9::text, $10::jsonb, $11::int, $12::timestamptz,
       $14::timestamptz, $15::timestamptz FROM f
     ON CONFLICT (run_id, seq) DO UPDATE SET status = EXCLUDED.status, result = EXCLUDED.result,
       error = EXCLUDED.error, attempts = EXCLUDED.attempts, finished_at = EXCLUDED.finished_at
       WHERE cdp_workflow_steps.status = 'waiting'
     RETURNING seq`,
    [
      f.runId,
      f.owner,
      f.fence,
      leaseUntil,
      ...stepParams(s).slice(0, 8),
      s.finishedAt ?? s.startedAt,
      ...stepParams(s).slice(8),
    ],
  );
  return rows.length > 0;
}

/** The fence check inside a transaction: locks the run row until commit. */
export async function lockFence(tx: SqlTransaction, f: Fence, leaseUntil: Date, now: Date) {
  const { rows } = await tx.query(
    `UPDATE cdp_workflow_runs SET lease_expires_at = $4, updated_at = $5
     WHERE id = $1 AND owner = $2 AND fence = $3 AND status = 'running' RETURNING id`,
    [f.runId, f.owner, f.fence, leaseUntil, now],
  );
  return rows.length > 0;
}

/** Insert a step inside a transaction that already holds the fence. */
export async function insertStep(tx: Queryable, runId: string, s: StepWrite): Promise<void> {
  await tx.query(
    `INSERT INTO cdp_workflow_steps
       (run_id, seq, name, kind, status, result, error, attempts, wake_at, started_at, finished_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
     ON CONFLICT (run_id, seq) DO UPDATE SET status = EXCLUDED.status, result = EXCLUDED.result,
       error = EXCLUDED.error, attempts = EXCLUDED.attempts, finished_at = EXCLUDED.finished_at
       WHERE cdp_workflow_steps.status = 'waiting'`,
    [runId, ...stepParams(s)],
  );
}

/** Consume the oldest unconsumed signal of a name, for step `seq`; its payload, if any. */
export async function consumeSignal(
  tx: Queryable,
  runId: string,
  name: string,
  seq: number,
): Promise<{ payload: string | null } | undefined> {
  const { rows } = await tx.query<{ payload: string | null }>(
    `UPDATE cdp_workflow_signals SET consumed_seq = $3
     WHERE id = (SELECT id FROM cdp_workflow_signals
                 WHERE run_id = $1 AND name = $2 AND consumed_seq IS NULL
                 ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
     RETURNING payload`,
    [runId, name, seq],
  );
  return rows[0];
}

/**
 * Give the run up until `wakeAt` (null: until a signal or a child wakes it). A nudge that came
 * while the run was held (a signal, a finished child) makes it due at once instead.
 */
export async function suspendRun(
  q: Queryable,
  f: Fence,
  status: 'sleeping' | 'waiting',
  wakeAt: Date | null,
  now: Date,
): Promise<boolean> {
  const { rows } = await q.query(
    `UPDATE cdp_workflow_runs SET
       status = CASE WHEN nudged THEN 'pending' ELSE $4 END,
       wake_at = CASE WHEN nudged THEN $6 ELSE $5::timestamptz END,
       nudged = false, owner = NULL, lease_expires_at = NULL, updated_at = $6
     WHERE id = $1 AND owner = $2 AND fence = $3 AND status = 'running' RETURNING id`,
    [f.runId, f.owner, f.fence, status, wakeAt, now],
  );
  return rows.length > 0;
}

/** Nudge a run (a signal for it, or its child's end): due now if waiting, remembered if held. */
export const NUDGE_SET = `nudged = true,
  status = CASE WHEN p.status = 'waiting' THEN 'pending' ELSE p.status END,
  wake_at = CASE WHEN p.status = 'waiting' THEN $NOW ELSE p.wake_at END`;

/** End a run (completed, failed, blocked) and nudge its parent; false if the fence is gone. */
export async function finishRun(
  q: Queryable,
  f: Fence,
  end: {
    status: 'completed' | 'failed' | 'blocked';
    output: string | null;
    error: RecordedError | null;
    reason: string | null;
    now: Date;
  },
): Promise<boolean> {
  const terminal = end.status !== 'blocked';
  const { rows } = await q.query(
    `WITH f AS (
       UPDATE cdp_workflow_runs SET status = $4, output = $5, error = $6::jsonb, status_reason = $7,
         finished_at = $9, owner = NULL, lease_expires_at = NULL, updated_at = $8
       WHERE id = $1 AND owner = $2 AND fence = $3 AND status = 'running'
       RETURNING id, parent_id),
     p AS (
       UPDATE cdp_workflow_runs p SET ${NUDGE_SET.replaceAll('$NOW', '$8')}
       FROM f WHERE p.id = f.parent_id AND $10
       RETURNING p.id)
     SELECT id FROM f`,
    [
      f.runId,
      f.owner,
      f.fence,
      end.status,
      end.output,
      end.error === null ? null : JSON.stringify(end.error),
      end.reason,
      end.now,
      terminal ? end.now : null,
      terminal,
    ],
  );
  return rows.length > 0;
}

export async function readRun(q: Queryable, runId: string): Promise<RunRow | undefined> {
  const { rows } = await q.query<RunRow>(
    `SELECT ${RUN_COLUMNS} FROM cdp_workflow_runs WHERE id = $1`,
    [runId],
  );
  return rows[0];
}

function prefixed(alias: string): string {
  return RUN_COLUMNS.split(', ')
    .map((c) => `${alias}.${c}`)
    .join(', ');
}
