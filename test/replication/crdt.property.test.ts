import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { GCounter, PNCounter } from '../../src/replication/crdt/counters.js';
import { HybridLogicalClock } from '../../src/replication/crdt/hlc.js';
import { OrSet } from '../../src/replication/crdt/or-set.js';
import { LwwMap, LwwRegister } from '../../src/replication/crdt/registers.js';

/**
 * Convergence of the CRDTs under any delivery: three replicas make updates; a schedule
 * interleaves them with deliveries of any delta to any replica (duplicated, reordered, or
 * never: lost) and state syncs between replicas; at the end every delta reaches every replica
 * once more in a shuffled order (the anti-entropy). Every replica must then hold the same
 * state, and the value a reference model gives.
 */

const REPLICAS = ['a', 'b', 'c'] as const;
const RUNS = 10_000;

type Step =
  | { kind: 'op'; at: number; op: number; arg: number }
  | { kind: 'deliver'; delta: number; to: number }
  | { kind: 'sync'; from: number; to: number };

const step = fc.oneof(
  fc.record({
    kind: fc.constant('op' as const),
    at: fc.nat(2),
    op: fc.nat(1),
    arg: fc.nat(4),
  }),
  fc.record({ kind: fc.constant('deliver' as const), delta: fc.nat(40), to: fc.nat(2) }),
  fc.record({ kind: fc.constant('sync' as const), from: fc.nat(2), to: fc.nat(2) }),
);

interface Harness<C> {
  make(node: string, clock: ManualClock): C;
  op(c: C, op: number, arg: number): unknown;
  state(c: C): unknown;
  merge(c: C, s: unknown): void;
}

function converges<C>(h: Harness<C>, steps: Step[], order: number[]): C[] {
  const clock = new ManualClock(1000);
  const rs = REPLICAS.map((n) => h.make(n, clock));
  const deltas: unknown[] = [];
  for (const s of steps) {
    clock.advance(s.kind === 'op' ? s.arg % 2 : 0);
    if (s.kind === 'op') deltas.push(h.op(rs[s.at]!, s.op, s.arg));
    else if (s.kind === 'deliver' && deltas.length > 0)
      h.merge(rs[s.to]!, deltas[s.delta % deltas.length]);
    else if (s.kind === 'sync') h.merge(rs[s.to]!, h.state(rs[s.from]!));
  }
  // Every delta once more to every replica, each replica in its own shuffled order.
  for (let r = 0; r < rs.length; r++) {
    const seed = order[r % order.length]! + r * 41;
    const perm = deltas
      .map((_, i) => i)
      .sort((x, y) => (((x + 1) * (seed + 7919)) % 104729) - (((y + 1) * (seed + 7919)) % 104729));
    for (const i of perm) h.merge(rs[r]!, deltas[i]);
  }
  const first = JSON.stringify(h.state(rs[0]!));
  for (const r of rs) expect(JSON.stringify(h.state(r))).toBe(first);
  return rs;
}

const schedule = fc.tuple(
  fc.array(step, { maxLength: 24 }),
  fc.array(fc.nat(40), { minLength: 1, maxLength: 12 }),
);

describe('CRDT convergence (10,000 random schedules each)', () => {
  it('G-Counter: every replica holds the sum of all increments', () => {
    fc.assert(
      fc.property(schedule, ([steps, order]) => {
        const rs = converges<GCounter>(
          {
            make: (n) => new GCounter(n),
            op: (c, _op, arg) => c.increment(arg + 1),
            state: (c) => c.state(),
            merge: (c, s) => c.merge(s as never),
          },
          steps,
          order,
        );
        const total = steps.reduce((a, s) => a + (s.kind === 'op' ? s.arg + 1 : 0), 0);
        expect(rs[0]!.value()).toBe(total);
      }),
      { numRuns: RUNS },
    );
  });

  it('PN-Counter: every replica holds increments minus decrements', () => {
    fc.assert(
      fc.property(schedule, ([steps, order]) => {
        const rs = converges<PNCounter>(
          {
            make: (n) => new PNCounter(n),
            op: (c, op, arg) => c.add(op === 0 ? arg + 1 : -(arg + 1)),
            state: (c) => c.state(),
            merge: (c, s) => c.merge(s as never),
          },
          steps,
          order,
        );
        const total = steps.reduce(
          (a, s) => a + (s.kind === 'op' ? (s.op === 0 ? s.arg + 1 : -(s.arg + 1)) : 0),
          0,
        );
        expect(rs[0]!.value()).toBe(total);
      }),
      { numRuns: RUNS },
    );
  });

  it('OR-Set: replicas converge; an element is present iff one of its adds was not observed by a remove', () => {
    fc.assert(
      fc.property(schedule, ([steps, order]) => {
        // Reference: every add is a unique dot; a remove (or a re-add) on a replica observes
        // the dots that replica holds for the element then. Add wins: what was not observed stays.
        const added = new Map<string, string>();
        const observed = new Set<string>();
        const rs = converges<OrSet>(
          {
            make: (n) => new OrSet(n),
            op: (c, op, arg) => {
              const e = `e${arg}`;
              for (const d of c.state().entries[e] ?? []) observed.add(d.join(':'));
              if (op === 1) return c.remove(e);
              const delta = c.add(e);
              added.set(delta.entries[e]![0]!.join(':'), e);
              return delta;
            },
            state: (c) => c.state(),
            merge: (c, s) => c.merge(s as never),
          },
          steps,
          order,
        );
        const expected = new Set<string>();
        for (const [dot, e] of added) if (!observed.has(dot)) expected.add(e);
        expect(rs[0]!.value()).toEqual([...expected].sort());
      }),
      { numRuns: RUNS },
    );
  });

  it('OR-Set on one replica behaves as a set', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.nat(5)), { maxLength: 30 }), (ops) => {
        const s = new OrSet('a');
        const model = new Set<string>();
        for (const [add, n] of ops) {
          if (add) {
            s.add(`e${n}`);
            model.add(`e${n}`);
          } else {
            s.remove(`e${n}`);
            model.delete(`e${n}`);
          }
        }
        expect(s.value()).toEqual([...model].sort());
      }),
      { numRuns: 1000 },
    );
  });

  it('LWW-Map: replicas converge on the value of the greatest stamp per key', () => {
    fc.assert(
      fc.property(schedule, ([steps, order]) => {
        const hlcs = new Map<LwwMap, HybridLogicalClock>();
        const last = new Map<string, { wall: number; logical: number; node: string; v: unknown }>();
        const rs = converges<LwwMap>(
          {
            make: (n, clock) => {
              const m = new LwwMap();
              hlcs.set(m, new HybridLogicalClock({ node: n, clock }));
              return m;
            },
            op: (c, op, arg) => {
              const k = `k${arg % 3}`;
              const d = op === 0 ? c.set(k, arg, hlcs.get(c)!) : c.delete(k, hlcs.get(c)!);
              const e = d.entries[k]!;
              const prev = last.get(k);
              const s = e.stamp;
              if (
                !prev ||
                s.wall > prev.wall ||
                (s.wall === prev.wall &&
                  (s.logical > prev.logical || (s.logical === prev.logical && s.node > prev.node)))
              )
                last.set(k, { ...s, v: e.deleted ? undefined : e.value });
              return d;
            },
            state: (c) => c.state(),
            merge: (c, s) => c.merge(s as never),
          },
          steps,
          order,
        );
        const expected: Record<string, unknown> = {};
        for (const [k, e] of [...last].sort()) if (e.v !== undefined) expected[k] = e.v;
        expect(rs[0]!.value()).toEqual(expected);
      }),
      { numRuns: RUNS },
    );
  });
});

describe('CRDT semantics', () => {
  it('OR-Set: an add concurrent with a remove wins; a remove of an observed add removes it', () => {
    const a = new OrSet('a');
    const b = new OrSet('b');
    b.merge(a.add('x'));
    const rm = b.remove('x');
    const add = a.add('x'); // concurrent with b's remove
    a.merge(rm);
    b.merge(add);
    expect(a.value()).toEqual(['x']);
    expect(b.value()).toEqual(['x']);
    a.merge(b.remove('x'));
    expect(a.value()).toEqual([]);
    expect(a.state().entries).toEqual({});
  });

  it('OR-Set: a removed element leaves no tombstone, only context counters', () => {
    const a = new OrSet('a');
    for (let i = 0; i < 100; i++) {
      a.add(`e${i}`);
      a.remove(`e${i}`);
    }
    expect(a.state()).toEqual({ entries: {}, context: { vv: { a: 100 }, cloud: [] } });
  });

  it('LWW-Register by HLC: a write made after seeing another wins even when its wall clock is behind', () => {
    const fast = new ManualClock(10_000);
    const slow = new ManualClock(5_000);
    const hf = new HybridLogicalClock({ node: 'fast', clock: fast });
    const hs = new HybridLogicalClock({ node: 'slow', clock: slow });
    const rf = new LwwRegister<string>();
    const rs = new LwwRegister<string>();
    const first = rf.set('first', hf);
    hs.receive(first.stamp!);
    rs.merge(first);
    const second = rs.set('second', hs); // wall clock 5,000 < 10,000, yet causally later
    rf.merge(second);
    expect(rf.value()).toBe('second');
    expect(rs.value()).toBe('second');
  });

  it('HLC refuses a timestamp too far ahead of the physical clock', () => {
    const hlc = new HybridLogicalClock({ node: 'n', clock: new ManualClock(0), maxDriftMs: 100 });
    expect(() => hlc.receive({ wall: 1000, logical: 0, node: 'm' })).toThrow(
      expect.objectContaining({ code: 'REPLICATION_CLOCK_DRIFT' }),
    );
  });
});
