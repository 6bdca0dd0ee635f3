import { ValidationError } from '../../core/errors.js';
import { type Crdt, type CrdtType, isRecord, malformed, sortedRecord } from './crdt.js';
import { assertNodeId } from './hlc.js';

/** An event id: the node that made it and that node's counter. */
export type Dot = readonly [node: string, counter: number];

/**
 * What a state has seen (its causal context): a version vector for the contiguous prefix of
 * each node's dots, and the dots seen beyond it (the "dot cloud", left by deltas received out
 * of order), compacted into the vector as gaps fill.
 */
export interface CausalContextState {
  vv: Record<string, number>;
  cloud: Dot[];
}

export interface OrSetState {
  /** Each present element with the dots of the adds that keep it present. */
  entries: Record<string, Dot[]>;
  context: CausalContextState;
}

const byDot = (a: Dot, b: Dot) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] - b[1]);

class CausalContext {
  readonly vv = new Map<string, number>();
  readonly cloud = new Map<string, Set<number>>();

  has(node: string, c: number): boolean {
    return c <= (this.vv.get(node) ?? 0) || (this.cloud.get(node)?.has(c) ?? false);
  }

  /** The next dot of `node` (above every dot of it seen). */
  next(node: string): number {
    let max = this.vv.get(node) ?? 0;
    for (const c of this.cloud.get(node) ?? []) if (c > max) max = c;
    return max + 1;
  }

  /** Record a dot; true when it was not seen before. */
  add(node: string, c: number): boolean {
    const top = this.vv.get(node) ?? 0;
    if (c <= top) return false;
    if (c === top + 1) {
      this.vv.set(node, c);
      this.#compact(node);
      return true;
    }
    let s = this.cloud.get(node);
    if (!s) {
      s = new Set();
      this.cloud.set(node, s);
    }
    if (s.has(c)) return false;
    s.add(c);
    return true;
  }

  /** Join another context into this one; true when this one grew. */
  join(other: CausalContextState): boolean {
    let grew = false;
    for (const node in other.vv) {
      const c = other.vv[node]!;
      if ((this.vv.get(node) ?? 0) < c) {
        this.vv.set(node, c);
        this.#compact(node);
        grew = true;
      }
    }
    for (const [node, c] of other.cloud) if (this.add(node, c)) grew = true;
    return grew;
  }

  #compact(node: string): void {
    const s = this.cloud.get(node);
    if (!s) return;
    let top = this.vv.get(node) ?? 0;
    while (s.delete(top + 1)) top++;
    this.vv.set(node, top);
    for (const c of s) if (c <= top) s.delete(c);
    if (s.size === 0) this.cloud.delete(node);
  }

  state(): CausalContextState {
    const cloud: Dot[] = [];
    for (const [node, s] of this.cloud) for (const c of s) cloud.push([node, c]);
    cloud.sort(byDot);
    return { vv: sortedRecord(this.vv), cloud };
  }
}

/**
 * Observed-remove set, add-wins, without tombstones (the "add-wins set" of delta-state CRDTs):
 * each add is a fresh dot; a remove deletes the dots it observed and records them only in the
 * causal context. Merge keeps a dot that both sides hold, or that one side holds and the other
 * has not seen; so an add concurrent with a remove survives (add wins), and a removed element
 * leaves nothing behind but the context's counters. Elements are strings.
 */
export class OrSet implements Crdt<OrSetState, string[]> {
  readonly type = 'or-set';
  readonly node: string;
  readonly #entries = new Map<string, Dot[]>();
  readonly #ctx = new CausalContext();
  /** node -> counter -> element, for the dots in #entries: a delta's merge touches only them. */
  readonly #index = new Map<string, Map<number, string>>();

  constructor(node: string, state?: OrSetState) {
    assertNodeId(node);
    this.node = node;
    if (state) {
      this.#ctx.join(state.context);
      for (const e in state.entries) this.#set(e, state.entries[e]!.slice());
    }
  }

  #set(e: string, dots: Dot[]): void {
    const old = this.#entries.get(e);
    if (old) for (const [n, c] of old) this.#index.get(n)?.delete(c);
    if (dots.length === 0) {
      this.#entries.delete(e);
      return;
    }
    this.#entries.set(e, dots);
    for (const [n, c] of dots) {
      let m = this.#index.get(n);
      if (!m) {
        m = new Map();
        this.#index.set(n, m);
      }
      m.set(c, e);
    }
  }

  /** Add `element`; returns the delta to ship (the new dot, and the old dots it replaces). */
  add(element: string): OrSetState {
    if (typeof element !== 'string') throw new ValidationError('or-set elements are strings');
    const dot: Dot = [this.node, this.#ctx.next(this.node)];
    const old = this.#entries.get(element) ?? [];
    this.#ctx.add(dot[0], dot[1]);
    this.#set(element, [dot]);
    return { entries: { [element]: [dot] }, context: { vv: {}, cloud: [...old, dot].sort(byDot) } };
  }

  /** Remove `element` (the adds observed here); returns the delta to ship. */
  remove(element: string): OrSetState {
    const old = this.#entries.get(element) ?? [];
    this.#set(element, []);
    return { entries: {}, context: { vv: {}, cloud: [...old].sort(byDot) } };
  }

  has(element: string): boolean {
    return this.#entries.has(element);
  }

  get size(): number {
    return this.#entries.size;
  }

  value(): string[] {
    return [...this.#entries.keys()].sort();
  }

  state(): OrSetState {
    const entries: Record<string, Dot[]> = {};
    for (const [e, dots] of this.#entries) entries[e] = [...dots].sort(byDot);
    return { entries: sortedRecord(entries), context: this.#ctx.state() };
  }

  merge(other: OrSetState): boolean {
    let changed = false;
    const theirs = other.entries;
    const cloud = other.context.cloud;
    const cloudSet = cloud.length > 8 ? new Set(cloud.map(([n, c]) => `${c}:${n}`)) : undefined;
    const seen = (n: string, c: number) =>
      c <= (other.context.vv[n] ?? 0) ||
      (cloudSet ? cloudSet.has(`${c}:${n}`) : cloudHas(cloud, n, c));
    const keepMine = (e: string, dots: Dot[]) => {
      const od = theirs[e];
      const kept = dots.filter(
        ([n, c]) => !seen(n, c) || (od?.some(([m, d]) => m === n && d === c) ?? false),
      );
      if (kept.length !== dots.length) {
        this.#set(e, kept);
        changed = true;
      }
    };
    if (hasKeys(other.context.vv)) {
      for (const [e, dots] of [...this.#entries]) keepMine(e, dots);
    } else {
      // A delta: only the elements holding a dot its context names can lose one.
      const touched = new Set<string>();
      for (const [n, c] of other.context.cloud) {
        const e = this.#index.get(n)?.get(c);
        if (e !== undefined) touched.add(e);
      }
      for (const e of touched) keepMine(e, this.#entries.get(e)!);
    }
    for (const e in theirs) {
      const mine = this.#entries.get(e) ?? [];
      const add = theirs[e]!.filter(
        ([n, c]) => !this.#ctx.has(n, c) && !mine.some(([m, d]) => m === n && d === c),
      );
      if (add.length > 0) {
        this.#set(e, [...mine, ...add]);
        changed = true;
      }
    }
    if (this.#ctx.join(other.context)) changed = true;
    return changed;
  }
}

function hasKeys(o: object): boolean {
  for (const _ in o) return true;
  return false;
}

function cloudHas(cloud: readonly Dot[], n: string, c: number): boolean {
  for (const [m, d] of cloud) if (m === n && d === c) return true;
  return false;
}

function readDot(x: unknown): Dot {
  if (
    !Array.isArray(x) ||
    x.length !== 2 ||
    typeof x[0] !== 'string' ||
    !Number.isSafeInteger(x[1]) ||
    (x[1] as number) < 1
  )
    throw malformed('or-set', 'a dot must be [node, positive integer]');
  return [x[0], x[1] as number];
}

function parseOrSet(state: unknown): OrSetState {
  if (!isRecord(state) || !isRecord(state.entries) || !isRecord(state.context))
    throw malformed('or-set', 'expected { entries, context }');
  const entries: Record<string, Dot[]> = {};
  for (const e in state.entries) {
    const dots = state.entries[e];
    if (!Array.isArray(dots))
      throw malformed('or-set', `entry ${JSON.stringify(e)} must list dots`);
    for (const d of dots) readDot(d);
    entries[e] = dots as Dot[];
  }
  const cloud = state.context.cloud;
  if (!Array.isArray(cloud)) throw malformed('or-set', 'context.cloud must list dots');
  for (const d of cloud) readDot(d);
  const vv = state.context.vv;
  if (!isRecord(vv)) throw malformed('or-set', 'context.vv must be an object of counts');
  for (const k in vv) {
    const c = vv[k];
    if (typeof c !== 'number' || !Number.isSafeInteger(c) || c < 0)
      throw malformed('or-set', `context.vv.${k} must be a non-negative integer`);
  }
  return { entries, context: { vv: vv as Record<string, number>, cloud: cloud as Dot[] } };
}

export const orSetType: CrdtType<OrSetState, string[], OrSet> = {
  name: 'or-set',
  create: (node) => new OrSet(node),
  fromState: (node, state) => new OrSet(node, parseOrSet(state)),
  parse: parseOrSet,
};
