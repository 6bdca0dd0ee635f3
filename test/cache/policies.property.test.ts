import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type EvictionPolicy, LocalStore } from '../../src/cache/local-store.js';
import { ManualClock } from '../../src/core/clock.js';

/**
 * Each classic policy against a tiny reference model: the same sequence of operations must give
 * the same hits and the same victims, in the same order.
 */
type Op =
  | { t: 'get'; k: number }
  | { t: 'set'; k: number; v: number }
  | { t: 'del'; k: number }
  | { t: 'tick'; ms: number };

const opArb = (keys: number, withTime = false): fc.Arbitrary<Op> =>
  fc.oneof(
    { weight: 5, arbitrary: fc.record({ t: fc.constant('get' as const), k: fc.nat(keys - 1) }) },
    {
      weight: 4,
      arbitrary: fc.record({
        t: fc.constant('set' as const),
        k: fc.nat(keys - 1),
        v: fc.integer(),
      }),
    },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('del' as const), k: fc.nat(keys - 1) }) },
    {
      weight: withTime ? 2 : 0,
      arbitrary: fc.record({ t: fc.constant('tick' as const), ms: fc.nat(300) }),
    },
  );

interface Model {
  get(k: number): number | undefined;
  set(k: number, v: number): void;
  del(k: number): void;
  victims: number[];
}

/** LRU / FIFO: an array in eviction order; LRU moves a key to the end on access. */
function listModel(cap: number, reorderOnAccess: boolean): Model {
  const order: number[] = [];
  const vals = new Map<number, number>();
  const victims: number[] = [];
  const touch = (k: number) => {
    order.splice(order.indexOf(k), 1);
    order.push(k);
  };
  return {
    victims,
    get(k) {
      if (!vals.has(k)) return undefined;
      if (reorderOnAccess) touch(k);
      return vals.get(k);
    },
    set(k, v) {
      if (vals.has(k)) {
        vals.set(k, v);
        if (reorderOnAccess) touch(k);
        return;
      }
      if (order.length >= cap) {
        const victim = order.shift()!;
        vals.delete(victim);
        victims.push(victim);
      }
      order.push(k);
      vals.set(k, v);
    },
    del(k) {
      if (!vals.has(k)) return;
      vals.delete(k);
      order.splice(order.indexOf(k), 1);
    },
  };
}

/** LFU: evict the smallest (frequency, last access); a new key starts at 1 after room is made. */
function lfuModel(cap: number): Model {
  const e = new Map<number, { v: number; f: number; last: number }>();
  const victims: number[] = [];
  let tick = 0;
  return {
    victims,
    get(k) {
      const x = e.get(k);
      if (!x) return undefined;
      x.f++;
      x.last = tick++;
      return x.v;
    },
    set(k, v) {
      const x = e.get(k);
      if (x) {
        x.v = v;
        x.f++;
        x.last = tick++;
        return;
      }
      if (e.size >= cap) {
        let victim = -1;
        let best: { f: number; last: number } | undefined;
        for (const [key, y] of e) {
          if (!best || y.f < best.f || (y.f === best.f && y.last < best.last)) {
            best = y;
            victim = key;
          }
        }
        e.delete(victim);
        victims.push(victim);
      }
      e.set(k, { v, f: 1, last: tick++ });
    },
    del(k) {
      e.delete(k);
    },
  };
}

const models: Record<'lru' | 'fifo' | 'lfu', (cap: number) => Model> = {
  lru: (cap) => listModel(cap, true),
  fifo: (cap) => listModel(cap, false),
  lfu: lfuModel,
};

describe.each(Object.keys(models) as ('lru' | 'fifo' | 'lfu')[])(
  '%s matches its reference model',
  (policy) => {
    it('same hits, same values, same victims in the same order', () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 1, max: 8 }),
          fc.array(opArb(16), { maxLength: 300 }),
          (cap, ops) => {
            const victims: number[] = [];
            const store = new LocalStore<number, number>({
              policy,
              maxEntries: cap,
              onEvict: (k, _v, cause) => cause === 'size' && victims.push(k),
            });
            const model = models[policy](cap);
            for (const op of ops) {
              if (op.t === 'get') expect(store.get(op.k)).toBe(model.get(op.k));
              else if (op.t === 'set') {
                store.set(op.k, op.v);
                model.set(op.k, op.v);
              } else if (op.t === 'del') {
                store.delete(op.k);
                model.del(op.k);
              }
              expect(store.size).toBeLessThanOrEqual(cap);
            }
            expect(victims).toEqual(model.victims);
          },
        ),
        { numRuns: 300 },
      );
    });
  },
);

const allPolicies: EvictionPolicy[] = ['lru', 'lfu', 'fifo', 'ttl', 'w-tinylfu'];

describe.each(allPolicies)('%s invariants with expiry', (policy) => {
  it('size bound, get after set, never an expired, deleted or stale value', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 12 }),
        fc.array(opArb(24, true), { maxLength: 400 }),
        fc.array(fc.nat(400), { minLength: 1, maxLength: 20 }),
        (cap, ops, ttls) => {
          const clock = new ManualClock(0);
          const store = new LocalStore<number, number>({
            policy,
            maxEntries: cap,
            clock,
            expiryResolutionMs: 50,
            random: () => 0,
          });
          // Truth: the last value set per key and its deadline (0 = none); deleted keys removed.
          const truth = new Map<number, { v: number; deadline: number }>();
          let n = 0;
          for (const op of ops) {
            if (op.t === 'tick') {
              clock.set(clock.now() + op.ms);
              continue;
            }
            if (op.t === 'set') {
              const ttl = ttls[n++ % ttls.length]!;
              store.set(op.k, op.v, { ttlMs: ttl });
              truth.set(op.k, { v: op.v, deadline: ttl === 0 ? 0 : clock.now() + ttl });
              expect(store.get(op.k)).toBe(ttl === 0 || ttl > 0 ? op.v : undefined);
            } else if (op.t === 'del') {
              store.delete(op.k);
              truth.delete(op.k);
            } else {
              const got = store.get(op.k);
              if (got !== undefined) {
                const t = truth.get(op.k);
                expect(t).toBeDefined();
                expect(got).toBe(t!.v);
                expect(t!.deadline === 0 || t!.deadline > clock.now()).toBe(true);
              }
            }
            expect(store.size).toBeLessThanOrEqual(cap);
            for (const [k, v] of store.entries()) {
              const t = truth.get(k);
              expect(t?.v).toBe(v);
              expect(t!.deadline === 0 || t!.deadline > clock.now()).toBe(true);
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('w-tinylfu under weights', () => {
  it('total weight never exceeds the bound and a fitting entry is readable after set', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 50 }),
        fc.array(fc.record({ k: fc.nat(30), w: fc.nat(20), read: fc.nat(30) }), {
          maxLength: 300,
        }),
        (max, ops) => {
          const store = new LocalStore<number, number>({
            maxWeight: max,
            sizeOf: (v) => v,
          });
          const truth = new Map<number, number>();
          for (const { k, w, read } of ops) {
            store.set(k, w);
            truth.set(k, w);
            expect(store.weight).toBeLessThanOrEqual(max);
            expect(store.get(k)).toBe(w <= max ? w : undefined);
            const got = store.get(read);
            if (got !== undefined) expect(got).toBe(truth.get(read));
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
