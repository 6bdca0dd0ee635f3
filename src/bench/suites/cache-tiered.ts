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
import { RedisCacheStore } from '../../cache/redis-cache-store.js';
import { RedisInvalidationBus } from '../../cache/redis-invalidation-bus.js';
import { WriteBehind } from '../../cache/write-behind.js';
import { connectRedis, type RedisClient } from '../../engines/redis/index.js';
import { type BenchContext, type BenchResult, interleave, percentile, result } from '../harness.js';
import { zipfTrace } from './cache-traces.js';

/**
 * Two tiers on the same Redis: getOrSet over Zipf 0.9 keys (10,000 keys, L1 of 1,000 entries,
 * L2 Redis, a trivial factory), sequential, ours vs BentoCache (memory L1 + Redis L2, no bus on
 * either side) and vs cache-manager (`wrap` over Keyv(lru-cache) + Keyv(@keyv/redis)), the three
 * interleaved in one run. Then the cross-instance invalidation latency of ours: from the start of a set on
 * one instance to the first fresh read on another.
 */
export async function tiered(ctx: BenchContext, url: string): Promise<BenchResult[]> {
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
