/**
 * cloud-data-patterns/workflow: durable execution on SQL (PGlite or PostgreSQL). Exports are
 * grouped by part, one block each, so that parts added beside the engine merge cleanly.
 */

// --- choreographed saga ---
export type {
  ChoreographedSagaDefinition,
  ChoreographedSagaEvent,
  ChoreographedSagaInstance,
  ChoreographedSagaMonitorOptions,
  ChoreographedSagaState,
} from './choreographed-saga.js';
export { ChoreographedSagaMonitor, choreographedSagaMigrations } from './choreographed-saga.js';
// --- durable execution engine ---
export type {
  QueueOptions,
  StartOptions,
  WorkflowEngineOptions,
  WorkflowHandle,
} from './engine.js';
export { WorkflowEngine } from './engine.js';
export type { RecordedError } from './errors.js';
export {
  DeadlineExceededError,
  NonDeterminismError,
  NotSerializableError,
  StepFailedError,
  WorkflowCancelledError,
  WorkflowFailedError,
  WorkflowNotFoundError,
  WorkflowUsageError,
} from './errors.js';
export type { RunDetail, RunInfo, RunStatus, StepInfo } from './internal/run-rows.js';
export type { RunFilter } from './runs.js';
export { cancelRun, getRun, listRuns, resumeRun, signalRun } from './runs.js';
// --- orchestrated saga ---
export type {
  SagaBackoff,
  SagaCallStep,
  SagaDefinition,
  SagaOutcome,
  SagaScope,
  SagaSqlStep,
  SagaStep,
  SagaStepProgress,
} from './saga.js';
export { defineSaga, Saga, SagaCompensatedError, sagaOf, sagaProgress } from './saga.js';
export { workflowMigrations } from './sql-migrations.js';
export type {
  ChildOptions,
  StepOptions,
  StepRetry,
  Workflow,
  WorkflowContext,
  WorkflowFunction,
  WorkflowOptions,
} from './workflow.js';
export { defineWorkflow } from './workflow.js';
