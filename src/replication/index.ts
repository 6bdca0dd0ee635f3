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
// multi-master: conflict handling (HLC last-writer-wins, vector-clock siblings, merge functions),
// hand-written delta-state CRDTs, and replicas in several regions synchronised over a broker.
export type {
  ConflictOutcome,
  ConflictPolicy,
  ReplicatedValueOptions,
  Resolution,
  Version,
} from './crdt/conflicts.js';
export {
  crdtJoin,
  keepSiblings,
  lastWriterWins,
  mergeWith,
  ReplicatedValue,
  resolveVersions,
} from './crdt/conflicts.js';
export type { GCounterState, PNCounterState } from './crdt/counters.js';
export { GCounter, gCounterType, PNCounter, pnCounterType } from './crdt/counters.js';
export type { Crdt, CrdtType } from './crdt/crdt.js';
export type { HlcTimestamp, HybridLogicalClockOptions } from './crdt/hlc.js';
export { ClockDriftError, compareHlc, HybridLogicalClock } from './crdt/hlc.js';
export type { CausalContextState, Dot, OrSetState } from './crdt/or-set.js';
export { OrSet, orSetType } from './crdt/or-set.js';
export type {
  JsonValue,
  LwwMapEntry,
  LwwMapState,
  LwwRegisterState,
} from './crdt/registers.js';
export { LwwMap, LwwRegister, lwwMapType, lwwRegisterType } from './crdt/registers.js';
export type { Causality, VersionVector } from './crdt/version-vector.js';
export {
  compareVersions,
  dominates,
  incrementVersion,
  mergeVersions,
} from './crdt/version-vector.js';
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
export { multiMasterMigrations } from './multi-master/migrations.js';
export type { RegionReplicaOptions, RegionReplicaStats } from './multi-master/region-replica.js';
export { CrdtTypeError, RegionReplica } from './multi-master/region-replica.js';
// quorum: a quorum store over N nodes (ABD linearizable or last-write-wins), read repair,
// hinted handoff and Merkle-tree anti-entropy; Redis nodes in cloud-data-patterns/replication/redis.
export type { AntiEntropyReport } from './quorum/anti-entropy.js';
export { differingLeaves, merkleTree, synchronizeNodes } from './quorum/anti-entropy.js';
export type { HintedWrite, MemoryQuorumNodeOptions, QuorumNode } from './quorum/node.js';
export { MemoryQuorumNode } from './quorum/node.js';
export type { VersionedValue, VersionStamp } from './quorum/stamp.js';
export { compareStamps, QuorumUnavailableError, rangeDigest } from './quorum/stamp.js';
export type { QuorumMode, QuorumStats, QuorumStore, QuorumStoreOptions } from './quorum/store.js';
export { createQuorumStore } from './quorum/store.js';
export type {
  ClockSkewHistoryOptions,
  ClockSkewHistoryResult,
  QuorumWorkloadOptions,
  QuorumWorkloadResult,
} from './quorum/workload.js';
export { runClockSkewHistory, runQuorumWorkload } from './quorum/workload.js';
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
export { ReplicaRouter } from './replica-router.js';
export { ReplicaSession } from './replica-session.js';
export type { StalenessOptions, StalenessPoint, StalenessReport } from './staleness.js';
export { measureStaleness } from './staleness.js';
