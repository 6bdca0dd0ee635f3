/**
 * cloud-data-patterns/replication: tools for replicated data. The linearizability checker
 * (Wing & Gong with Lowe's just-in-time linearization and Porcupine's memoization, per-key
 * partitioning) tests recorded histories of a register, a cas register and a key-value map.
 */

// primary and replicas
export type { ConsistencyToken, Lsn } from './consistency-token.js';
export {
  ConsistencyTokenError,
  formatConsistencyToken,
  formatLsn,
  laterToken,
  parseConsistencyToken,
  parseLsn,
} from './consistency-token.js';
export type { HistoryEvent, Operation } from './history.js';
export { historyOperations } from './history.js';
export type { HistoryFormat } from './history-formats.js';
export { detectHistoryFormat, parseHistory } from './history-formats.js';
export type {
  LinearizabilityOptions,
  LinearizabilityResult,
  LinearizabilityVerdict,
  LinearizabilityViolation,
} from './linearizability.js';
export { checkLinearizability, checkOperations } from './linearizability.js';
export type { LinearizabilityModel, ModelName } from './models.js';
export {
  casRegisterModel,
  kvModel,
  modelByName,
  registerModel,
  registerValueKey,
} from './models.js';
export {
  ClusterMismatchError,
  FailoverError,
  NotAStandbyError,
  NotPrimaryError,
} from './replica-errors.js';
export type { FailoverOptions, FailoverReport } from './replica-failover.js';
export type {
  PrimaryServer,
  ReadConsistency,
  ReadOptions,
  ReadResult,
  ReplicaRouterOptions,
  ReplicaServer,
  ReplicaStatus,
  RouterStatus,
  WriteOptions,
  WriteResult,
} from './replica-router.js';
export { ReplicaRouter, ReplicaSession } from './replica-router.js';
export type { StalenessOptions, StalenessPoint, StalenessReport } from './staleness.js';
export { measureStaleness } from './staleness.js';
