/**
 * The quorum store's cases of the `replication` suite: 8 concurrent clients, half reads and
 * half writes on 16 keys, in the linearizable (ABD) mode and in last-write-wins, with R/W
 * settings over N = 5 nodes. Redis nodes when CDP_QUORUM_TEST_URLS is set (the servers of
 * tooling/redis-quorum-nodes.sh, durable: appendfsync always), else in-process nodes.
 */
import { randomUUID } from 'node:crypto';
import {
  createQuorumStore,
  MemoryQuorumNode,
  type QuorumMode,
  type QuorumNode,
} from '../../replication/index.js';
import { type BenchContext, type BenchResult, percentile, result } from '../harness.js';

const CASES: { mode: QuorumMode; r: number; w: number }[] = [
  { mode: 'linearizable', r: 3, w: 3 },
  { mode: 'lww', r: 3, w: 3 },
  { mode: 'lww', r: 1, w: 5 },
  { mode: 'lww', r: 5, w: 1 },
];

const round = (x: number, digits = 3) => Math.round(x * 10 ** digits) / 10 ** digits;

async function openNodes(
  ctx: BenchContext,
): Promise<{ nodes: QuorumNode[]; kind: string; close(): Promise<void> }> {
  const list = ctx.env.CDP_QUORUM_TEST_URLS;
  if (!list) {
    const nodes = Array.from({ length: 5 }, (_, i) => new MemoryQuorumNode({ id: `m${i}` }));
    return { nodes, kind: 'in-process', close: async () => {} };
  }
  const { openRedisQuorumNodes } = await import('../../replication/redis.js');
  const nodes = await openRedisQuorumNodes(
    list.split(',').map((u) => u.trim()),
    { prefix: `cdpq-bench-${randomUUID().slice(0, 8)}:`, variable: 'CDP_QUORUM_TEST_URLS' },
  );
  return {
    nodes,
    kind: `redis (${nodes.length} servers, appendfsync always)`,
    async close() {
      for (const node of nodes) {
        await node.clear();
        await node.close();
      }
    },
  };
}

export async function quorumCases(ctx: BenchContext): Promise<BenchResult[]> {
  const { nodes, kind, close } = await openNodes(ctx);
  const operations = ctx.quick ? 2000 : 10_000;
  const clients = 8;
  const out: BenchResult[] = [];
  try {
    for (const c of CASES) {
      ctx.progress(`quorum ${c.mode} R=${c.r} W=${c.w} on ${kind}`);
      const store = createQuorumStore<number>({ nodes, r: c.r, w: c.w, mode: c.mode });
      for (let i = 0; i < 16; i++) await store.put(`b${i}`, 0);
      const reads: number[] = [];
      const writes: number[] = [];
      let issued = 0;
      const started = performance.now();
      await Promise.all(
        Array.from({ length: clients }, async () => {
          while (issued < operations) {
            const n = issued++;
            const key = `b${n % 16}`;
            const t0 = performance.now();
            if (n % 2 === 0) {
              await store.put(key, n);
              writes.push(performance.now() - t0);
            } else {
              await store.get(key);
              reads.push(performance.now() - t0);
            }
          }
        }),
      );
      const seconds = (performance.now() - started) / 1000;
      await store.close();
      const tag = `${c.mode}.r${c.r}w${c.w}`;
      const params = {
        nodes: kind,
        n: nodes.length,
        r: c.r,
        w: c.w,
        mode: c.mode,
        clients,
        operations,
      };
      out.push(
        result({
          id: `quorum.ops.${tag}`,
          metric: 'operations per second (half reads, half writes)',
          unit: 'ops/s',
          ours: Math.round(operations / seconds),
          higherIsBetter: true,
          params: {
            ...params,
            readsPerSecond: Math.round(reads.length / seconds),
            writesPerSecond: Math.round(writes.length / seconds),
          },
        }),
        result({
          id: `quorum.latency.${tag}`,
          metric: 'read latency p50 (write latency and p99 in params)',
          unit: 'ms',
          ours: round(percentile(reads, 50)),
          higherIsBetter: false,
          params: {
            ...params,
            readP99Ms: round(percentile(reads, 99)),
            writeP50Ms: round(percentile(writes, 50)),
            writeP99Ms: round(percentile(writes, 99)),
          },
        }),
      );
    }
  } finally {
    await close();
  }
  return out;
}
