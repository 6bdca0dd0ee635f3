/**
 * cloud-data-patterns/workflow: coordinating work across steps, services and databases: durable
 * execution on SQL (PGlite or PostgreSQL), sagas, two-phase commit. Imports no engine client:
 * the MariaDB participant of two-phase commit is the entry `cloud-data-patterns/workflow/mariadb`.
 * Exports are grouped by part, one block each.
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
export { WorkflowEngine } from './engine.js';
// --- durable execution engine ---
export type {
  QueueOptions,
  StartOptions,
  WorkflowEngineOptions,
  WorkflowHandle,
} from './engine-options.js';
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

// --- two-phase commit ---

// Two-phase commit: the coordinator with its decision log, the participant port, and the
// PostgreSQL participant on the SqlClient port (PostgreSQL server or PGlite).
export type { PgBranchWork, PgTwoPhaseParticipantOptions } from './pg-participant.js';
export { PgTwoPhaseParticipant } from './pg-participant.js';
export type {
  PrepareOptions,
  TwoPhaseBranch,
  TwoPhaseCommitResult,
  TwoPhaseParticipant,
  TwoPhaseRecoveryReport,
  TwoPhaseStatus,
  TwoPhaseStep,
} from './two-phase-commit.js';
export {
  createBranch,
  PreparedTransactionsDisabledError,
  TwoPhaseAbortedError,
  TwoPhaseInDoubtError,
  TwoPhaseVoteTimeoutError,
} from './two-phase-commit.js';
export type {
  InDoubtBranch,
  TwoPhaseCommitCoordinatorOptions,
} from './two-phase-commit-coordinator.js';
export { TwoPhaseCommitCoordinator } from './two-phase-commit-coordinator.js';
export { twoPhaseCommitMigrations } from './two-phase-commit-migrations.js';
