/**
 * cloud-data-patterns/replication: tools for replicated data. The linearizability checker
 * (Wing & Gong with Lowe's just-in-time linearization and Porcupine's memoization, per-key
 * partitioning) tests recorded histories of a register, a cas register and a key-value map.
 */
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
export type { QuorumWorkloadOptions, QuorumWorkloadResult } from './quorum/workload.js';
export { runQuorumWorkload } from './quorum/workload.js';
