import { randomUUID } from 'node:crypto';
import { openRedisQuorumNodes, type RedisQuorumNode } from '../../../src/replication/redis.js';

export function quorumUrls(list: string): string[] {
  const urls = list.split(',').map((u) => u.trim());
  for (const u of urls)
    if (!/^redis:\/\/[^,\s]+$/.test(u))
      throw new Error(
        `CDP_QUORUM_TEST_URLS holds a malformed URL ${JSON.stringify(u)}; run tooling/redis-quorum-nodes.sh and export what it prints`,
      );
  if (urls.length < 3)
    throw new Error(`CDP_QUORUM_TEST_URLS needs at least three Redis URLs; got ${urls.length}`);
  return urls;
}

/** Nodes on the test servers under a prefix of their own, cleared on close. */
export async function openTestNodes(list: string, leaves = 32): Promise<RedisQuorumNode[]> {
  return openRedisQuorumNodes(quorumUrls(list), {
    prefix: `cdpq-test-${randomUUID().slice(0, 8)}:`,
    leaves,
    variable: 'CDP_QUORUM_TEST_URLS',
    connectTimeoutMs: 15_000,
  });
}

export async function closeTestNodes(nodes: readonly RedisQuorumNode[]): Promise<void> {
  for (const node of nodes) {
    await node.clear().catch(() => {});
    await node.close();
  }
}
