/**
 * `cloud-data-patterns/sharding`: shard maps (lookup, range, hash slots) stored and versioned
 * in a catalog database, a router that sends each statement to the shard of its key and fans
 * out the rest, online moves (copy, catch-up, verify, fenced cut-over) that resume after a
 * crash, and index tables for lookups by a secondary attribute.
 */
export type { ShardedTable, ShardMapDefinition } from './catalog.js';
export { installShardMap, ShardCatalog } from './catalog.js';
export {
  FanOutDeadlineError,
  MoveInProgressError,
  MoveVerificationError,
  ShardFencedError,
  ShardingError,
  ShardKeyRequiredError,
  ShardKeyTypeError,
  ShardMapError,
  ShardUnavailableError,
} from './errors.js';
export type {
  AggregateFunction,
  AggregateQuery,
  AggregateResult,
  FanOutOptions,
  FanOutResult,
  ShardFailure,
} from './fan-out.js';
export type {
  IndexCheckReport,
  IndexDivergence,
  IndexMode,
  IndexTableDefinition,
  IndexTablesOptions,
} from './index-table.js';
export { IndexTables, UniqueIndexViolationError } from './index-table.js';
export type { MovePhase, MoveRecord, ShardMoverOptions } from './mover.js';
export { ShardMover } from './mover.js';
export type { HotUnit, PlannedMove, RebalancePlan } from './rebalance.js';
export {
  addShard,
  assignKey,
  countRowsByUnit,
  findHotUnits,
  mergeRanges,
  parseShardUrl,
  planRebalance,
  removeShard,
  splitRange,
} from './rebalance.js';
export type { RoutedWork, ShardRouterOptions } from './router.js';
export { ShardRouter } from './router.js';
export type {
  KeyRange,
  ShardInfo,
  ShardKey,
  ShardKeyType,
  ShardMap,
  ShardMapState,
  ShardRoute,
  ShardStrategy,
} from './shard-map.js';
export { createShardMap } from './shard-map.js';
export { jumpConsistentHash, keyHash32, slotOf } from './slot-hash.js';
export { shardingMigrations, shardingShardMigrations } from './sql-migrations.js';
