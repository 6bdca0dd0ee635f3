import { openRedisQuorumNodes, type RedisQuorumNode } from '../../replication/redis.js';

/**
 * The quorum store's Redis nodes (CDP_QUORUM_URLS), under the platform's own prefix. Loaded
 * only when the variable is set, so the platform runs without the `redis` package.
 */
export function openQuorumRedisNodes(urls: readonly string[]): Promise<RedisQuorumNode[]> {
  return openRedisQuorumNodes(urls, {
    prefix: 'cdp:quorum:',
    variable: 'CDP_QUORUM_URLS',
    connectTimeoutMs: 15_000,
  });
}
