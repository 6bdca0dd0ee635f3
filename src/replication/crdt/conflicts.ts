import { errorMessage } from '../../core/errors.js';
import type { CrdtType } from './crdt.js';
import { compareHlc, type HlcTimestamp, type HybridLogicalClock } from './hlc.js';
import {
  compareVersions,
  incrementVersion,
  mergeVersions,
  type VersionVector,
} from './version-vector.js';

/**
 * Conflict handling behind one interface. A replicated value is a list of versions (usually
 * one; several "siblings" while a conflict is kept). Each version carries a version vector
 * (what it has seen) and an HLC stamp (when it was written). A `ConflictPolicy` decides what
 * happens when a version arrives that is concurrent with the ones held: last writer wins by
 * HLC, keep siblings, an application merge function, or a CRDT join.
 */
export interface Version<V> {
  value: V;
  clock: VersionVector;
  stamp: HlcTimestamp;
}

/**
 * - `applied`: the incoming version replaced what it had seen (no conflict);
 * - `ignored`: it was already seen (a duplicate or an older version);
 * - `resolved`: concurrent versions became one (last writer won, a merge function or CRDT join);
 * - `siblings`: concurrent versions are kept side by side for the application to resolve;
 * - `merge-failed`: the merge function threw: the versions are kept as siblings, nothing lost.
 */
export type ConflictOutcome = 'applied' | 'ignored' | 'resolved' | 'siblings' | 'merge-failed';

export interface Resolution<V> {
  versions: Version<V>[];
  outcome: ConflictOutcome;
  /** For 'resolved', 'siblings' and 'merge-failed': the concurrent values met. */
  conflict?: { values: V[]; policy: string; error?: string };
}

export interface ConflictPolicy<V> {
  readonly name: string;
  /** Combine concurrent versions (two or more, none dominating another). */
  combine(concurrent: Version<V>[]): Omit<Resolution<V>, 'conflict'> & { error?: string };
  /** The values a reader sees from the versions held (default: every version's value). */
  read?(versions: readonly Version<V>[]): V[];
}

/** Add `incoming` to `held` by causality, then let the policy combine what is concurrent. */
export function resolveVersions<V>(
  policy: ConflictPolicy<V>,
  held: readonly Version<V>[],
  incoming: Version<V>,
): Resolution<V> {
  const kept: Version<V>[] = [];
  for (const v of held) {
    const c = compareVersions(incoming.clock, v.clock);
    if (c === 'before' || c === 'equal') return { versions: [...held], outcome: 'ignored' };
    if (c === 'concurrent') kept.push(v);
  }
  if (kept.length === 0) return { versions: [incoming], outcome: 'applied' };
  const concurrent = [...kept, incoming];
  const r = policy.combine(concurrent);
  const conflict: NonNullable<Resolution<V>['conflict']> = {
    values: concurrent.map((v) => v.value),
    policy: policy.name,
  };
  if (r.error !== undefined) conflict.error = r.error;
  return { versions: r.versions, outcome: r.outcome, conflict };
}

function joinClocks<V>(vs: readonly Version<V>[]): VersionVector {
  return vs.reduce<VersionVector>((acc, v) => mergeVersions(acc, v.clock), {});
}

function maxStamp<V>(vs: readonly Version<V>[]): HlcTimestamp {
  return vs.reduce((a, v) => (compareHlc(v.stamp, a) > 0 ? v.stamp : a), vs[0]!.stamp);
}

/** Sorted by stamp, so that every replica lists siblings in the same order. */
function ordered<V>(vs: Version<V>[]): Version<V>[] {
  return vs.sort((a, b) => compareHlc(a.stamp, b.stamp));
}

/**
 * Last writer wins: the version with the greatest HLC stamp; the others are dropped. Safe to
 * collapse because a write made after seeing another carries a greater HLC stamp.
 */
export function lastWriterWins<V>(): ConflictPolicy<V> {
  return {
    name: 'last-writer-wins',
    combine(concurrent) {
      let win = concurrent[0]!;
      for (const v of concurrent) if (compareHlc(v.stamp, win.stamp) > 0) win = v;
      return {
        versions: [{ value: win.value, clock: joinClocks(concurrent), stamp: win.stamp }],
        outcome: 'resolved',
      };
    },
  };
}

/** Keep concurrent versions as siblings (Dynamo, Riak): the next write that saw them resolves. */
export function keepSiblings<V>(): ConflictPolicy<V> {
  return {
    name: 'siblings',
    combine: (concurrent) => ({ versions: ordered([...concurrent]), outcome: 'siblings' }),
  };
}

/**
 * An application merge function: gets the concurrent values (ordered by stamp) and returns one.
 * The versions stay held as siblings and readers see the merged value, so that a later version
 * that supersedes one of them replaces only that one (merging early into a single version would
 * resurrect what it superseded); the next write with the read context collapses them. When the
 * function throws, readers see every sibling and the conflict is reported with the error:
 * nothing is overwritten. The function must be deterministic for replicas to agree.
 */
export function mergeWith<V>(name: string, merge: (values: V[]) => V): ConflictPolicy<V> {
  const attempt = (vs: readonly Version<V>[]) => {
    try {
      return { value: merge(vs.map((v) => v.value)) };
    } catch (err) {
      return { error: errorMessage(err) };
    }
  };
  return {
    name: `merge:${name}`,
    combine(concurrent) {
      const sorted = ordered([...concurrent]);
      const r = attempt(sorted);
      if ('error' in r) return { versions: sorted, outcome: 'merge-failed', error: r.error };
      return { versions: sorted, outcome: 'resolved' };
    },
    read(versions) {
      if (versions.length < 2) return versions.map((v) => v.value);
      const r = attempt(versions);
      return 'error' in r ? versions.map((v) => v.value) : [r.value];
    },
  };
}

/** Values are CRDT states: concurrent versions are joined, which never fails. */
export function crdtJoin<S>(type: CrdtType<S>): ConflictPolicy<S> {
  return {
    name: `crdt:${type.name}`,
    combine(concurrent) {
      const sorted = ordered([...concurrent]);
      const acc = type.create('join');
      for (const v of sorted) acc.merge(v.value);
      return {
        versions: [{ value: acc.state(), clock: joinClocks(sorted), stamp: maxStamp(sorted) }],
        outcome: 'resolved',
      };
    },
  };
}

export interface ReplicatedValueOptions<V> {
  hlc: HybridLogicalClock;
  policy: ConflictPolicy<V>;
  /** Called for every conflict met (resolved, kept as siblings, or a failed merge). */
  onConflict?: (resolution: Resolution<V>) => void;
}

/**
 * One value replicated between nodes, under a conflict policy. `write` makes a version that
 * supersedes the versions the writer read (pass the context `read()` returned; without it, the
 * write supersedes everything held here); `receive` takes a version from another node.
 */
export class ReplicatedValue<V> {
  readonly #o: ReplicatedValueOptions<V>;
  #versions: Version<V>[] = [];

  constructor(options: ReplicatedValueOptions<V>) {
    this.#o = options;
  }

  /** The values held (one, or siblings) and the context a write that resolves them passes. */
  read(): { values: V[]; context: VersionVector } {
    const values = this.#o.policy.read
      ? this.#o.policy.read(this.#versions)
      : this.#versions.map((v) => v.value);
    return { values, context: joinClocks(this.#versions) };
  }

  versions(): Version<V>[] {
    return [...this.#versions];
  }

  /** Write `value` on this node; returns the version to ship to the others. */
  write(value: V, context?: VersionVector): Version<V> {
    const node = this.#o.hlc.node;
    const seen = context ?? joinClocks(this.#versions);
    // A counter above any of this node's seen here, so the version is new; the rest of the
    // clock is what the writer saw: versions it did not see stay concurrent with it.
    const counter = incrementVersion(mergeVersions(seen, joinClocks(this.#versions)), node)[node]!;
    const version: Version<V> = {
      value,
      clock: { ...seen, [node]: counter },
      stamp: this.#o.hlc.now(),
    };
    const r = resolveVersions(this.#o.policy, this.#versions, version);
    this.#versions = r.versions;
    if (r.conflict) this.#o.onConflict?.(r);
    return version;
  }

  /** Take a version from another node. */
  receive(version: Version<V>): Resolution<V> {
    this.#o.hlc.receive(version.stamp);
    const r = resolveVersions(this.#o.policy, this.#versions, version);
    this.#versions = r.versions;
    if (r.conflict) this.#o.onConflict?.(r);
    return r;
  }
}
