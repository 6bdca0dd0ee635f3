import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cache } from '../../src/cache/cache.js';
import type { CacheEntry } from '../../src/cache/cache-options.js';
import { RedisCacheStore } from '../../src/cache/redis-cache-store.js';
import { RedisInvalidationBus } from '../../src/cache/redis-invalidation-bus.js';
import { SerializationError } from '../../src/cache/serializer.js';
import { ManualClock } from '../../src/core/clock.js';
import { createRegistry } from '../../src/core/metrics.js';
import { connectRedis, type RedisClient } from '../../src/engines/redis/index.js';
import { eventually } from '../../src/testing/eventually.js';
import { describeServer } from '../support/servers.js';
import { storeContract } from './store-contract.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describeServer('cache on Redis', 'CDP_REDIS_URL', (url) => {
  const run = `cdp-test:cache:${randomBytes(5).toString('hex')}:`;
  let client: RedisClient;
  let admin: RedisClient;
  beforeAll(async () => {
    client = await connectRedis({ url, name: 'cdp-cache-test' });
    admin = await connectRedis({ url, name: 'cdp-cache-admin' });
  });
  afterAll(async () => {
    // Only our own keys: never FLUSHALL on a shared server.
    for await (const keys of admin.scanIterator({ MATCH: `${run}*`, COUNT: 500 })) {
      if (keys.length > 0) await admin.unlink(keys);
    }
    await client.close();
    await admin.close();
  });

  describe('CacheStore contract: redis', () => {
    let n = 0;
    storeContract(
      async () => new RedisCacheStore({ client, prefix: `${run}contract${n++}:` }),
      async (ms) => {
        await sleep(ms);
      },
    );
  });

  const tier = (
    name: string,
    extra: Partial<ConstructorParameters<typeof Cache<number>>[0]> = {},
  ) => {
    const l2 = new RedisCacheStore<CacheEntry<number>>({ client, prefix: `${run}${name}:` });
    const bus = new RedisInvalidationBus({ client, channel: `${run}${name}:bus` });
    return new Cache<number>({ l2, bus, namespace: name, ...extra }).start();
  };

  it('a value the serializer cannot encode fails at set and leaves the old value', async () => {
    const l2 = new RedisCacheStore<CacheEntry<unknown>>({ client, prefix: `${run}ser:` });
    const cache = new Cache<unknown>({ l2 });
    await cache.set('k', { ok: 1 });
    await expect(cache.set('k', { n: 10n })).rejects.toThrow(SerializationError);
    await expect(cache.set('k', () => 1)).rejects.toThrow(/cannot encode/);
    expect(await cache.get('k')).toEqual({ ok: 1 });
    expect(await l2.get('default:k')).toMatchObject({ v: { ok: 1 } });
    await cache.close();
  });

  it('writes on one instance invalidate the other instance L1 through the bus', async () => {
    const a = await tier('pair');
    const b = await tier('pair');
    await a.set('k', 1);
    expect(await b.get('k')).toBe(1);
    await a.set('k', 2);
    await eventually(
      async () => (await b.get('k')) === 2,
      'the other instance to read the new value',
      {
        timeoutMs: 2_000,
        intervalMs: 1,
      },
    );
    await a.invalidateTag('none');
    await a.set('t1', 5, { tags: ['course'] });
    expect(await b.get('t1')).toBe(5);
    await a.invalidateTag('course');
    await eventually(
      async () => (await b.get('t1')) === undefined,
      'the tag invalidation to reach the other instance',
      {
        timeoutMs: 2_000,
      },
    );
    await a.close();
    await b.close();
  });

  it('bus drop (CLIENT KILL of the subscriber) while writes go on: no stale read after reconnect', async () => {
    const writer = await tier('drop');
    const l2 = new RedisCacheStore<CacheEntry<number>>({ client, prefix: `${run}drop:` });
    // The reader's bus goes through a proxy that can refuse reconnections for a while: node-redis
    // reconnects within a millisecond or two after CLIENT KILL, and the test wants a sure gap.
    const proxy = await partitionableProxy(url);
    const busClient = await connectRedis({ url: proxy.url, name: 'cdp-cache-bus-reader' });
    const bus = new RedisInvalidationBus({ client: busClient, channel: `${run}drop:bus` });
    const reader = await new Cache<number>({ l2, bus, namespace: 'drop' }).start();
    let last = 0;
    for (let round = 0; round < 3; round++) {
      await writer.set('k', ++last);
      let v = await reader.get('k');
      for (let i = 0; i < 200 && v !== last; i++) {
        await sleep(5);
        v = await reader.get('k');
      }
      expect(v).toBe(last); // the reader now holds `last` in L1
      const subId = await clientIdByName(admin, bus.subscriberName);
      expect(subId).toBeDefined();
      proxy.refuse(true);
      expect(Number(await admin.sendCommand(['CLIENT', 'KILL', 'ID', String(subId)]))).toBe(1);
      // Writes go on while the subscriber is gone: their invalidations are lost.
      for (let i = 0; i < 10; i++) {
        await writer.set('k', ++last);
        await reader.get('k');
        await sleep(10);
      }
      proxy.refuse(false);
      let newId = await clientIdByName(admin, bus.subscriberName);
      for (let i = 0; i < 300 && (newId === undefined || newId === subId); i++) {
        await sleep(10);
        newId = await clientIdByName(admin, bus.subscriberName);
      }
      expect(newId).toBeDefined();
      expect(newId).not.toBe(subId);
      await sleep(20);
      // Reconnected: no read may return a value older than the last write.
      expect(await reader.get('k')).toBe(last);
    }
    await reader.close();
    busClient.destroy();
    await proxy.close();
    await writer.close();
  });

  it('Redis unreachable (partitioned): L1 keeps serving, L2 errors counted and logged, no call waits past its timeout', async () => {
    const proxy = await partitionableProxy(url);
    // The client's own command timeout is far away: only the cache's L2 deadline can end a call.
    const far = await connectRedis({
      url: proxy.url,
      name: 'cdp-cache-partition',
      commandTimeoutMs: 60_000,
    });
    const clock = new ManualClock(0);
    const registry = createRegistry();
    const logged: { msg: string; op?: string }[] = [];
    const logger = pino(
      { level: 'warn' },
      { write: (line: string) => logged.push(JSON.parse(line)) },
    );
    const l2 = new RedisCacheStore<CacheEntry<number>>({ client: far, prefix: `${run}part:` });
    const l2TimeoutMs = 200;
    const cache = new Cache<number>({ l2, l2TimeoutMs, registry, name: 'part', clock, logger });
    await cache.set('hot', 1);
    proxy.partition(true);
    expect(await cache.get('hot')).toBe(1); // L1: no L2 call at all

    /** Advance the manual clock in small steps until `p` settles; returns the clock time it took. */
    const settleTime = async <T>(p: Promise<T>): Promise<{ value: T; took: number }> => {
      let done = false;
      let value: T | undefined;
      const watched = p.then((v) => {
        done = true;
        value = v;
      });
      const start = clock.now();
      for (let i = 0; i < 200 && !done; i++) await clock.advance(10);
      await watched;
      return { value: value as T, took: clock.now() - start };
    };
    let coldSettled = false;
    const cold = cache
      .getOrLoad('cold', async () => 2)
      .finally(() => {
        coldSettled = true;
      });
    await clock.advance(l2TimeoutMs - 50);
    expect(coldSettled).toBe(false); // still inside the L2 get's timeout
    // L2 get times out (ended by the deadline loop within one tick, 25 ms, of its deadline), the
    // loader runs; no L2 fill is attempted (its version token could not be read with the get).
    const c = await settleTime(cold);
    expect(c.value).toBe(2);
    expect(c.took + l2TimeoutMs - 50).toBeLessThanOrEqual(l2TimeoutMs + 25 + 10);
    const s = await settleTime(cache.set('hot', 3)); // L2 set times out; L1 updated
    expect(s.took).toBeLessThanOrEqual(l2TimeoutMs + 25 + 10);
    expect(await cache.get('hot')).toBe(3);
    expect(cache.stats().l2Errors).toBe(2);
    const text = await registry.metrics();
    expect(text).toMatch(/cdp_cache_l2_errors_total\{cache="part",op="get"\} 1/);
    expect(text).toMatch(/cdp_cache_l2_errors_total\{cache="part",op="set"\} 1/);
    const failures = logged.filter((l) => l.msg === 'L2 call failed');
    expect(failures.map((l) => l.op)).toEqual(['get', 'set']);
    proxy.partition(false);
    await cache.close();
    far.destroy();
    await proxy.close();
  });

  it('Redis down (connection gone, reconnects refused): L1 keeps serving, the loader answers, L2 errors counted', async () => {
    const proxy = await partitionableProxy(url);
    const far = await connectRedis({ url: proxy.url, name: 'cdp-cache-down' });
    const registry = createRegistry();
    const l2 = new RedisCacheStore<CacheEntry<number>>({ client: far, prefix: `${run}down:` });
    const cache = new Cache<number>({ l2, registry, name: 'down' });
    await cache.set('hot', 1);
    expect(await l2.get('down:hot')).toMatchObject({ v: 1 });
    proxy.down();
    expect(await cache.get('hot')).toBe(1);
    let loads = 0;
    expect(
      await cache.getOrLoad('cold', async () => {
        loads++;
        return 2;
      }),
    ).toBe(2);
    expect(await cache.getOrLoad('cold', async () => 99)).toBe(2); // now from L1
    expect(loads).toBe(1);
    // The get of 'cold' (its fill is skipped: no version token), and nothing else.
    expect(cache.stats().l2Errors).toBe(1);
    expect(await registry.metrics()).toMatch(
      /cdp_cache_l2_errors_total\{cache="down",op="get"\} 1/,
    );
    await cache.close();
    far.destroy();
    await proxy.close();
  });

  describe("versioned fills: a load never puts back a value older than another instance's write", () => {
    // B's bus message would also stop B's fill, but it can arrive after B's fill was
    // acknowledged: B here has no bus, so only the L2 version check stands between the old value
    // and L2. Each test fails if the fill is an unconditional SET.
    let n = 0;
    const pair = () => {
      const prefix = `${run}vf${n++}:`;
      const l2 = () => new RedisCacheStore<CacheEntry<string>>({ client, prefix });
      return {
        a: new Cache<string>({ l2: l2(), namespace: 'vf', name: 'vf-a' }),
        b: new Cache<string>({ l2: l2(), namespace: 'vf', name: 'vf-b' }),
        fresh: () => new Cache<string>({ l2: l2(), namespace: 'vf', name: 'vf-c' }),
        raw: l2(),
      };
    };
    /** B starts a load of `key` and holds it until `finish` is called with the loaded value. */
    const heldLoad = (b: Cache<string>, key: string) => {
      let finish!: (v: string) => void;
      let started!: () => void;
      const loading = new Promise<void>((r) => {
        started = r;
      });
      const result = b.getOrLoad(key, () => {
        started();
        return new Promise<string>((r) => {
          finish = r;
        });
      });
      return { loading, result, finish: (v: string) => finish(v) };
    };

    it('delete on A while B loads: B returns its value, L2 stays empty', async () => {
      const { a, b, fresh, raw } = pair();
      const load = heldLoad(b, 'k');
      await load.loading;
      await a.delete('k');
      load.finish('old');
      expect(await load.result).toBe('old');
      expect(b.stats().fillsRefused).toBe(1);
      expect(await raw.get('vf:k')).toBeUndefined();
      expect(await fresh().getOrLoad('k', async () => 'new')).toBe('new');
    });

    it("set on A while B loads: L2 keeps A's value", async () => {
      const { a, b, fresh, raw } = pair();
      await a.set('k', 'v1');
      await b.delete('k'); // B misses and loads
      const load = heldLoad(b, 'k');
      await load.loading;
      await a.set('k', 'v2');
      load.finish('v1-read-before-the-write');
      await load.result;
      expect((await raw.get('vf:k'))?.v).toBe('v2');
      expect(await fresh().get('k')).toBe('v2');
    });

    it('a tag invalidation or a clear on A while B loads: nothing stored', async () => {
      for (const op of ['tag', 'clear'] as const) {
        const { a, b, raw } = pair();
        const load = heldLoad(b, 'k');
        await load.loading;
        if (op === 'tag') await a.invalidateTag('course:1');
        else await a.clear();
        load.finish('old');
        await load.result;
        expect(await raw.get('vf:k')).toBeUndefined();
        expect(b.stats().fillsRefused).toBe(1);
      }
    });

    it('no change meanwhile: the fill is stored', async () => {
      const { b, raw } = pair();
      const load = heldLoad(b, 'k');
      await load.loading;
      load.finish('v');
      await load.result;
      expect((await raw.get('vf:k'))?.v).toBe('v');
      expect(b.stats().fillsRefused).toBe(0);
    });

    it('store level: every write, delete, tag deletion and clear moves the token on', async () => {
      const raw = new RedisCacheStore<string>({ client, prefix: `${run}vfs:` });
      const env = 'x';
      const moves: [string, () => Promise<unknown>][] = [
        ['set', () => raw.set('k', 'y')],
        ['set of another key with the tag', () => raw.set('other', 'y', { tags: ['t'] })],
        ['delete', () => raw.delete('k')],
        ['deleteTag', () => raw.deleteTag('t')],
        ['clear', () => raw.clear()],
        ['clear again', () => raw.clear()],
      ];
      for (const [name, move] of moves) {
        const { token } = await raw.getWithToken('k');
        expect(await raw.fillToken('k')).toBe(token);
        await move();
        if (name === 'set of another key with the tag') {
          // Another key's write does not concern this one.
          expect(await raw.setIfUnchanged('k', env, token)).toBe(true);
          continue;
        }
        expect(await raw.setIfUnchanged('k', env, token), name).toBe(false);
        const now = await raw.fillToken('k');
        expect(await raw.setIfUnchanged('k', env, now, { ttlMs: 60_000, tags: ['t'] })).toBe(true);
        expect(await raw.get('k')).toBe(env);
      }
      await expect(
        raw.setIfUnchanged('k', (() => 1) as never, await raw.fillToken('k')),
      ).rejects.toThrow(/cannot encode/);
      expect(await raw.get('k')).toBe(env);
    });
  });

  it('4 processes x 1,000 concurrent misses of one key with the Redis lock: 1 load', async () => {
    const key = `${run}stampede`;
    const startAt = Date.now() + 2_500;
    const child = fileURLToPath(new URL('./fixtures/stampede-child.ts', import.meta.url));
    const outs = await Promise.all(
      [0, 1, 2, 3].map(
        (i) =>
          new Promise<string>((resolve, reject) => {
            const p = spawn(process.execPath, ['--import', 'tsx', child], {
              env: {
                ...process.env,
                CDP_REDIS_URL: url,
                STAMPEDE_PREFIX: key,
                STAMPEDE_START_AT: String(startAt),
                STAMPEDE_CHILD: String(i),
              },
              stdio: ['ignore', 'pipe', 'pipe'],
            });
            let out = '';
            let err = '';
            p.stdout.on('data', (d) => (out += d));
            p.stderr.on('data', (d) => (err += d));
            p.on('exit', (code) =>
              code === 0 ? resolve(out) : reject(new Error(`child ${i} exited ${code}: ${err}`)),
            );
          }),
      ),
    );
    const results = outs.map((o) => JSON.parse(o.trim().split('\n').at(-1)!));
    const loads = Number(await admin.get(`${key}:loads`));
    expect(loads).toBe(1);
    for (const r of results) {
      expect(r.values).toEqual(['value-1']);
      expect(r.count).toBe(1000);
    }
  }, 60_000);
});

async function clientIdByName(admin: RedisClient, name: string): Promise<string | undefined> {
  const list = String(await admin.sendCommand(['CLIENT', 'LIST']));
  const line = list.split('\n').find((l) => l.includes(` name=${name} `));
  return line?.match(/^id=(\d+)/)?.[1];
}

/** A TCP proxy to Redis that can stop forwarding (both ways) without closing: a partition. */
async function partitionableProxy(target: string) {
  const u = new URL(target);
  let cut = false;
  let refusing = false;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((c) => {
    if (refusing) {
      c.destroy();
      return;
    }
    const up = net.connect(Number(u.port || 6379), u.hostname);
    sockets.add(c);
    sockets.add(up);
    c.on('data', (d) => {
      if (!cut) up.write(d);
    });
    up.on('data', (d) => {
      if (!cut) c.write(d);
    });
    const end = () => {
      c.destroy();
      up.destroy();
    };
    c.on('error', end).on('close', end);
    up.on('error', end).on('close', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `redis://127.0.0.1:${port}`,
    partition(on: boolean) {
      cut = on;
    },
    /** Close new connections at once (the engine looks down to a reconnecting client). */
    refuse(on: boolean) {
      refusing = on;
    },
    /** The engine goes away: open connections are cut and new ones refused. */
    down() {
      refusing = true;
      for (const s of sockets) s.destroy();
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
