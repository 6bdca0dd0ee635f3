import { randomUUID } from 'node:crypto';
import {
  checkLinearizability,
  createQuorumStore,
  kvModel,
  type LinearizabilityResult,
  type QuorumNode,
  type QuorumStats,
  runClockSkewHistory,
  runQuorumWorkload,
} from '../../replication/index.js';
import type { Demo } from '../feature.js';

/** What the quorum feature hands the demonstration. */
export interface QuorumDemoTarget {
  readonly nodes: readonly QuorumNode[];
  readonly r: number;
  readonly w: number;
  /** Make one node unreachable for the store (its calls fail) until `heal`. */
  cut(index: number): void;
  heal(index: number): void;
  describeNode(index: number): string;
  /** The counters of the demonstration's own stores, once they closed. */
  recordStats(stats: QuorumStats): void;
  recordVerdict(result: LinearizabilityResult, label: string): void;
}

const OPERATIONS = 2000;

/**
 * Concurrent clients against the quorum store with one node stopped, in the linearizable (ABD)
 * mode; the checker verifies the recorded history. Then two writers whose clocks disagree by
 * 10 s write in turn in last-write-wins mode: the checker finds the acknowledged write that
 * was lost. Acts only on keys of its own.
 */
export function quorumNodeDownDemo(target: QuorumDemoTarget): Demo {
  return {
    id: 'quorum-node-down',
    title: 'Quorum reads and writes with a node down, checked for linearizability',
    description:
      'Stops one of the quorum store nodes, runs 2,000 reads and writes from 8 concurrent clients in the linearizable mode (read phase plus write-back), brings the node back, delivers the hinted writes and runs anti-entropy, then hands the recorded history to the linearizability checker. Last, two writers with clocks 10 s apart write in turn under plain last-write-wins: the checker shows that a read misses the second, acknowledged write.',
    feature: 'quorum',
    async run() {
      const run = randomUUID().slice(0, 8);
      const { nodes, r, w } = target;
      const victim = Math.floor(Math.random() * nodes.length);
      const store = createQuorumStore<number>({ nodes, r, w, mode: 'linearizable' });
      target.cut(victim);
      let workload: Awaited<ReturnType<typeof runQuorumWorkload>>;
      try {
        workload = await runQuorumWorkload({
          store,
          clients: 8,
          operations: OPERATIONS,
          keys: 4,
          keyPrefix: `demo-${run}-k`,
        });
      } finally {
        target.heal(victim);
      }
      const delivered = await store.deliverHints();
      const repair = await store.antiEntropy();
      await store.close();
      const stats = store.stats();
      target.recordStats(stats);
      const verdict = checkLinearizability(workload.history, kvModel, { timeoutMs: 20_000 });
      target.recordVerdict(verdict, 'linearizable mode, node down');

      const key = `demo-${run}-skew`;
      const { history, stats: writers } = await runClockSkewHistory({
        nodes,
        r,
        w,
        key,
        now: Date.now(),
      });
      for (const s of writers) target.recordStats(s);
      const read = history.at(-1)?.value;
      const lww = checkLinearizability(history, kvModel);
      target.recordVerdict(lww, 'last-write-wins, clocks 10 s apart');

      const ok = verdict.verdict === 'linearizable' && lww.verdict === 'not-linearizable';
      return {
        ok,
        summary: ok
          ? `With ${target.describeNode(victim)} down, ${workload.ok} of ${OPERATIONS} operations succeeded and the checker found the history linearizable; plain last-write-wins lost an acknowledged write and the checker said so.`
          : `checker verdicts: linearizable mode ${verdict.verdict}, last-write-wins ${lww.verdict}.`,
        figures: [
          { label: 'operations', value: OPERATIONS },
          { label: 'succeeded', value: workload.ok },
          { label: 'failed or unknown', value: workload.failed + workload.indeterminate },
          { label: 'time', value: Math.round(workload.elapsedMs), unit: 'ms' },
          { label: 'hints stored', value: stats.hintsStored },
          { label: 'hints delivered', value: delivered },
          { label: 'anti-entropy repairs', value: repair.keysRepaired },
          { label: 'checker (ABD)', value: verdict.verdict },
          { label: 'checker (LWW)', value: lww.verdict },
        ],
        steps: [
          `stopped ${target.describeNode(victim)} (N=${nodes.length}, R=${r}, W=${w})`,
          `8 clients ran ${OPERATIONS} reads and writes on 4 keys of their own; writes to the stopped node became ${stats.hintsStored} hints on other nodes`,
          `brought the node back: ${delivered} hints delivered, anti-entropy compared ${repair.hashesCompared} tree hashes and repaired ${repair.keysRepaired} keys`,
          `checker on ${verdict.operations} operations: ${verdict.verdict} (${Math.round(verdict.elapsedMs)} ms)`,
          `last-write-wins: write(1) by a writer whose clock is ahead, then write(2) by one 10 s behind, then read() -> ${read ?? 'nil'}`,
          `checker: ${lww.verdict}${lww.violation ? ` — ${kvModel.describe?.(lww.violation.unplaced) ?? 'a read'} cannot be placed after write(2) returned` : ''}`,
        ],
      };
    },
  };
}
