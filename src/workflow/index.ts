// Workflow: coordinating work across services and databases. Imports no engine client: the
// MariaDB participant of two-phase commit is the entry `cloud-data-patterns/workflow/mariadb`.

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
