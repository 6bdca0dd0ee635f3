import { createQuorumStore, runQuorumWorkload } from '../src/replication/index.js';
import { openRedisQuorumNodes } from '../src/replication/redis.js';
const nodes = await openRedisQuorumNodes(process.env.CDP_QUORUM_TEST_URLS!.split(','), { prefix: 'cdpq-exp:' });
for (const mode of ['linearizable', 'lww'] as const) {
  const store = createQuorumStore<number>({ nodes, r: 3, w: 3, mode });
  const res = await runQuorumWorkload({ store, clients: 8, operations: 5000, keys: 16 });
  console.log(mode, res.elapsedMs.toFixed(0), (5000 / res.elapsedMs * 1000).toFixed(0), 'ops/s');
  await store.close();
}
for (const n of nodes) { await n.clear(); await n.close(); }
