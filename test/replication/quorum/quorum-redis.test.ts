import { mkdir, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  checkLinearizability,
  createQuorumStore,
  kvModel,
  MemoryQuorumNode,
  runQuorumWorkload,
} from '../../../src/replication/index.js';
import type { RedisQuorumNode } from '../../../src/replication/redis.js';
import { runCdp } from '../../support/cli.js';
import { describeServer } from '../../support/servers.js';
import { closeTestNodes, openTestNodes } from './redis-nodes.js';
import { lwwSkewHistory } from './scenarios.js';

describeServer('quorum store on Redis nodes', 'CDP_QUORUM_TEST_URLS', (list) => {
  let nodes: RedisQuorumNode[];
  beforeAll(async () => {
    nodes = await openTestNodes(list);
  });
  afterAll(async () => closeTestNodes(nodes));

  it('a node never lets an older stamp overwrite a newer one (Lua, bytewise writer order)', async () => {
    const node = nodes[0] as RedisQuorumNode;
    const put = (counter: number, writer: string, value: string) =>
      node.put('cond', { stamp: { counter, writer }, value });
    expect(await put(5, 'b', '"five"')).toBe(true);
    expect(await put(3, 'z', '"three"')).toBe(false);
    expect(await put(5, 'b', '"again"')).toBe(false);
    expect(await put(5, 'B', '"upper"')).toBe(false); // 'B' < 'b' bytewise
    expect(await put(5, 'ba', '"longer"')).toBe(true);
    expect(await node.get('cond')).toEqual({
      stamp: { counter: 5, writer: 'ba' },
      value: '"longer"',
    });
  });

  it('range digests computed in Lua equal those of an in-process node with the same entries', async () => {
    const memory = new MemoryQuorumNode({ id: 'mem', leaves: nodes[1]?.leaves ?? 32 });
    const node = nodes[1] as RedisQuorumNode;
    for (let i = 0; i < 100; i++) {
      const entry = { stamp: { counter: i + 1, writer: `w${i % 3}` }, value: String(i) };
      await node.put(`d${i}`, entry);
      await memory.put(`d${i}`, entry);
    }
    await node.put('cond', (await nodes[0]?.get('cond'))!);
    await memory.put('cond', (await nodes[0]?.get('cond'))!);
    expect(await node.rangeDigests()).toEqual(await memory.rangeDigests());
  });

  it('linearizable mode: 8 concurrent clients pass the checker', async () => {
    const store = createQuorumStore<number>({ nodes, r: 3, w: 3 });
    const result = await runQuorumWorkload({
      store,
      clients: 8,
      operations: 2000,
      keys: 4,
      keyPrefix: 'lin',
    });
    await store.close();
    const verdict = checkLinearizability(result.history, kvModel, { timeoutMs: 30_000 });
    expect([verdict.verdict, result.ok]).toEqual(['linearizable', 2000]);
  });

  it('lww mode: the checker finds the lost acknowledged write, also from the command line', async () => {
    const history = await lwwSkewHistory(nodes, 'lww', 'skew-lww');
    const verdict = checkLinearizability(history, kvModel);
    expect(verdict.verdict).toBe('not-linearizable');
    expect(verdict.violation?.unplaced).toMatchObject({ f: 'read', output: 1 });
    await mkdir('test-results', { recursive: true });
    const file = 'test-results/quorum-lww-violation.json';
    await writeFile(file, JSON.stringify({ history }, null, 1));
    const run = await runCdp(['replication', 'check', file, '--model', 'kv']);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/^not-linearizable: /);
    expect(
      checkLinearizability(await lwwSkewHistory(nodes, 'linearizable', 'skew-abd'), kvModel)
        .verdict,
    ).toBe('linearizable');
  });

  it('anti-entropy repairs a node that missed writes, exchanging only the differing ranges', async () => {
    const fresh = await openTestNodes(list);
    const [lagging, ...rest] = fresh as [RedisQuorumNode, ...RedisQuorumNode[]];
    const partial = createQuorumStore<number>({ nodes: rest, r: 2, w: 3 });
    for (let i = 0; i < 5; i++) await partial.put(`ae${i}`, i);
    await partial.close();
    expect(await lagging.get('ae0')).toBeUndefined();
    const store = createQuorumStore<number>({ nodes: fresh, r: 3, w: 3 });
    const report = await store.antiEntropy();
    // Each of the 4 up-to-date nodes differs from the lagging one in at most 5 ranges.
    expect(report.keysRepaired).toBe(5);
    expect(report.rangesExchanged).toBeLessThanOrEqual(4 * 5);
    for (let i = 0; i < 5; i++) expect((await lagging.get(`ae${i}`))?.value).toBe(String(i));
    expect((await store.antiEntropy()).rangesExchanged).toBe(0);
    expect(store.stats().antiEntropyRepairs).toBe(5);
    await store.close();
    await closeTestNodes(fresh);
  });
});
