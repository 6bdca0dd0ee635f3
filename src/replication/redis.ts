/**
 * cloud-data-patterns/replication/redis: quorum-store nodes on Redis servers (one node per
 * server; conditional writes in Lua). `redis` is an optional peer dependency: importing this
 * entry without it installed fails with a `MissingDependencyError` that names the package.
 */
import { importOptional } from '../core/optional-dependency.js';

await importOptional(
  'redis',
  'the Redis quorum nodes (cloud-data-patterns/replication/redis)',
  () => import('redis'),
);

export type {
  OpenRedisQuorumNodesOptions,
  RedisQuorumNodeOptions,
} from './quorum/redis-node.js';
export { openRedisQuorumNodes, RedisQuorumNode } from './quorum/redis-node.js';
