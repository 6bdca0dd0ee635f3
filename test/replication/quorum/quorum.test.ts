import { describe, expect, it } from 'vitest';
import {
  checkLinearizability,
  createQuorumStore,
  kvModel,
  MemoryQuorumNode,
  runQuorumWorkload,
} from '../../../src/replication/index.js';
import { lwwSkewHistory, partialWriteRaceHistory } from './scenarios.js';

const memoryNodes = (n: number, latencyMs?: () => number) =>
  Array.from(
    { length: n },
    (_, i) =>
      new MemoryQuorumNode({ id: `m${i}`, leaves: 32, ...(latencyMs ? { latencyMs } : {}) }),
  );

/** A deterministic random source (mulberry32). */
function seeded(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('quorum store (in-process nodes)', () => {
  it('refuses R + W <= N and bad writer ids with a coded error', () => {
    const nodes = memoryNodes(3);
    expect(() => createQuorumStore({ nodes, r: 1, w: 2 })).toThrow(/R \+ W must exceed N/);
    expect(() => createQuorumStore({ nodes, r: 4, w: 2 })).toThrow(/R must be an integer/);
    expect(() => createQuorumStore({ nodes, writerId: 'a b' })).toThrow(/printable ASCII/);
  });

  it('reads its writes and keeps the newest stamp on every node', async () => {
    const nodes = memoryNodes(3);
    const store = createQuorumStore<string>({ nodes });
    expect(await store.get('a')).toBeUndefined();
    await store.put('a', 'one');
    await store.put('a', 'two');
    expect(await store.get('a')).toBe('two');
    await store.close();
    for (const node of nodes) expect((await node.get('a'))?.value).toBe('"two"');
    expect((await nodes[0]?.get('a'))?.stamp.counter).toBe(2);
  });

  it('linearizable mode: concurrent clients with nodes going down and up pass the checker', async () => {
    const random = seeded(7);
    const nodes = memoryNodes(5, () => (random() < 0.5 ? 0 : 1 + Math.floor(random() * 3)));
    const store = createQuorumStore<number>({ nodes, r: 3, w: 3 });
    const result = await runQuorumWorkload({
      store,
      clients: 8,
      operations: 3000,
      keys: 4,
      random,
      onOperation: async (done) => {
        if (done % 50 !== 0) return;
        const node = nodes[Math.floor(random() * nodes.length)] as MemoryQuorumNode;
        if (node.isDown) node.up();
        else if (nodes.filter((x) => x.isDown).length < 2) node.down();
        await new Promise((r) => setImmediate(r));
      },
    });
    for (const node of nodes) node.up();
    await store.close();
    const verdict = checkLinearizability(result.history, kvModel, { timeoutMs: 30_000 });
    console.log(
      `in-process linearizable run: ${result.ok} ok, ${result.failed} failed, ${result.indeterminate} unknown; checker: ${verdict.verdict} (${verdict.operations} ops, ${verdict.elapsedMs.toFixed(0)} ms)`,
    );
    expect(verdict.verdict).toBe('linearizable');
    expect(result.ok).toBeGreaterThan(2000);
    expect(store.stats().hintsStored).toBeGreaterThan(0);
  });

  it('lww mode: a writer whose clock lags loses an acknowledged write, and the checker says so', async () => {
    const nodes = memoryNodes(3);
    const history = await lwwSkewHistory(nodes);
    const verdict = checkLinearizability(history, kvModel);
    expect(verdict.verdict).toBe('not-linearizable');
    expect(verdict.violation?.unplaced.f).toBe('read');
  });

  it("lww mode: a read racing a partial write sees it, a later read does not; ABD's write-back prevents that", async () => {
    const lww = await partialWriteRaceHistory('lww');
    expect(lww.filter((e) => e.type === 'ok' && e.f === 'read').map((e) => e.value)).toEqual([
      2, 1,
    ]);
    const verdict = checkLinearizability(lww, kvModel);
    expect(verdict.verdict).toBe('not-linearizable');
    expect(verdict.violation?.unplaced).toMatchObject({ f: 'read', output: 1 });
    const abd = await partialWriteRaceHistory('linearizable');
    expect(abd.filter((e) => e.type === 'ok' && e.f === 'read').map((e) => e.value)).toEqual([
      2, 2,
    ]);
    expect(checkLinearizability(abd, kvModel).verdict).toBe('linearizable');
  });

  it('the same skewed writers in linearizable mode stay linearizable', async () => {
    const nodes = memoryNodes(3);
    const history = await lwwSkewHistory(nodes, 'linearizable');
    expect(checkLinearizability(history, kvModel).verdict).toBe('linearizable');
  });

  it('hinted handoff: writes a node missed are delivered when it is back', async () => {
    const nodes = memoryNodes(3);
    const store = createQuorumStore<number>({ nodes, r: 2, w: 2 });
    const down = nodes[2] as MemoryQuorumNode;
    down.down();
    for (let i = 0; i < 10; i++) await store.put(`h${i}`, i);
    await store.close();
    const store2 = createQuorumStore<number>({ nodes, r: 2, w: 2 });
    expect(store.stats().hintsStored).toBe(10);
    expect(await store2.deliverHints()).toBe(0);
    down.up();
    expect(await down.get('h3')).toBeUndefined();
    expect(await store2.deliverHints()).toBe(10);
    expect((await down.get('h3'))?.value).toBe('3');
    expect(await store2.deliverHints()).toBe(0);
    await store2.close();
  });

  it('read repair: a read brings a stale node up to date', async () => {
    for (const mode of ['lww', 'linearizable'] as const) {
      const nodes = memoryNodes(3);
      const store = createQuorumStore<number>({ nodes, r: 3, w: 2, mode });
      await store.put('x', 1);
      (nodes[1] as MemoryQuorumNode).forget('x');
      expect(await store.get('x')).toBe(1);
      await store.close();
      expect((await nodes[1]?.get('x'))?.value).toBe('1');
      expect(store.stats().readRepairs).toBeGreaterThanOrEqual(1);
    }
  });

  it('anti-entropy: only differing ranges are exchanged and the lagging node is repaired', async () => {
    const nodes = memoryNodes(3);
    const store = createQuorumStore<number>({ nodes, r: 2, w: 2 });
    for (let i = 0; i < 200; i++) await store.put(`e${i}`, i);
    await store.close();
    const lagging = nodes[2] as MemoryQuorumNode;
    for (const i of [5, 6, 7]) lagging.forget(`e${i}`);
    const report = await store.antiEntropy().catch(() => undefined);
    expect(report).toBeUndefined(); // closed
    const again = createQuorumStore<number>({ nodes, r: 2, w: 2 });
    const first = await again.antiEntropy();
    expect(first.keysRepaired).toBe(3);
    expect(first.rangesExchanged).toBeLessThanOrEqual(6); // at most 3 ranges per pair with the lagging node
    for (const i of [5, 6, 7]) expect((await lagging.get(`e${i}`))?.value).toBe(String(i));
    const second = await again.antiEntropy();
    expect(second).toMatchObject({ keysRepaired: 0, rangesExchanged: 0, hashesCompared: 3 });
    await again.close();
  });
});
