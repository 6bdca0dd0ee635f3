/**
 * A quorum store's node: one replica of every key, with conditional writes (a stamp never
 * overwrites a newer one), hints held for other nodes, and per-range digests for anti-entropy.
 * The Redis node (cloud-data-patterns/replication/redis) is the real one; the in-process node
 * serves the embedded default and unit tests, and can be taken down and brought back.
 */
import { ClosedError, EngineUnavailableError } from '../../core/errors.js';
import {
  compareStamps,
  formatStamp,
  leafOf,
  rangeDigest,
  type VersionedValue,
  type VersionStamp,
} from './stamp.js';

/** A hint: a write meant for another node, kept until that node is back. */
export interface HintedWrite {
  readonly key: string;
  readonly entry: VersionedValue;
}

export interface QuorumNode {
  readonly id: string;
  /** How many key-hash ranges (Merkle leaves) the node keeps digests for. */
  readonly leaves: number;
  get(key: string): Promise<VersionedValue | undefined>;
  /** Store `entry` unless the node holds a newer or equal stamp; true when it was stored. */
  put(key: string, entry: VersionedValue): Promise<boolean>;
  /** Keep a write for the node `target` (the newest per key). */
  storeHint(target: string, key: string, entry: VersionedValue): Promise<void>;
  hints(target: string, limit: number): Promise<HintedWrite[]>;
  /** Forget a delivered hint, unless a newer one replaced it meanwhile. */
  dropHint(target: string, key: string, stamp: VersionStamp): Promise<void>;
  /** The digest of every range (see rangeDigest), leaf 0 first. */
  rangeDigests(): Promise<string[]>;
  /** The keys of one range with their stamps. */
  rangeStamps(leaf: number): Promise<Map<string, VersionStamp>>;
  close(): Promise<void>;
}

export interface MemoryQuorumNodeOptions {
  readonly id: string;
  /** Key-hash ranges for anti-entropy. Default 64. */
  readonly leaves?: number;
  /**
   * Milliseconds a call waits before it runs (simulated network latency), by method name
   * ('get', 'put', 'storeHint', ...). Default none.
   */
  readonly latencyMs?: (method: string) => number;
}

/** An in-process node. `down()` makes every call fail as a crashed node would, `up()` revives it. */
export class MemoryQuorumNode implements QuorumNode {
  readonly id: string;
  readonly leaves: number;
  readonly #data = new Map<string, VersionedValue>();
  readonly #hints = new Map<string, Map<string, VersionedValue>>();
  readonly #latencyMs: ((method: string) => number) | undefined;
  #down = false;
  #closed = false;

  constructor(options: MemoryQuorumNodeOptions) {
    this.id = options.id;
    this.leaves = options.leaves ?? 64;
    this.#latencyMs = options.latencyMs;
  }

  /** Fail every call until up(); the stored data survives (a durable node that crashed). */
  down(): void {
    this.#down = true;
  }

  up(): void {
    this.#down = false;
  }

  get isDown(): boolean {
    return this.#down;
  }

  /** Forget one key without trace (a node that missed writes), for tests of anti-entropy. */
  forget(key: string): void {
    this.#data.delete(key);
  }

  async #check(method: string): Promise<void> {
    const ms = this.#latencyMs?.(method) ?? 0;
    if (ms > 0) await new Promise((resolve) => setTimeout(resolve, ms));
    if (this.#closed) throw new ClosedError(`quorum node ${this.id}`);
    if (this.#down)
      throw new EngineUnavailableError('quorum-node', `quorum node ${this.id} is down`);
  }

  async get(key: string): Promise<VersionedValue | undefined> {
    await this.#check('get');
    return this.#data.get(key);
  }

  async put(key: string, entry: VersionedValue): Promise<boolean> {
    await this.#check('put');
    const cur = this.#data.get(key);
    if (cur && compareStamps(cur.stamp, entry.stamp) >= 0) return false;
    this.#data.set(key, entry);
    return true;
  }

  async storeHint(target: string, key: string, entry: VersionedValue): Promise<void> {
    await this.#check('storeHint');
    let m = this.#hints.get(target);
    if (!m) {
      m = new Map();
      this.#hints.set(target, m);
    }
    const cur = m.get(key);
    if (!cur || compareStamps(cur.stamp, entry.stamp) < 0) m.set(key, entry);
  }

  async hints(target: string, limit: number): Promise<HintedWrite[]> {
    await this.#check('hints');
    const out: HintedWrite[] = [];
    for (const [key, entry] of this.#hints.get(target) ?? []) {
      if (out.length >= limit) break;
      out.push({ key, entry });
    }
    return out;
  }

  async dropHint(target: string, key: string, stamp: VersionStamp): Promise<void> {
    await this.#check('dropHint');
    const m = this.#hints.get(target);
    const cur = m?.get(key);
    if (m && cur && compareStamps(cur.stamp, stamp) === 0) m.delete(key);
  }

  async rangeDigests(): Promise<string[]> {
    await this.#check('rangeDigests');
    const ranges: [string, string][][] = Array.from({ length: this.leaves }, () => []);
    for (const [key, e] of this.#data)
      ranges[leafOf(key, this.leaves)]?.push([key, formatStamp(e.stamp)]);
    return ranges.map((r) => rangeDigest(r));
  }

  async rangeStamps(leaf: number): Promise<Map<string, VersionStamp>> {
    await this.#check('rangeStamps');
    const out = new Map<string, VersionStamp>();
    for (const [key, e] of this.#data) if (leafOf(key, this.leaves) === leaf) out.set(key, e.stamp);
    return out;
  }

  async close(): Promise<void> {
    this.#closed = true;
  }
}
