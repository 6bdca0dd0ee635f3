import type { Migration } from '../engines/sql/migrations.js';

/**
 * Schema of the durable workflow engine, module 'workflow'. Apply with
 * migrate(sql, workflowMigrations); `WorkflowEngine.open` applies it itself.
 */
export const workflowMigrations: Migration[] = [
  {
    module: 'workflow',
    version: 1,
    name: 'workflow runs, steps and signals',
    sql: `
CREATE TABLE cdp_workflow_runs (
  id text PRIMARY KEY,
  name text NOT NULL,
  version text NOT NULL,
  status text NOT NULL,
  status_reason text,
  input text,
  output text,
  error jsonb,
  queue text NOT NULL,
  parent_id text,
  parent_seq integer,
  owner text,
  fence bigint NOT NULL DEFAULT 0,
  lease_expires_at timestamptz,
  wake_at timestamptz,
  deadline_at timestamptz,
  claims integer NOT NULL DEFAULT 0,
  -- Set by a signal or a finished child while the run is held: its next wait does not sleep.
  nudged boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL,
  started_at timestamptz,
  updated_at timestamptz NOT NULL,
  finished_at timestamptz,
  CHECK (status IN ('pending', 'running', 'sleeping', 'waiting', 'blocked', 'completed', 'failed', 'cancelled'))
);
-- Runs a worker may claim: ready ones by wake time, per queue.
CREATE INDEX cdp_workflow_runs_ready ON cdp_workflow_runs (queue, wake_at)
  WHERE status IN ('pending', 'sleeping', 'waiting');
-- Runs held by a worker, for lease expiry and for a restarted worker taking back its own.
CREATE INDEX cdp_workflow_runs_held ON cdp_workflow_runs (lease_expires_at)
  WHERE status = 'running';
CREATE INDEX cdp_workflow_runs_owner ON cdp_workflow_runs (owner) WHERE status = 'running';
CREATE INDEX cdp_workflow_runs_parent ON cdp_workflow_runs (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX cdp_workflow_runs_created ON cdp_workflow_runs (created_at);

-- One row per step call, keyed by call order: the checkpoint a replay reads back.
CREATE TABLE cdp_workflow_steps (
  run_id text NOT NULL,
  seq integer NOT NULL,
  name text NOT NULL,
  kind text NOT NULL,
  status text NOT NULL,
  result text,
  error jsonb,
  attempts integer NOT NULL DEFAULT 1,
  wake_at timestamptz,
  started_at timestamptz NOT NULL,
  finished_at timestamptz,
  PRIMARY KEY (run_id, seq),
  CHECK (status IN ('waiting', 'completed', 'failed'))
);

-- Signals sent to a run; a wait consumes the oldest unconsumed one of its name.
CREATE TABLE cdp_workflow_signals (
  id bigserial PRIMARY KEY,
  run_id text NOT NULL,
  name text NOT NULL,
  payload text,
  sent_at timestamptz NOT NULL,
  consumed_seq integer
);
CREATE INDEX cdp_workflow_signals_pending ON cdp_workflow_signals (run_id, name, id)
  WHERE consumed_seq IS NULL;
`,
  },
];
