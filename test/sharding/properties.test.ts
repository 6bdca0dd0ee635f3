import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createShardMap, type KeyRange, type ShardMapState } from '../../src/sharding/index.js';
import { kWayMerge } from '../../src/sharding/internal/merge.js';

const SHARDS = ['a', 'b', 'c', 'd'];

function hashState(slotCount: number): ShardMapState {
  return {
    name: 'p',
    strategy: 'hash',
    keyType: 'bigint',
    slotCount,
    version: 1,
    shards: SHARDS.map((id) => ({ id, location: id })),
    slots: Array.from({ length: slotCount }, (_, s) => SHARDS[s % SHARDS.length]!),
    ranges: [],
    directory: new Map(),
  };
}

function rangeState(): ShardMapState {
  return {
    ...hashState(0),
    strategy: 'range',
    slotCount: 0,
    slots: [],
    ranges: [{ id: 1, lo: null, shard: 'a' }],
  };
}

type Op =
  | { kind: 'move'; pick: number; target: number }
  | { kind: 'split'; pick: number; at: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('move' as const), pick: fc.nat(), target: fc.nat(3) }),
  fc.record({
    kind: fc.constant('split' as const),
    pick: fc.nat(),
    at: fc.integer({ min: -1000, max: 1000 }),
  }),
);

/** The model: a move re-owns one unit; a split cuts one range in two on the same shard. */
function apply(state: ShardMapState, o: Op): ShardMapState {
  if (state.strategy === 'hash') {
    if (o.kind !== 'move') return state;
    const slots = [...state.slots];
    slots[o.pick % slots.length] = SHARDS[o.target]!;
    return { ...state, slots, version: state.version + 1 };
  }
  const ranges: KeyRange[] = state.ranges.map((r) => ({ ...r }));
  if (o.kind === 'move') {
    ranges[o.pick % ranges.length]!.shard = SHARDS[o.target]!;
  } else {
    const at = String(o.at);
    if (ranges.some((r) => r.lo === at)) return state;
    const unit = createShardMap(state).route(BigInt(at)).unit;
    const holder = state.ranges.find((r) => `range:${r.id}` === unit)!;
    const id = Math.max(...ranges.map((r) => r.id)) + 1;
    ranges.push({ id, lo: at, shard: holder.shard });
    ranges.sort((x, y) => (x.lo === null ? -1 : y.lo === null ? 1 : Number(x.lo) - Number(y.lo)));
  }
  return { ...state, ranges, version: state.version + 1 };
}

function checkEveryKeyHasOneOwner(state: ShardMapState, keys: readonly number[]): void {
  const map = createShardMap(state);
  const owners = new Map<string, string>();
  for (const [shard, units] of map.unitsByShard()) {
    for (const u of units) {
      expect(owners.has(u)).toBe(false);
      owners.set(u, shard);
    }
  }
  for (const k of keys) {
    const r = map.route(k);
    expect(owners.get(r.unit)).toBe(r.shard);
    // The unit's SQL predicate is what moves rows; the model of it for ranges: lo <= k < next lo.
    if (state.strategy === 'range') {
      const i = state.ranges.findIndex((x) => `range:${x.id}` === r.unit);
      const lo = state.ranges[i]!.lo;
      const hi = state.ranges[i + 1]?.lo;
      expect(lo === null || Number(lo) <= k).toBe(true);
      expect(hi === undefined || k < Number(hi)).toBe(true);
    }
  }
}

describe('shard maps under any sequence of moves and splits', () => {
  it('routes every key to exactly one shard (hash slots)', () => {
    fc.assert(
      fc.property(
        fc.array(op, { maxLength: 40 }),
        fc.array(fc.integer({ min: -5000, max: 5000 }), { minLength: 1, maxLength: 50 }),
        (ops, keys) => {
          let s = hashState(64);
          for (const o of ops) s = apply(s, o);
          checkEveryKeyHasOneOwner(s, keys);
        },
      ),
    );
  });

  it('routes every key to exactly one shard, and within its range (ranges)', () => {
    fc.assert(
      fc.property(
        fc.array(op, { maxLength: 40 }),
        fc.array(fc.integer({ min: -2000, max: 2000 }), { minLength: 1, maxLength: 50 }),
        (ops, keys) => {
          let s = rangeState();
          for (const o of ops) s = apply(s, o);
          checkEveryKeyHasOneOwner(s, keys);
        },
      ),
    );
  });
});

describe('fan-out merge', () => {
  it('equals one table holding every row: k-way merge of sorted shard lists with offset and limit', () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(fc.record({ v: fc.integer({ min: 0, max: 50 }), id: fc.nat() })), {
          minLength: 1,
          maxLength: 6,
        }),
        fc.nat(20),
        fc.option(fc.nat(30), { nil: undefined }),
        (shards, offset, limit) => {
          const cmp = (a: { v: number; id: number }, b: { v: number; id: number }) =>
            a.v - b.v || a.id - b.id;
          // Each shard answers its own rows sorted and limited to offset + limit, as fanOut asks it to.
          const lists = shards.map((rows) =>
            [...rows].sort(cmp).slice(0, limit === undefined ? undefined : offset + limit),
          );
          const merged = kWayMerge(lists, cmp, offset, limit);
          const one = shards
            .flat()
            .sort(cmp)
            .slice(offset, limit === undefined ? undefined : offset + limit);
          expect(merged.map((r) => [r.v, r.id])).toEqual(one.map((r) => [r.v, r.id]));
        },
      ),
    );
  });
});
