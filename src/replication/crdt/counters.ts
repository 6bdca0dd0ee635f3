import { ValidationError } from '../../core/errors.js';
import { type Crdt, type CrdtType, isRecord, malformed, readCounts, sortedRecord } from './crdt.js';
import { assertNodeId } from './hlc.js';

export interface GCounterState {
  counts: Record<string, number>;
}

/** Grow-only counter: one count per node; the value is their sum; merge takes each maximum. */
export class GCounter implements Crdt<GCounterState, number> {
  readonly type = 'g-counter';
  readonly node: string;
  readonly #counts: Map<string, number>;

  constructor(node: string, counts: Map<string, number> = new Map()) {
    assertNodeId(node);
    this.node = node;
    this.#counts = counts;
  }

  /** Add `by` (a positive integer, default 1); returns the delta to ship. */
  increment(by = 1): GCounterState {
    if (!Number.isSafeInteger(by) || by <= 0)
      throw new ValidationError(`a g-counter grows by a positive integer, not ${by}`);
    const n = (this.#counts.get(this.node) ?? 0) + by;
    this.#counts.set(this.node, n);
    return { counts: { [this.node]: n } };
  }

  value(): number {
    let sum = 0;
    for (const n of this.#counts.values()) sum += n;
    return sum;
  }

  state(): GCounterState {
    return { counts: sortedRecord(this.#counts) };
  }

  merge(other: GCounterState): boolean {
    let changed = false;
    for (const node in other.counts) {
      const n = other.counts[node]!;
      if ((this.#counts.get(node) ?? 0) < n) {
        this.#counts.set(node, n);
        changed = true;
      }
    }
    return changed;
  }
}

export const gCounterType: CrdtType<GCounterState, number, GCounter> = {
  name: 'g-counter',
  create: (node) => new GCounter(node),
  fromState(node, state) {
    if (!isRecord(state)) throw malformed('g-counter', 'expected { counts }');
    return new GCounter(node, readCounts('g-counter', state.counts, 'counts'));
  },
  parse(state) {
    if (!isRecord(state)) throw malformed('g-counter', 'expected { counts }');
    return { counts: Object.fromEntries(readCounts('g-counter', state.counts, 'counts')) };
  },
};

export interface PNCounterState {
  p: Record<string, number>;
  n: Record<string, number>;
}

/** Counter that goes up and down: two grow-only counters, increments and decrements. */
export class PNCounter implements Crdt<PNCounterState, number> {
  readonly type = 'pn-counter';
  readonly node: string;
  readonly #p: GCounter;
  readonly #n: GCounter;

  constructor(node: string, p?: Map<string, number>, n?: Map<string, number>) {
    this.node = node;
    this.#p = new GCounter(node, p);
    this.#n = new GCounter(node, n);
  }

  /** Add `by` (a non-zero integer; negative decrements); returns the delta to ship. */
  add(by: number): PNCounterState {
    if (!Number.isSafeInteger(by) || by === 0)
      throw new ValidationError(`a pn-counter changes by a non-zero integer, not ${by}`);
    if (by > 0) return { p: this.#p.increment(by).counts, n: {} };
    return { p: {}, n: this.#n.increment(-by).counts };
  }

  increment(by = 1): PNCounterState {
    return this.add(by);
  }

  decrement(by = 1): PNCounterState {
    return this.add(-by);
  }

  value(): number {
    return this.#p.value() - this.#n.value();
  }

  state(): PNCounterState {
    return { p: this.#p.state().counts, n: this.#n.state().counts };
  }

  merge(other: PNCounterState): boolean {
    const a = this.#p.merge({ counts: other.p });
    const b = this.#n.merge({ counts: other.n });
    return a || b;
  }
}

export const pnCounterType: CrdtType<PNCounterState, number, PNCounter> = {
  name: 'pn-counter',
  create: (node) => new PNCounter(node),
  fromState(node, state) {
    if (!isRecord(state)) throw malformed('pn-counter', 'expected { p, n }');
    return new PNCounter(
      node,
      readCounts('pn-counter', state.p, 'p'),
      readCounts('pn-counter', state.n, 'n'),
    );
  },
  parse(state) {
    if (!isRecord(state)) throw malformed('pn-counter', 'expected { p, n }');
    return {
      p: Object.fromEntries(readCounts('pn-counter', state.p, 'p')),
      n: Object.fromEntries(readCounts('pn-counter', state.n, 'n')),
    };
  },
};
