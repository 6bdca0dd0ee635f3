import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import {
  type ConflictPolicy,
  crdtJoin,
  keepSiblings,
  lastWriterWins,
  mergeWith,
  ReplicatedValue,
  type Resolution,
  type Version,
} from '../../src/replication/crdt/conflicts.js';
import { HybridLogicalClock } from '../../src/replication/crdt/hlc.js';
import { type OrSetState, orSetType } from '../../src/replication/crdt/or-set.js';
import { compareVersions } from '../../src/replication/crdt/version-vector.js';

function pair<V>(policy: ConflictPolicy<V>, clock = new ManualClock(1000)) {
  const conflicts: Resolution<V>[] = [];
  const make = (node: string) =>
    new ReplicatedValue<V>({
      hlc: new HybridLogicalClock({ node, clock }),
      policy,
      onConflict: (r) => conflicts.push(r),
    });
  return { a: make('a'), b: make('b'), conflicts, clock };
}

describe('version vectors', () => {
  it('tell before, after, equal and concurrent apart', () => {
    expect(compareVersions({ a: 1 }, { a: 2 })).toBe('before');
    expect(compareVersions({ a: 2, b: 1 }, { a: 2 })).toBe('after');
    expect(compareVersions({ a: 1, b: 0 }, { a: 1 })).toBe('equal');
    expect(compareVersions({ a: 1 }, { b: 1 })).toBe('concurrent');
  });
});

describe('conflict policies behind one interface', () => {
  it('vector clocks keep concurrent writes as siblings; a write that read both resolves them', () => {
    const { a, b, conflicts } = pair<string>(keepSiblings());
    const va = a.write('red');
    const vb = b.write('blue');
    expect(a.receive(vb).outcome).toBe('siblings');
    expect(b.receive(va).outcome).toBe('siblings');
    expect(a.read().values.sort()).toEqual(['blue', 'red']);
    expect(conflicts).toHaveLength(2);
    const { context } = a.read();
    const resolved = a.write('purple', context);
    expect(a.read().values).toEqual(['purple']);
    expect(b.receive(resolved).outcome).toBe('applied');
    expect(b.read().values).toEqual(['purple']);
    expect(b.receive(va).outcome).toBe('ignored');
  });

  it('last writer wins by HLC stamp, and reports the conflict it resolved', () => {
    const { a, b, conflicts, clock } = pair<string>(lastWriterWins());
    const va = a.write('first');
    clock.advance(5);
    const vb = b.write('second');
    a.receive(vb);
    b.receive(va);
    expect(a.read().values).toEqual(['second']);
    expect(b.read().values).toEqual(['second']);
    expect(conflicts.map((c) => c.outcome)).toEqual(['resolved', 'resolved']);
  });

  it('an application merge function resolves concurrent writes', () => {
    const { a, b } = pair<number[]>(
      mergeWith('union', (vs) => [...new Set(vs.flat())].sort((x, y) => x - y)),
    );
    const va = a.write([1, 2]);
    const vb = b.write([3]);
    a.receive(vb);
    b.receive(va);
    expect(a.read().values).toEqual([[1, 2, 3]]);
    expect(b.read().values).toEqual([[1, 2, 3]]);
  });

  it('a merge function that throws keeps the conflict as siblings and reports it: nothing overwritten', () => {
    const { a, b, conflicts } = pair<string>(
      mergeWith('refuses', () => {
        throw new Error('cannot merge these addresses');
      }),
    );
    const va = a.write('addr-1');
    const vb = b.write('addr-2');
    const r = a.receive(vb);
    expect(r.outcome).toBe('merge-failed');
    expect(r.conflict?.error).toBe('cannot merge these addresses');
    expect(a.read().values.sort()).toEqual(['addr-1', 'addr-2']);
    b.receive(va);
    expect(b.read().values.sort()).toEqual(['addr-1', 'addr-2']);
    expect(conflicts.every((c) => c.outcome === 'merge-failed')).toBe(true);
  });

  it('CRDT values join: concurrent or-set versions keep both adds', () => {
    const { a, b } = pair<OrSetState>(crdtJoin(orSetType));
    const sa = orSetType.create('a');
    sa.add('x');
    const sb = orSetType.create('b');
    sb.add('y');
    const va = a.write(sa.state());
    const vb = b.write(sb.state());
    a.receive(vb);
    b.receive(va);
    const values = (r: ReplicatedValue<OrSetState>) =>
      orSetType.fromState('r', r.read().values[0]).value();
    expect(values(a)).toEqual(['x', 'y']);
    expect(values(b)).toEqual(['x', 'y']);
  });

  it('any delivery order and duplication converges, for last-writer-wins and a merge function (1,000 runs)', () => {
    const policies: ConflictPolicy<number>[] = [
      lastWriterWins(),
      mergeWith('max', (vs) => Math.max(...vs)),
    ];
    fc.assert(
      fc.property(
        fc.nat(1),
        fc.array(fc.tuple(fc.nat(2), fc.nat(9)), { minLength: 1, maxLength: 8 }),
        fc.array(fc.tuple(fc.nat(20), fc.nat(2)), { maxLength: 20 }),
        (p, writes, deliveries) => {
          const clock = new ManualClock(0);
          const rs = ['a', 'b', 'c'].map(
            (n) =>
              new ReplicatedValue<number>({
                hlc: new HybridLogicalClock({ node: n, clock }),
                policy: policies[p]!,
              }),
          );
          const sent: Version<number>[] = [];
          let d = 0;
          for (const [at, v] of writes) {
            clock.advance(v % 3);
            sent.push(rs[at]!.write(v));
            const [i, to] = deliveries[d++ % Math.max(1, deliveries.length)] ?? [0, 0];
            rs[to]!.receive(sent[i % sent.length]!);
          }
          for (const r of rs) for (const v of [...sent].reverse()) r.receive(v);
          for (const r of rs) expect(r.read()).toEqual(rs[0]!.read());
        },
      ),
      { numRuns: 1000 },
    );
  });
});
