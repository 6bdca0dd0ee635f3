/**
 * Merkle-tree anti-entropy between quorum nodes. Each node digests its key-hash ranges (the
 * leaves); the tree above them is built from the leaves' digests. Two nodes' trees are compared
 * from the root down, descending only into subtrees whose hashes differ; only the differing
 * ranges' keys and stamps are exchanged, and only the newer entries are copied.
 */
import { createHash } from 'node:crypto';
import type { QuorumNode } from './node.js';
import { compareStamps } from './stamp.js';

export interface AntiEntropyReport {
  /** Node pairs compared (pairs with an unreachable node are skipped). */
  readonly pairs: number;
  readonly skippedPairs: number;
  /** Tree nodes whose hashes were compared. */
  readonly hashesCompared: number;
  /** Leaves (key-hash ranges) that differed and whose entries were exchanged. */
  readonly rangesExchanged: number;
  /** Entries copied to a node that lacked them or held an older stamp. */
  readonly keysRepaired: number;
}

/** A Merkle tree over `leaves` digests, as levels from the leaves (0) up to the root. */
export function merkleTree(leafDigests: readonly string[]): string[][] {
  const levels: string[][] = [[...leafDigests]];
  let level = levels[0] as string[];
  while (level.length > 1) {
    const up: string[] = [];
    for (let i = 0; i < level.length; i += 2) {
      const a = level[i] ?? '';
      const b = level[i + 1] ?? '';
      up.push(a === '' && b === '' ? '' : createHash('sha1').update(`${a}|${b}`).digest('hex'));
    }
    levels.push(up);
    level = up;
  }
  return levels;
}

/** The leaves under differing subtrees of two trees of the same shape, and hashes compared. */
export function differingLeaves(
  a: readonly string[][],
  b: readonly string[][],
): { leaves: number[]; compared: number } {
  const top = a.length - 1;
  const leaves: number[] = [];
  let compared = 0;
  const walk = (level: number, index: number) => {
    compared++;
    if (a[level]?.[index] === b[level]?.[index]) return;
    if (level === 0) {
      leaves.push(index);
      return;
    }
    for (const child of [index * 2, index * 2 + 1])
      if (child < (a[level - 1]?.length ?? 0)) walk(level - 1, child);
  };
  walk(top, 0);
  return { leaves, compared };
}

type Call = <T>(node: QuorumNode, f: () => Promise<T>) => Promise<T>;

async function syncPair(
  x: QuorumNode,
  y: QuorumNode,
  call: Call,
): Promise<{ compared: number; ranges: number; repaired: number }> {
  const [dx, dy] = await Promise.all([
    call(x, () => x.rangeDigests()),
    call(y, () => y.rangeDigests()),
  ]);
  const { leaves, compared } = differingLeaves(merkleTree(dx), merkleTree(dy));
  let repaired = 0;
  for (const leaf of leaves) {
    const [sx, sy] = await Promise.all([
      call(x, () => x.rangeStamps(leaf)),
      call(y, () => y.rangeStamps(leaf)),
    ]);
    const copy = async (from: QuorumNode, to: QuorumNode, key: string) => {
      const entry = await call(from, () => from.get(key));
      if (entry && (await call(to, () => to.put(key, entry)))) repaired++;
    };
    for (const [key, stamp] of sx) {
      const other = sy.get(key);
      if (!other || compareStamps(stamp, other) > 0) await copy(x, y, key);
    }
    for (const [key, stamp] of sy) {
      const other = sx.get(key);
      if (!other || compareStamps(stamp, other) > 0) await copy(y, x, key);
    }
  }
  return { compared, ranges: leaves.length, repaired };
}

/** Synchronize every pair of nodes through their Merkle trees. */
export async function synchronizeNodes(
  nodes: readonly QuorumNode[],
  call: Call = (_node, f) => f(),
): Promise<AntiEntropyReport> {
  let pairs = 0;
  let skippedPairs = 0;
  let hashesCompared = 0;
  let rangesExchanged = 0;
  let keysRepaired = 0;
  for (let i = 0; i < nodes.length; i++)
    for (let j = i + 1; j < nodes.length; j++) {
      try {
        const r = await syncPair(nodes[i] as QuorumNode, nodes[j] as QuorumNode, call);
        pairs++;
        hashesCompared += r.compared;
        rangesExchanged += r.ranges;
        keysRepaired += r.repaired;
      } catch {
        skippedPairs++;
      }
    }
  return { pairs, skippedPairs, hashesCompared, rangesExchanged, keysRepaired };
}
