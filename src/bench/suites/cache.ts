import { LRUCache } from 'lru-cache';
import { LocalStore } from '../../cache/local-store.js';
import {
  type BenchContext,
  type BenchResult,
  type BenchSuite,
  interleave,
  percentile,
  result,
} from '../harness.js';
import { tiered } from './cache-tiered.js';
import {
  beladyHitRatio,
  loopTrace,
  recencyTrace,
  scanTrace,
  seededRandom,
  zipfTrace,
} from './cache-traces.js';

/**
 * Cache benchmarks: hit ratio of our W-TinyLFU store vs lru-cache and vs Belady's optimal
 * (computed offline with the whole trace known), on seeded synthetic traces; and mixed get/set
 * throughput vs lru-cache.
 */

type Sim = KeySim<number>;

function simulate(cache: Sim, trace: Int32Array): number {
  let hits = 0;
  for (let i = 0; i < trace.length; i++) {
    const k = trace[i]!;
    if (cache.get(k) !== undefined) hits++;
    else cache.set(k, k);
  }
  return hits / trace.length;
}

const pct = (x: number) => Math.round(x * 10_000) / 100;

/**
 * Mixed get/set: a get for each request, a set on a miss, and a plain set every 10th request.
 * Returns ops per second of this process's CPU time, and ops per second of wall time. The loop is
 * synchronous and single-threaded, so on an idle machine the two agree; on a shared one, wall
 * time also counts the slices the scheduler gave to other processes, which swung the ratio
 * between 0.41x and 0.82x from one run to the next of the same code.
 */
function mixedOps<K>(
  cache: KeySim<K>,
  trace: Int32Array,
  names: readonly K[],
  from: number,
  count: number,
): { cpu: number; wall: number } {
  const cpu0 = process.cpuUsage();
  const start = process.hrtime.bigint();
  const n = trace.length;
  let j = from;
  for (let i = 0; i < count; i++) {
    const k = names[trace[j]!]!;
    j = j + 1 === n ? 0 : j + 1;
    if (i % 10 === 0) cache.set(k, i);
    else if (cache.get(k) === undefined) cache.set(k, i);
  }
  const wall = Number(process.hrtime.bigint() - start) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  return { cpu: count / ((cpu.user + cpu.system) / 1e6), wall: count / wall };
}

interface KeySim<K> {
  get(k: K): number | undefined;
  set(k: K, v: number): unknown;
}

/**
 * ops.zipf with one key type: ours (W-TinyLFU) and lru-cache interleaved, each walking the same
 * trace from the same start, chunk by chunk. Keys come from `names` (built before timing), so
 * both contenders pay the same array read per operation.
 */
async function opsCase<K>(
  ctx: BenchContext,
  spec: { id: string; metric: string; keyType: string },
  trace: Int32Array,
  names: readonly K[],
  keys: number,
): Promise<BenchResult> {
  const cap = 10_000;
  const count = ctx.quick ? 500_000 : 2_000_000;
  const rounds = ctx.quick ? 5 : 11;
  ctx.progress(`${spec.id}: ${rounds} interleaved rounds of ${count.toLocaleString('en-US')} ops`);
  const ours = new LocalStore<K, number>({ maxEntries: cap, random: seededRandom(1) });
  const lru = new LRUCache<K & {}, number>({ max: cap });
  const offsets = { ours: 0, lru: 0 };
  const wall = { ours: [] as number[], lru: [] as number[] };
  const step = (who: 'ours' | 'lru', cache: KeySim<K>) => {
    const r = mixedOps(cache, trace, names, offsets[who], count);
    offsets[who] = (offsets[who] + count) % trace.length;
    wall[who].push(r.wall);
    return r.cpu;
  };
  const ops = await interleave(
    {
      ours: async () => step('ours', ours),
      lru: async () => step('lru', lru as unknown as KeySim<K>),
    },
    rounds,
  );
  return result({
    id: spec.id,
    metric: spec.metric,
    unit: 'ops/s',
    ours: Math.round(ops.ours),
    peer: { name: 'lru-cache', value: Math.round(ops.lru) },
    higherIsBetter: true,
    params: {
      capacity: cap,
      keys,
      keyType: spec.keyType,
      rounds,
      opsPerRound: count,
      policy: 'w-tinylfu',
      timing: 'process CPU time (median of rounds); wall-clock figures in wallClock',
      // Medians of the measured rounds (the first, a warm-up, left out).
      wallClock: {
        ours: Math.round(percentile(wall.ours.slice(1), 50)),
        lru: Math.round(percentile(wall.lru.slice(1), 50)),
        ratio:
          Math.round(
            (percentile(wall.ours.slice(1), 50) / percentile(wall.lru.slice(1), 50)) * 100,
          ) / 100,
      },
    },
  });
}

const suite: BenchSuite = {
  name: 'cache',
  description:
    'in-process cache: hit ratio of W-TinyLFU vs lru-cache and Belady optimal; mixed get/set throughput vs lru-cache',
  async run(ctx) {
    const requests = ctx.quick ? 300_000 : 2_000_000;
    const keys = 100_000;
    const out = [];
    const hitCase = async (
      id: string,
      metric: string,
      trace: Int32Array,
      capacity: number,
      params: Record<string, unknown>,
    ) => {
      ctx.progress(`${id}: ${trace.length.toLocaleString('en-US')} requests, capacity ${capacity}`);
      // The store draws random numbers (admission of warm candidates), and the hill climber
      // amplifies small differences: report the mean over three seeded runs, each listed.
      const runs = [1, 2, 3].map((seed) =>
        simulate(
          new LocalStore<number, number>({ maxEntries: capacity, random: seededRandom(seed) }),
          trace,
        ),
      );
      const ours = runs.reduce((a, b) => a + b, 0) / runs.length;
      const lru = simulate(new LRUCache<number, number>({ max: capacity }), trace);
      const optimal = beladyHitRatio(trace, capacity);
      out.push(
        result({
          id,
          metric,
          unit: '%',
          ours: pct(ours),
          peer: { name: 'lru-cache', value: pct(lru) },
          higherIsBetter: true,
          params: {
            ...params,
            capacity,
            requests: trace.length,
            optimal: pct(optimal),
            policy: 'w-tinylfu',
            traceSeed: 42,
            storeSeeds: [1, 2, 3],
            oursPerSeed: runs.map(pct),
          },
        }),
      );
    };
    for (const alpha of [0.8, 0.9, 0.99]) {
      const trace = zipfTrace(alpha, keys, requests, 42);
      for (const cap of [1000, 10_000]) {
        await hitCase(
          `hit-ratio.zipf-${alpha}.cap-${cap}`,
          `hit ratio, Zipf ${alpha} over ${keys.toLocaleString('en-US')} keys`,
          trace,
          cap,
          { workload: 'zipf', alpha, keys },
        );
      }
    }
    await hitCase(
      'hit-ratio.scan',
      'hit ratio, Zipf 0.9 with a 3,000-key scan every 10,000 requests',
      scanTrace(requests, 10_000, 3_000, 42),
      1000,
      { workload: 'zipf 0.9 + scans', every: 10_000, scanLength: 3_000 },
    );
    await hitCase(
      'hit-ratio.loop',
      'hit ratio, a loop over 1,500 keys (longer than the cache)',
      loopTrace(requests, 1500),
      1000,
      { workload: 'loop', length: 1500 },
    );
    await hitCase(
      'hit-ratio.recency',
      'hit ratio, recency-heavy (new keys re-referenced soon, then forgotten)',
      recencyTrace(requests, 2000, 0.25, 42),
      1000,
      { workload: 'recency', depth: 2000, pNew: 0.25 },
    );

    const opsTrace = zipfTrace(0.9, keys, 1_000_000, 7);
    const ints = Array.from({ length: keys }, (_, i) => i);
    out.push(
      await opsCase(
        ctx,
        {
          id: 'ops.zipf',
          metric: 'mixed get/set ops per CPU-second (get, set on miss, 10% plain sets), Zipf 0.9',
          keyType: 'int32 numbers',
        },
        opsTrace,
        ints,
        keys,
      ),
    );
    // String keys take the store's Map index (int32 keys take its probing table).
    const strings = Array.from({ length: keys }, (_, i) => `course:${i}`);
    out.push(
      await opsCase(
        ctx,
        {
          id: 'ops.zipf.string-keys',
          metric: 'mixed get/set ops per CPU-second, Zipf 0.9, string keys ("course:<n>")',
          keyType: 'strings',
        },
        opsTrace,
        strings,
        keys,
      ),
    );
    const redisUrl = ctx.env.CDP_REDIS_URL;
    if (redisUrl) out.push(...(await tiered(ctx, redisUrl)));
    else ctx.progress('tiered.getorset and invalidation latency skipped: set CDP_REDIS_URL');
    return out;
  },
};

export default suite;
