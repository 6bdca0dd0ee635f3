import { counter, gauge, histogram, type Registry } from '../../core/metrics.js';

/** The engine's metrics, `cdp_workflow_*`, on the registry passed in. */
export function workflowMetrics(registry: Registry) {
  return {
    started: counter(
      registry,
      'cdp_workflow_runs_started_total',
      'Workflow runs started (new ids) by this process',
      ['workflow'],
    ),
    finished: counter(
      registry,
      'cdp_workflow_runs_finished_total',
      'Workflow runs this worker ended, by status (completed, failed, blocked)',
      ['workflow', 'status'],
    ),
    claims: counter(
      registry,
      'cdp_workflow_claims_total',
      'Runs claimed by this worker: ready (new or woken) or expired (taken over from a worker whose lease passed)',
      ['reason'],
    ),
    steps: counter(
      registry,
      'cdp_workflow_steps_total',
      'Steps executed (not replayed) by this worker, by kind and outcome',
      ['kind', 'outcome'],
    ),
    stepSeconds: histogram(
      registry,
      'cdp_workflow_step_duration_seconds',
      'Time of executed steps, from start to recorded checkpoint',
      ['kind'],
    ),
    lost: counter(
      registry,
      'cdp_workflow_runs_lost_total',
      'Executions this worker stopped because the run was no longer its own (lease passed to another worker, or cancelled): nothing more of them was written',
    ),
    active: gauge(registry, 'cdp_workflow_active_runs', 'Runs this worker is executing now'),
    errors: counter(
      registry,
      'cdp_workflow_engine_errors_total',
      'Database failures of the engine (polls, heartbeats, checkpoints); the runs involved are claimed again',
    ),
  };
}

export type WorkflowMetrics = ReturnType<typeof workflowMetrics>;
