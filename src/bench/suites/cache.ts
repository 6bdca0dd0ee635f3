import { randomBytes } from 'node:crypto';
import { createKeyv } from '@keyv/redis';
import { BentoCache, bentostore } from 'bentocache';
import { memoryDriver } from 'bentocache/drivers/memory';
import { redisDriver } from 'bentocache/drivers/redis';
import { createCache } from 'cache-manager';
import { Redis } from 'ioredis';
import { Keyv } from 'keyv';
import { LRUCache } from 'lru-cache';
import { Cache } from '../../cache/cache.js';
import type { CacheEntry } from '../../cache/cache-options.js';
import { LocalStore } from '../../cache/local-store.js';
import { RedisCacheStore } from '../../cache/redis-cache-store.js';
import { RedisInvalidationBus } from '../../cache/redis-invalidation-bus.js';
import { WriteBehind } from '../../cache/write-behind.js';
import { connectRedis, type RedisClient } from '../../engines/redis/index.js';
import {
  type BenchContext,
  type BenchResult,
  type BenchSuite,
  interleave,
  percentile,
  result,
} from '../harness.js';

/**
 * Cache benchmarks: hit ratio of our W-TinyLFU store vs lru-cache and vs Belady's optimal
 * (computed offline with the whole trace known), on seeded synthetic traces; and mixed get/set
 * throughput vs lru-cache.
 */

/** mulberry32: a small seeded PRNG, so every run sees the same traces. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `n` requests over `keys` keys, key k (0-based rank) with probability ∝ 1/(k+1)^alpha. */
export function zipfTrace(alpha: number, keys: number, n: number, seed: number): Int32Array {
  const cdf = new Float64Array(keys);
  let sum = 0;
  for (let k = 0; k < keys; k++) {
    sum += 1 / (k + 1) ** alpha;
    cdf[k] = sum;
  }
  const rnd = seededRandom(seed);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const u = rnd() * sum;
    let lo = 0;
    let hi = keys - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cdf[mid]! < u) lo = mid + 1;
      else hi = mid;
    }
    out[i] = lo;
  }
  return out;
}

/** Zipf 0.9 with a scan of `scanLength` never-seen keys every `every` requests. */
export function scanTrace(n: number, every: number, scanLength: number, seed: number): Int32Array {
  const base = zipfTrace(0.9, 100_000, n, seed);
  const out = new Int32Array(n);
  let fresh = 10_000_000;
  let j = 0;
  for (let i = 0; i < n; ) {
    for (let k = 0; k < every && i < n; k++) out[i++] = base[j++]!;
    for (let k = 0; k < scanLength && i < n; k++) out[i++] = fresh++;
  }
  return out;
}

/** A cyclic scan over `length` keys, repeated. */
export function loopTrace(n: number, length: number): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = i % length;
  return out;
}

/**
 * Recency-heavy: a stream of new keys, each re-referenced soon after it first appears (LRU stack
 * distances skewed small), then forgotten. What was hot a while ago is not hot now, so frequency
 * history misleads and pure recency is close to optimal.
 */
export function recencyTrace(n: number, depth: number, pNew: number, seed: number): Int32Array {
  const rnd = seededRandom(seed);
  const out = new Int32Array(n);
  let next = 0;
  for (let i = 0; i < n; i++) {
    if (next === 0 || rnd() < pNew) {
      out[i] = next++;
    } else {
      const d = Math.floor(depth * rnd() ** 3);
      out[i] = Math.max(0, next - 1 - d);
    }
  }
  return out;
}

/**
 * Belady's MIN with bypass: on a miss, evict the cached key used furthest in the future (or
 * do not admit the newcomer if it is). The optimal hit ratio for the trace and capacity.
 */
export function beladyHitRatio(trace: Int32Array, capacity: number): number {
  const n = trace.length;
  // Dense ids so that per-key state fits in typed arrays.
  const ids = new Map<number, number>();
  const dense = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let id = ids.get(trace[i]!);
    if (id === undefined) {
      id = ids.size;
      ids.set(trace[i]!, id);
    }
    dense[i] = id;
  }
  const keys = ids.size;
  // nextUse[i]: index of the next request for the same key, or n + i if none (unique, > any index).
  const nextUse = new Float64Array(n);
  const seen = new Float64Array(keys).fill(-1);
  for (let i = n - 1; i >= 0; i--) {
    const k = dense[i]!;
    nextUse[i] = seen[k]! >= 0 ? seen[k]! : n + i;
    seen[k] = i;
  }
  const keyOf = (v: number) => dense[v < n ? v : v - n]!;
  const inCache = new Uint8Array(keys);
  const cur = new Float64Array(keys);
  // Max-heap of next-use times with lazy deletion.
  const heap = new Float64Array(n + capacity + 1);
  let hsize = 0;
  const push = (v: number) => {
    let i = hsize++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (heap[p]! >= v) break;
      heap[i] = heap[p]!;
      i = p;
    }
    heap[i] = v;
  };
  const pop = () => {
    const top = heap[0]!;
    const last = heap[--hsize]!;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= hsize) break;
      const r = l + 1;
      const c = r < hsize && heap[r]! > heap[l]! ? r : l;
      if (heap[c]! <= last) break;
      heap[i] = heap[c]!;
      i = c;
    }
    heap[i] = last;
    return top;
  };
  const peekValid = () => {
    while (hsize > 0) {
      const v = heap[0]!;
      const k = keyOf(v);
      if (inCache[k] && cur[k] === v) return v;
      pop();
    }
    return -1;
  };
  let hits = 0;
  let size = 0;
  for (let i = 0; i < n; i++) {
    const k = dense[i]!;
    const nu = nextUse[i]!;
    if (inCache[k]) {
      hits++;
      cur[k] = nu;
      push(nu);
      continue;
    }
    if (size >= capacity) {
      const far = peekValid();
      if (far < nu) continue; // bypass: the newcomer is the one used furthest away
      pop();
      inCache[keyOf(far)] = 0;
      size--;
    }
    inCache[k] = 1;
    cur[k] = nu;
    push(nu);
    size++;
  }
  return hits / n;
}

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

/**
 * Two tiers on the same Redis: getOrSet over Zipf 0.9 keys (10,000 keys, L1 of 1,000 entries,
 * L2 Redis, a trivial factory), sequential, ours vs BentoCache (memory L1 + Redis L2, no bus on
 * either side) and vs cache-manager (`wrap` over Keyv(lru-cache) + Keyv(@keyv/redis)), the three
 * interleaved in one run. Then the cross-instance invalidation latency of ours: from the start of a set on
 * one instance to the first fresh read on another.
 */
async function tiered(ctx: BenchContext, url: string): Promise<BenchResult[]> {
  const prefix = `cdp-bench:cache:${randomBytes(4).toString('hex')}:`;
  const client = await connectRedis({ url, name: 'cdp-bench-cache' });
  const io = new Redis(url, { lazyConnect: false, maxRetriesPerRequest: 1 });
  const trace = zipfTrace(0.9, 10_000, 200_000, 11);
  const ours = new Cache<{ id: number; title: string }>({
    name: 'bench',
    namespace: 'bench',
    l1: { maxEntries: 1000 },
    l2: new RedisCacheStore<CacheEntry<{ id: number; title: string }>>({ client, prefix }),
    ttlMs: 3_600_000,
  });
  const bento = new BentoCache({
    default: 'tiered',
    stores: {
      tiered: bentostore()
        .useL1Layer(memoryDriver({ maxItems: 1000 }))
        .useL2Layer(redisDriver({ connection: io, prefix: `${prefix}bento` })),
    },
  });
  // cache-manager 7: an in-process Keyv over lru-cache (1,000 entries) in front of Keyv on Redis.
  const cmRedis = createKeyv(url, { namespace: `${prefix}cm` });
  const cm = createCache({
    stores: [
      new Keyv({ store: new LRUCache<string, NonNullable<unknown>>({ max: 1000 }) }),
      cmRedis,
    ],
  });
  const factory = (k: number) => ({ id: k, title: `course ${k}` });
  const durationMs = ctx.quick ? 400 : 1500;
  const rounds = ctx.quick ? 5 : 11;
  const offsets = { ours: 0, bento: 0, cm: 0 };
  const measure = async (who: 'ours' | 'bento' | 'cm') => {
    let n = 0;
    let j = offsets[who];
    const start = performance.now();
    while (performance.now() - start < durationMs) {
      for (let i = 0; i < 32; i++) {
        const k = trace[j]!;
        j = j + 1 === trace.length ? 0 : j + 1;
        if (who === 'ours') await ours.getOrLoad(`c${k}`, async () => factory(k));
        else if (who === 'bento')
          await bento.getOrSet({ key: `c${k}`, factory: () => factory(k), ttl: '1h' });
        else await cm.wrap(`c${k}`, async () => factory(k), 3_600_000);
        n++;
      }
    }
    offsets[who] = j;
    return n / ((performance.now() - start) / 1000);
  };
  ctx.progress(`tiered.getorset: ${rounds} interleaved rounds of ${durationMs} ms`);
  const r = await interleave(
    { ours: () => measure('ours'), bento: () => measure('bento'), cm: () => measure('cm') },
    rounds,
  );

  ctx.progress('invalidation latency: 200 sets on one instance, fresh read on another');
  const mk = () =>
    new Cache<number>({
      namespace: 'inv',
      l2: new RedisCacheStore<CacheEntry<number>>({ client, prefix }),
      bus: new RedisInvalidationBus({ client, channel: `${prefix}bus` }),
    }).start();
  const a = await mk();
  const b = await mk();
  const lat: number[] = [];
  for (let i = 1; i <= 200; i++) {
    await a.set('k', i - 1);
    await b.get('k'); // b holds i - 1 in L1
    const t0 = performance.now();
    await a.set('k', i);
    while ((await b.get('k')) !== i) await new Promise((res) => setImmediate(res));
    lat.push(performance.now() - t0);
  }
  await a.close();
  await b.close();

  // Write-behind loss window: keys acknowledged but not yet in Redis, sampled while a producer
  // writes about 5,000 writes/s (50 every 10 ms, over 4,000 distinct keys) to a Redis MSET writer.
  ctx.progress('write-behind: exposure (queued, unwritten keys) under a steady stream of writes');
  const wb = new WriteBehind<string>({
    write: async (batch) => {
      await client.mSet(batch.map(([k, v]) => [`${prefix}wb:${k}`, v] as [string, string]));
    },
    batchSize: 500,
    flushIntervalMs: 50,
    maxPending: 10_000,
  });
  const samples: number[] = [];
  let writes = 0;
  const wbStart = performance.now();
  const wbMs = ctx.quick ? 1000 : 3000;
  const sampler = setInterval(() => samples.push(wb.pending), 5);
  while (performance.now() - wbStart < wbMs) {
    await wb.write(`k${writes % 4000}`, String(writes));
    writes++;
    if (writes % 50 === 0) await new Promise((res) => setTimeout(res, 10));
  }
  clearInterval(sampler);
  await wb.close();
  const wbRate = writes / ((performance.now() - wbStart) / 1000);
  await ours.close();
  await bento.disconnectAll();
  await cm.disconnect();
  await cleanup(client, prefix);
  await client.close();
  io.disconnect();
  const round2 = (x: number) => Math.round(x * 100) / 100;
  return [
    result({
      id: 'tiered.getorset',
      metric: 'getOrSet ops/s, L1 1,000 entries + Redis L2, Zipf 0.9 over 10,000 keys, sequential',
      unit: 'ops/s',
      ours: Math.round(r.ours),
      peer: { name: 'BentoCache', value: Math.round(r.bento) },
      higherIsBetter: true,
      params: { rounds, durationMs, l1: 1000, keys: 10_000, redis: 'loopback' },
    }),
    result({
      id: 'tiered.getorset.vs-cache-manager',
      metric:
        'getOrSet (wrap) ops/s, L1 1,000 entries + Redis L2, Zipf 0.9 over 10,000 keys, sequential',
      unit: 'ops/s',
      ours: Math.round(r.ours),
      peer: { name: 'cache-manager', value: Math.round(r.cm) },
      higherIsBetter: true,
      params: {
        rounds,
        durationMs,
        l1: 1000,
        keys: 10_000,
        redis: 'loopback',
        peerStores: 'Keyv(lru-cache max 1,000) + Keyv(@keyv/redis)',
        sameRunAs: 'tiered.getorset',
      },
    }),
    result({
      id: 'write-behind.exposure.p99',
      metric: 'write-behind: keys queued and unwritten (lost on a crash), p99 of samples',
      unit: 'keys',
      ours: percentile(samples, 99),
      higherIsBetter: false,
      params: {
        samples: samples.length,
        max: Math.max(...samples),
        p50: percentile(samples, 50),
        writesPerSecond: Math.round(wbRate),
        distinctKeys: 4000,
        batchSize: 500,
        flushIntervalMs: 50,
        writer: 'Redis MSET on loopback',
      },
    }),
    result({
      id: 'invalidation.p99',
      metric: 'cross-instance invalidation: set on A to first fresh read on B, p99',
      unit: 'ms',
      ours: round2(percentile(lat, 99)),
      higherIsBetter: false,
      params: { samples: lat.length, p50: round2(percentile(lat, 50)), bus: 'redis pub/sub' },
    }),
  ];
}

async function cleanup(client: RedisClient, prefix: string): Promise<void> {
  for await (const keys of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 500 })) {
    if (keys.length > 0) await client.unlink(keys);
  }
}

export default suite;
