/**
 * Version vectors (vector clocks): per node, how many of its events a version has seen.
 * `compareVersions` tells whether one version happened before another, after it, is the
 * same, or is concurrent with it (a conflict: neither saw the other).
 */
export type VersionVector = Readonly<Record<string, number>>;

export type Causality = 'before' | 'after' | 'equal' | 'concurrent';

/** How `a` relates to `b`: 'before' when every entry of a is <= b's and one is smaller. */
export function compareVersions(a: VersionVector, b: VersionVector): Causality {
  let less = false;
  let greater = false;
  for (const node in a) {
    const x = a[node]!;
    const y = b[node] ?? 0;
    if (x < y) less = true;
    else if (x > y) greater = true;
  }
  for (const node in b) {
    if (node in a) continue;
    if (b[node]! > 0) less = true;
  }
  if (less && greater) return 'concurrent';
  if (less) return 'before';
  if (greater) return 'after';
  return 'equal';
}

/** The least version that has seen both: the entrywise maximum. */
export function mergeVersions(a: VersionVector, b: VersionVector): VersionVector {
  const out: Record<string, number> = { ...a };
  for (const node in b) {
    const y = b[node]!;
    if ((out[node] ?? 0) < y) out[node] = y;
  }
  return out;
}

/** `v` with `node`'s entry advanced by one: the version of a new event on that node. */
export function incrementVersion(v: VersionVector, node: string): VersionVector {
  return { ...v, [node]: (v[node] ?? 0) + 1 };
}

/** True when `a` has seen everything `b` has (a >= b entrywise). */
export function dominates(a: VersionVector, b: VersionVector): boolean {
  const c = compareVersions(a, b);
  return c === 'after' || c === 'equal';
}
