/**
 * The quorum fault run: 8 clients against 5 durable Redis nodes (N=5, R=3, W=3, linearizable
 * mode) while a nemesis kills nodes with SIGKILL and restarts them at random (mostly one or two
 * down; now and then three, when no quorum is left and operations fail or end unknown). The checker must find the history linearizable. CDP_QUORUM_FAULT_OPS sets the
 * number of operations (default 10,000; the full run is 100,000). Every node is running
 * again when the test ends. The history goes to test-results/quorum-fault-history.json, which
 * `cdp replication check test-results/quorum-fault-history.json --model kv` verifies.
 */
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';
import {
  checkLinearizability,
  createQuorumStore,
  kvModel,
  runQuorumWorkload,
} from '../../../src/replication/index.js';
import type { RedisQuorumNode } from '../../../src/replication/redis.js';
import { describeServer } from '../../support/servers.js';
import { closeTestNodes, openTestNodes } from './redis-nodes.js';

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const operations = Number(process.env.CDP_QUORUM_FAULT_OPS ?? 10_000);

const portOf = (node: RedisQuorumNode) => node.id.split(':')[1] as string;

async function restart(node: RedisQuorumNode): Promise<void> {
  await run('tooling/redis-quorum-nodes.sh', ['start', portOf(node)]);
}

async function pidOf(node: RedisQuorumNode): Promise<number> {
  const info = await node.client.info('server');
  return Number(/process_id:(\d+)/.exec(info)?.[1]);
}

async function answering(node: RedisQuorumNode): Promise<boolean> {
  try {
    return (await node.client.ping()) === 'PONG';
  } catch {
    return false;
  }
}

describeServer('quorum fault run', 'CDP_QUORUM_TEST_URLS', (list) => {
  it(`linearizable mode: ${operations} operations, 8 clients, nodes killed and restarted: zero violations`, async () => {
    const nodes = await openTestNodes(list);
    const down = new Set<RedisQuorumNode>();
    let kills = 0;
    let restarts = 0;
    let finished = false;
    const store = createQuorumStore<number>({ nodes, r: 3, w: 3, nodeTimeoutMs: 2000 });
    let seed = 12345;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed / 2147483648;
    };
    const nemesis = (async () => {
      while (!finished) {
        await sleep(200 + random() * 600);
        if (finished) break;
        const live = nodes.filter((x) => !down.has(x));
        if (down.size === 0 || (down.size < 3 && random() < (down.size === 1 ? 0.5 : 0.2))) {
          const victim = live[Math.floor(random() * live.length)] as RedisQuorumNode;
          const pid = await pidOf(victim).catch(() => 0);
          if (!pid) continue;
          process.kill(pid, 'SIGKILL');
          down.add(victim);
          kills++;
        } else {
          const back = [...down][Math.floor(random() * down.size)] as RedisQuorumNode;
          await restart(back);
          down.delete(back);
          restarts++;
        }
      }
    })();
    const handoff = (async () => {
      while (!finished) {
        await sleep(250);
        await store.deliverHints().catch(() => 0);
      }
    })();
    let result: Awaited<ReturnType<typeof runQuorumWorkload>>;
    try {
      result = await runQuorumWorkload({
        store,
        clients: 8,
        operations,
        keys: 16,
        keyPrefix: 'f',
        failureBackoffMs: 20,
      });
    } finally {
      finished = true;
      await Promise.all([nemesis, handoff]);
      for (const node of down) await restart(node);
      for (const node of nodes)
        for (let i = 0; i < 100 && !(await answering(node)); i++) await sleep(100);
    }
    const delivered = await store.deliverHints();
    const repair = await store.antiEntropy();
    await store.close();
    const stats = store.stats();
    const verdict = checkLinearizability(result.history, kvModel, { timeoutMs: 120_000 });
    await mkdir('test-results', { recursive: true });
    await writeFile(
      'test-results/quorum-fault-history.json',
      JSON.stringify({ history: result.history }),
    );
    console.log(
      `quorum fault run (N=5 R=3 W=3, linearizable): ${operations} operations in ${(result.elapsedMs / 1000).toFixed(1)} s, ` +
        `${result.ok} ok, ${result.failed} failed, ${result.indeterminate} unknown; ${kills} kills, ${restarts} restarts; ` +
        `hints stored ${stats.hintsStored}, delivered ${stats.hintsDelivered + delivered}; read repairs ${stats.readRepairs}; ` +
        `anti-entropy repaired ${repair.keysRepaired} after the run; checker: ${verdict.verdict} ` +
        `(${verdict.operations} operations, ${verdict.partitions} keys, ${verdict.elapsedMs.toFixed(0)} ms)`,
    );
    await closeTestNodes(nodes);
    expect(verdict.verdict).toBe('linearizable');
    expect(kills).toBeGreaterThanOrEqual(2);
    expect(result.ok).toBeGreaterThan(operations * 0.8);
    expect(stats.hintsStored).toBeGreaterThan(0);
    expect(stats.hintsDelivered).toBeGreaterThan(0);
  }, 600_000);
});
