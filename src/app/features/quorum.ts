import { errorMessage } from '../../core/errors.js';
import {
  createQuorumStore,
  type HintedWrite,
  type LinearizabilityResult,
  MemoryQuorumNode,
  type QuorumNode,
  type QuorumStats,
  type VersionedValue,
  type VersionStamp,
} from '../../replication/index.js';
import { quorumNodeDownDemo } from '../demos/quorum-node-down.js';
import type { EngineStatus, PlatformFeature } from '../feature.js';

/** A node the platform can cut off (its calls fail as if it had crashed) and bring back. */
class SwitchableNode implements QuorumNode {
  cut = false;
  constructor(readonly inner: QuorumNode) {}
  get id() {
    return this.inner.id;
  }
  get leaves() {
    return this.inner.leaves;
  }
  #check(): void {
    if (this.cut) throw new Error(`quorum node ${this.inner.id} is stopped`);
  }
  async get(key: string) {
    this.#check();
    return this.inner.get(key);
  }
  async put(key: string, entry: VersionedValue) {
    this.#check();
    return this.inner.put(key, entry);
  }
  async storeHint(target: string, key: string, entry: VersionedValue) {
    this.#check();
    return this.inner.storeHint(target, key, entry);
  }
  async hints(target: string, limit: number): Promise<HintedWrite[]> {
    this.#check();
    return this.inner.hints(target, limit);
  }
  async dropHint(target: string, key: string, stamp: VersionStamp) {
    this.#check();
    return this.inner.dropHint(target, key, stamp);
  }
  async rangeDigests() {
    this.#check();
    return this.inner.rangeDigests();
  }
  async rangeStamps(leaf: number) {
    this.#check();
    return this.inner.rangeStamps(leaf);
  }
  close() {
    return this.inner.close();
  }
}

const EMBEDDED_NODES = 5;

/**
 * The quorum store: N nodes (CDP_QUORUM_URLS: Redis servers; unset: five in-process nodes),
 * R and W a majority, linearizable mode. Hints are delivered every second and anti-entropy runs
 * every 30 s. The demonstration stops a node, runs concurrent clients and checks the history
 * with the linearizability checker; the panel shows the counters and the last verdicts.
 */
export const quorumFeature: PlatformFeature = {
  name: 'quorum',
  description: 'Quorum reads and writes (ABD) over N nodes, hinted handoff, Merkle anti-entropy',
  docs: ['docs/patterns/quorum.md'],
  async start(ctx) {
    const urls = ctx.config.quorumUrls;
    let inner: QuorumNode[];
    if (urls) {
      // Loaded only with CDP_QUORUM_URLS: the Redis entry names `redis` if it is missing.
      const { openQuorumRedisNodes } = await import('./quorum-redis.js');
      inner = await openQuorumRedisNodes(urls);
    } else {
      inner = Array.from(
        { length: EMBEDDED_NODES },
        (_, i) =>
          new MemoryQuorumNode({ id: `in-process-${i + 1}`, latencyMs: () => Math.random() * 2 }),
      );
    }
    const nodes = inner.map((x) => new SwitchableNode(x));
    ctx.lifecycle.defer('quorum nodes', async () => {
      await Promise.all(nodes.map((x) => x.close()));
    });
    const store = createQuorumStore<unknown>({ nodes, mode: 'linearizable' });
    const { r, w } = store.stats();
    const totals = {
      readRepairs: 0,
      hintsStored: 0,
      hintsDelivered: 0,
      antiEntropyRepairs: 0,
      operations: 0,
    };
    const add = (s: QuorumStats) => {
      totals.readRepairs += s.readRepairs;
      totals.hintsStored += s.hintsStored;
      totals.hintsDelivered += s.hintsDelivered;
      totals.antiEntropyRepairs += s.antiEntropyRepairs;
      totals.operations += s.reads + s.writes;
    };
    const verdicts: {
      at: string;
      label: string;
      verdict: string;
      operations: number;
      ms: number;
    }[] = [];
    let antiEntropyTicks = 0;
    const timer = setInterval(() => {
      void (async () => {
        await store.deliverHints().catch(() => 0);
        if (++antiEntropyTicks % 30 === 0) await store.antiEntropy().catch(() => undefined);
      })();
    }, 1000);
    timer.unref();
    ctx.lifecycle.defer('quorum maintenance', async () => {
      clearInterval(timer);
      await store.close();
    });
    const demo = quorumNodeDownDemo({
      nodes,
      r,
      w,
      cut: (i) => {
        const node = nodes[i];
        if (node) node.cut = true;
      },
      heal: (i) => {
        const node = nodes[i];
        if (node) node.cut = false;
      },
      recordStats: add,
      describeNode: (i) => `node ${nodes[i]?.id ?? i}`,
      recordVerdict: (result: LinearizabilityResult, label: string) => {
        verdicts.unshift({
          at: new Date(ctx.clock.now()).toISOString(),
          label,
          verdict: result.verdict,
          operations: result.operations,
          ms: Math.round(result.elapsedMs),
        });
        verdicts.length = Math.min(verdicts.length, 10);
      },
    });
    return {
      service: store,
      demos: [demo],
      health: async (): Promise<EngineStatus[]> => {
        if (!urls) return [];
        return Promise.all(
          inner.map(async (node): Promise<EngineStatus> => {
            const t0 = performance.now();
            try {
              await node.rangeDigests();
              return {
                role: `quorum node ${node.id}`,
                engine: 'redis',
                ok: true,
                latencyMs: Math.round((performance.now() - t0) * 100) / 100,
              };
            } catch (err) {
              return {
                role: `quorum node ${node.id}`,
                engine: 'redis',
                ok: false,
                detail: errorMessage(err),
              };
            }
          }),
        );
      },
      panel: () => {
        const s = store.stats();
        const last = verdicts[0];
        return {
          id: 'quorum',
          title: urls
            ? `Quorum store (${nodes.length} Redis nodes)`
            : `Quorum store (${nodes.length} in-process nodes; set CDP_QUORUM_URLS for Redis nodes)`,
          stats: [
            { label: 'N', value: s.n, hint: 'Nodes that hold every key.' },
            {
              label: 'R',
              value: s.r,
              hint: 'Nodes a read waits for; R + W > N so every read meets the last write.',
            },
            {
              label: 'W',
              value: s.w,
              hint: 'Nodes that must acknowledge a write before it returns.',
            },
            {
              label: 'operations',
              value: totals.operations + s.reads + s.writes,
              hint: 'Reads and writes through the quorum store since start (the demonstration included).',
            },
            {
              label: 'read repairs',
              value: totals.readRepairs + s.readRepairs,
              hint: 'Stale nodes a read brought up to date by writing back the newest value it saw.',
            },
            {
              label: 'hints stored',
              value: totals.hintsStored + s.hintsStored,
              hint: 'Writes a node missed because it was down, kept on another node for it (hinted handoff).',
            },
            {
              label: 'hints delivered',
              value: totals.hintsDelivered + s.hintsDelivered,
              hint: 'Kept writes handed to their node once it answered again.',
            },
            {
              label: 'anti-entropy repairs',
              value: totals.antiEntropyRepairs + s.antiEntropyRepairs,
              hint: 'Keys copied between nodes after comparing their Merkle trees (only differing key ranges are exchanged).',
            },
            {
              label: 'last checker verdict',
              value: last ? `${last.verdict} (${last.label})` : 'none yet',
              hint: 'What the linearizability checker said about the last recorded history (run the demonstration below to record one).',
            },
          ],
          charts: [
            {
              title: 'Repairs',
              stats: ['read repairs', 'hints delivered', 'anti-entropy repairs'],
              hint: 'Rises after a node was down: hints and reads bring it back up to date.',
            },
            {
              title: 'Hints',
              stats: ['hints stored', 'hints delivered'],
              hint: 'Stored while a node is down; delivered within a second of its return.',
            },
          ],
          table: {
            columns: ['checked at', 'history', 'verdict', 'operations', 'ms'],
            rows: verdicts.map((v) => [v.at, v.label, v.verdict, v.operations, v.ms]),
          },
          docs: 'docs/patterns/quorum.md',
        };
      },
    };
  },
};
