import type { Clock } from '../../../src/core/clock.js';
import type { HistoryEvent, QuorumMode, QuorumNode } from '../../../src/replication/index.js';
import { createQuorumStore } from '../../../src/replication/index.js';

const fixedClock = (now: number): Clock => ({ now: () => now, sleep: async () => {} });

/**
 * Two writers one after the other, the second with a clock 10 s behind the first, then a read:
 * under last-write-wins the second, acknowledged write loses to the first.
 */
export async function lwwSkewHistory(
  nodes: readonly QuorumNode[],
  mode: QuorumMode = 'lww',
  key = 'skew',
): Promise<HistoryEvent[]> {
  const ahead = createQuorumStore<number>({
    nodes,
    mode,
    writerId: 'ahead',
    clock: fixedClock(2_000_000_000_000),
  });
  const behind = createQuorumStore<number>({
    nodes,
    mode,
    writerId: 'behind',
    clock: fixedClock(1_999_999_990_000),
  });
  const history: HistoryEvent[] = [];
  history.push({ process: 0, type: 'invoke', f: 'write', key, value: 1 });
  await ahead.put(key, 1);
  history.push({ process: 0, type: 'ok', f: 'write', key, value: 1 });
  history.push({ process: 1, type: 'invoke', f: 'write', key, value: 2 });
  await behind.put(key, 2);
  history.push({ process: 1, type: 'ok', f: 'write', key, value: 2 });
  history.push({ process: 2, type: 'invoke', f: 'read', key, value: null });
  const v = await ahead.get(key);
  history.push({ process: 2, type: 'ok', f: 'read', key, value: v ?? null });
  await ahead.close();
  await behind.close();
  return history;
}
