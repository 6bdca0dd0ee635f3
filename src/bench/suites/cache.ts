import { LRUCache } from 'lru-cache';
import { LocalStore } from '../../cache/local-store.js';
import { type BenchSuite, result } from '../harness.js';
import { type KeySim, opsCase, opsCaseLabel } from './cache-ops.js';
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

    for (const keyType of ['int', 'string'] as const) {
      ctx.progress(opsCaseLabel(keyType, ctx.quick));
      out.push(await opsCase(keyType, ctx.quick));
    }
    const redisUrl = ctx.env.CDP_REDIS_URL;
    if (redisUrl) out.push(...(await tiered(ctx, redisUrl)));
    else ctx.progress('tiered.getorset and invalidation latency skipped: set CDP_REDIS_URL');
    return out;
  },
};

export default suite;
