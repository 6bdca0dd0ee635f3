/**
 * A quorum store over N nodes, every key on every node. Two modes:
 * - 'linearizable' (ABD): a write first reads the highest stamp from R nodes and writes a
 *   higher one to W nodes; a read takes the newest of R replies and writes it back to W nodes
 *   before returning, so no later read can return an older value.
 * - 'lww' (last write wins, R + W > N): a write stamps the writer's clock and writes to W
 *   nodes; a read returns the newest of R replies and repairs stale nodes in the background.
 *   Not linearizable: a writer whose clock lags loses an acknowledged write, and a read that
 *   races a partial write can see it before a later read does not.
 * Writes go to every node; a node that fails gets a hint stored on a node that took the write,
 * delivered when it is back (deliverHints). antiEntropy() compares nodes' Merkle trees.
 */
import { type Clock, systemClock } from '../../core/clock.js';
import { ClosedError, errorMessage, ValidationError } from '../../core/errors.js';
import { type AntiEntropyReport, synchronizeNodes } from './anti-entropy.js';
import type { QuorumNode } from './node.js';
import {
  checkWriterId,
  compareStamps,
  QuorumUnavailableError,
  type VersionedValue,
  type VersionStamp,
} from './stamp.js';

export type QuorumMode = 'linearizable' | 'lww';

export interface QuorumStoreOptions {
  readonly nodes: readonly QuorumNode[];
  /** Replies a read waits for. Default: a majority. */
  readonly r?: number;
  /** Acknowledgements a write waits for. Default: a majority. */
  readonly w?: number;
  readonly mode?: QuorumMode;
  /** This coordinator's id in stamps (ties between equal counters). Default: random. */
  readonly writerId?: string;
  /** The clock of last-write-wins stamps. */
  readonly clock?: Clock;
  /** A node call that takes longer counts as failed. Default 1000 ms. */
  readonly nodeTimeoutMs?: number;
}

export interface QuorumStats {
  readonly n: number;
  readonly r: number;
  readonly w: number;
  readonly mode: QuorumMode;
  readonly reads: number;
  readonly writes: number;
  readonly failedReads: number;
  readonly failedWrites: number;
  /** Stale nodes a read brought up to date (write-back or background repair). */
  readonly readRepairs: number;
  readonly hintsStored: number;
  readonly hintsDelivered: number;
  /** Writes to a failed node for which no node could keep a hint. */
  readonly hintsDropped: number;
  readonly antiEntropyRuns: number;
  readonly antiEntropyRepairs: number;
}

export interface QuorumStore<V = unknown> {
  readonly mode: QuorumMode;
  readonly nodes: readonly QuorumNode[];
  /** The value of `key`, or undefined when it was never written. */
  get(key: string): Promise<V | undefined>;
  put(key: string, value: V): Promise<void>;
  /** Deliver stored hints to nodes that answer again; the number delivered. */
  deliverHints(): Promise<number>;
  /** Compare every pair of nodes' Merkle trees and copy newer entries across differing ranges. */
  antiEntropy(): Promise<AntiEntropyReport>;
  stats(): QuorumStats;
  /** Wait for background writes and repairs; the nodes stay open (their owner closes them). */
  close(): Promise<void>;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

function positiveInt(name: string, v: number, max: number): number {
  if (!Number.isInteger(v) || v < 1 || v > max)
    throw new ValidationError(`${name} must be an integer from 1 to N = ${max}; got ${v}`);
  return v;
}

export function createQuorumStore<V = unknown>(options: QuorumStoreOptions): QuorumStore<V> {
  const nodes = options.nodes;
  const n = nodes.length;
  if (n < 1) throw new ValidationError('a quorum store needs at least one node');
  const ids = new Set(nodes.map((x) => x.id));
  if (ids.size !== n) throw new ValidationError('quorum node ids must be distinct');
  const leaves = nodes[0]?.leaves ?? 0;
  if (nodes.some((x) => x.leaves !== leaves))
    throw new ValidationError('every quorum node must use the same number of Merkle leaves');
  const majority = Math.floor(n / 2) + 1;
  const r = positiveInt('R', options.r ?? majority, n);
  const w = positiveInt('W', options.w ?? majority, n);
  const mode = options.mode ?? 'linearizable';
  if (r + w <= n)
    throw new ValidationError(
      `R + W must exceed N for reads to meet the last write (R=${r}, W=${w}, N=${n}); raise R or W`,
    );
  const writer = checkWriterId(options.writerId ?? Math.random().toString(36).slice(2, 10));
  const clock = options.clock ?? systemClock;
  const timeoutMs = options.nodeTimeoutMs ?? 1000;
  const stats: Mutable<QuorumStats> = {
    n,
    r,
    w,
    mode,
    reads: 0,
    writes: 0,
    failedReads: 0,
    failedWrites: 0,
    readRepairs: 0,
    hintsStored: 0,
    hintsDelivered: 0,
    hintsDropped: 0,
    antiEntropyRuns: 0,
    antiEntropyRepairs: 0,
  };
  const background = new Set<Promise<unknown>>();
  let seq = 0;
  let closed = false;

  const track = (p: Promise<unknown>) => {
    const q = p.catch(() => {}).finally(() => background.delete(q));
    background.add(q);
  };

  function call<T>(node: QuorumNode, f: () => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      f(),
      new Promise<T>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`quorum node ${node.id} did not answer within ${timeoutMs} ms`)),
          timeoutMs,
        );
      }),
    ]).finally(() => clearTimeout(timer));
  }

  /** Run f on every node; resolve once `need` succeeded, reject once that became impossible. */
  function quorum<T>(
    need: number,
    f: (node: QuorumNode) => Promise<T>,
    what: string,
    mayHaveApplied: boolean,
  ): { done: Promise<{ node: QuorumNode; result: T }[]>; all: Promise<PromiseSettledResult<T>[]> } {
    const ok: { node: QuorumNode; result: T }[] = [];
    const errors: string[] = [];
    let resolve!: (v: { node: QuorumNode; result: T }[]) => void;
    let reject!: (e: Error) => void;
    const done = new Promise<{ node: QuorumNode; result: T }[]>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const all = Promise.allSettled(
      nodes.map((node) =>
        call(node, () => f(node)).then(
          (result) => {
            ok.push({ node, result });
            if (ok.length === need) resolve([...ok]);
            return result;
          },
          (err: unknown) => {
            errors.push(`${node.id}: ${errorMessage(err)}`);
            if (errors.length === n - need + 1)
              reject(
                new QuorumUnavailableError(
                  `${what}: ${need} of ${n} nodes must answer, ${errors.length} failed (${errors.join('; ')})`,
                  mayHaveApplied,
                ),
              );
            throw err;
          },
        ),
      ),
    );
    return { done, all };
  }

  async function readPhase(key: string) {
    const replies = await quorum(r, (node) => node.get(key), `read of ${key}`, false).done;
    let newest: VersionedValue | undefined;
    for (const { result } of replies)
      if (result && (!newest || compareStamps(result.stamp, newest.stamp) > 0)) newest = result;
    return { replies, newest };
  }

  /** Write to every node; resolve after W acknowledgements; hint the nodes that fail. */
  async function writePhase(key: string, entry: VersionedValue, what: string): Promise<number> {
    const attempt = quorum(w, (node) => node.put(key, entry), what, true);
    track(
      attempt.all.then(async (settled) => {
        const failed = nodes.filter((_, i) => settled[i]?.status === 'rejected');
        const holders = nodes.filter((_, i) => settled[i]?.status === 'fulfilled');
        for (const target of failed) {
          let stored = false;
          for (const holder of holders) {
            try {
              await call(holder, () => holder.storeHint(target.id, key, entry));
              stats.hintsStored++;
              stored = true;
              break;
            } catch {
              // try the next node that took the write
            }
          }
          if (!stored) stats.hintsDropped++;
        }
      }),
    );
    const acks = await attempt.done;
    return acks.filter((a) => a.result).length;
  }

  function check(): void {
    if (closed) throw new ClosedError('quorum store');
  }

  async function get(key: string): Promise<V | undefined> {
    check();
    try {
      const { replies, newest } = await readPhase(key);
      stats.reads++;
      if (!newest) return undefined;
      const stale = replies.filter(
        ({ result }) => !result || compareStamps(result.stamp, newest.stamp) < 0,
      );
      if (mode === 'linearizable') {
        // Write-back (ABD): unless R replies already agree and any two R sets meet, the newest
        // value must reach W nodes before the read returns it.
        if (stale.length > 0 || 2 * r <= n)
          stats.readRepairs += await writePhase(key, newest, `write-back of ${key}`);
      } else if (stale.length > 0) {
        for (const { node } of stale)
          track(
            call(node, () => node.put(key, newest)).then((applied) => {
              if (applied) stats.readRepairs++;
            }),
          );
      }
      return JSON.parse(newest.value) as V;
    } catch (err) {
      stats.failedReads++;
      throw err;
    }
  }

  async function put(key: string, value: V): Promise<void> {
    check();
    const text = JSON.stringify(value);
    if (text === undefined) throw new ValidationError(`the value for ${key} is not JSON`);
    const opWriter = `${writer}.${(seq++).toString(36)}`;
    try {
      let stamp: VersionStamp;
      if (mode === 'linearizable') {
        const { newest } = await readPhase(key);
        stamp = { counter: (newest?.stamp.counter ?? 0) + 1, writer: opWriter };
      } else {
        stamp = { counter: Math.floor(clock.now()), writer: opWriter };
      }
      await writePhase(key, { stamp, value: text }, `write of ${key}`);
      stats.writes++;
    } catch (err) {
      stats.failedWrites++;
      throw err;
    }
  }

  async function deliverHints(): Promise<number> {
    check();
    let delivered = 0;
    for (const holder of nodes)
      for (const target of nodes) {
        if (holder === target) continue;
        let batch: Awaited<ReturnType<QuorumNode['hints']>>;
        try {
          batch = await call(holder, () => holder.hints(target.id, 500));
        } catch {
          continue;
        }
        for (const h of batch) {
          try {
            await call(target, () => target.put(h.key, h.entry));
            await call(holder, () => holder.dropHint(target.id, h.key, h.entry.stamp));
            delivered++;
          } catch {
            break; // the target is still down; try again later
          }
        }
      }
    stats.hintsDelivered += delivered;
    return delivered;
  }

  async function antiEntropy(): Promise<AntiEntropyReport> {
    check();
    const report = await synchronizeNodes(nodes, (node, f) => call(node, f));
    stats.antiEntropyRuns++;
    stats.antiEntropyRepairs += report.keysRepaired;
    return report;
  }

  return {
    mode,
    nodes,
    get,
    put,
    deliverHints,
    antiEntropy,
    stats: () => ({ ...stats }),
    async close() {
      closed = true;
      while (background.size > 0) await Promise.all([...background]);
    },
  };
}
