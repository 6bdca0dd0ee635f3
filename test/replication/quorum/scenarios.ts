import type { Clock } from '../../../src/core/clock.js';
import type { HistoryEvent, QuorumMode, QuorumNode } from '../../../src/replication/index.js';
import {
  createQuorumStore,
  MemoryQuorumNode,
  runClockSkewHistory,
} from '../../../src/replication/index.js';

const fixedClock = (now: number): Clock => ({ now: () => now, sleep: async () => {} });

/** The clock-skew history of `runClockSkewHistory` on these nodes, in this mode. */
export async function lwwSkewHistory(
  nodes: readonly QuorumNode[],
  mode: QuorumMode = 'lww',
  key = 'skew',
): Promise<HistoryEvent[]> {
  return (await runClockSkewHistory({ nodes, mode, key })).history;
}

/**
 * A read racing a partial write (N=3, R=2, W=2): write(2) reaches node A only (its coordinator
 * crashed after the first message: the outcome is unknown); a read from {A, B} returns 2; B's repair is slow; a read from {B, C} then
 * returns 1 under last-write-wins. In the linearizable mode the first read writes 2 back to W
 * nodes before it returns, so the second read sees 2.
 */
export async function partialWriteRaceHistory(mode: QuorumMode): Promise<HistoryEvent[]> {
  const slowPutOnB = (method: string) => (method === 'put' ? 30 : 0);
  const [a, b, c] = [
    new MemoryQuorumNode({ id: 'a' }),
    new MemoryQuorumNode({ id: 'b', latencyMs: slowPutOnB }),
    new MemoryQuorumNode({ id: 'c' }),
  ];
  const nodes = [a, b, c];
  const store = createQuorumStore<number>({ nodes, r: 2, w: 2, mode, clock: fixedClock(1000) });
  const key = 'race';
  const history: HistoryEvent[] = [];
  const op = async (
    process: number,
    f: 'read' | 'write',
    value: number | null,
    run: () => Promise<unknown>,
  ) => {
    history.push({ process, type: 'invoke', f, key, value });
    try {
      const out = await run();
      history.push({ process, type: 'ok', f, key, value: f === 'read' ? (out ?? null) : value });
    } catch {
      history.push({ process, type: f === 'write' ? 'info' : 'fail', f, key, value });
    }
  };
  await op(0, 'write', 1, () => store.put(key, 1));
  // write(2) by a coordinator that crashes after reaching a alone: invoked, never completed.
  history.push({ process: 1, type: 'invoke', f: 'write', key, value: 2 });
  await a.put(key, { stamp: { counter: 2000, writer: 'crashed' }, value: '2' });
  c.down();
  await op(2, 'read', null, () => store.get(key)); // a and b answer (c is down)
  a.down();
  c.up();
  await op(3, 'read', null, () => store.get(key)); // b and c answer
  a.up();
  await store.close();
  return history;
}
