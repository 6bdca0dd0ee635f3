import { z } from 'zod';
import { Cache } from '../../cache/index.js';
import { errorMessage } from '../../core/errors.js';
import { importOptional } from '../../core/optional-dependency.js';
import type { EngineStatus, PlatformFeature } from '../feature.js';
import { NotFoundError, parseInput } from '../http-errors.js';
import type { CatalogService, Course } from './catalog.js';

const idParam = z.object({ id: z.string().uuid() });

/**
 * Course details read through cache-aside: L1 in process (W-TinyLFU), plus Redis L2, an
 * invalidation bus and a stampede lock when CDP_REDIS_URL is set. The catalog's update hook
 * invalidates a course, so a read after an update never returns the old row. Starts after the
 * catalog feature.
 */
export const cacheFeature: PlatformFeature = {
  name: 'cache',
  description: 'Course details through cache-aside (L1 + optional Redis L2 with invalidation bus)',
  docs: ['docs/patterns/cache-aside.md'],
  async start(ctx) {
    const catalog = ctx.services.get('catalog') as CatalogService | undefined;
    if (!catalog) throw new Error('the cache feature needs the catalog feature to start first');
    const url = ctx.config.redisUrl;
    let tiers: Partial<ConstructorParameters<typeof Cache<Course>>[0]> = {};
    let redis: { ping(): Promise<unknown> } | undefined;
    if (url) {
      const { openRedisTier } = await importOptional(
        'redis',
        'the Redis cache tier',
        () => import('./redis-tier.js'),
      );
      const tier = await openRedisTier<Course>(url, ctx.logger);
      ctx.lifecycle.defer('cache redis', async () => {
        await tier.client.close();
      });
      redis = tier.client;
      tiers = { l2: tier.l2, bus: tier.bus, lock: tier.lock };
    }
    const cache = await new Cache<Course>({
      name: 'courses',
      namespace: 'courses',
      l1: { maxEntries: 10_000 },
      ttlMs: 5 * 60_000,
      staleIfErrorMs: 30 * 60_000,
      negativeTtlMs: 5_000,
      clock: ctx.clock,
      logger: ctx.logger,
      registry: ctx.registry,
      ...tiers,
    }).start();
    ctx.lifecycle.use('course cache', cache);
    // GET /api/catalog/courses/:id now reads through the cache; an update invalidates the course
    // here and, over the bus, in every other instance's L1.
    catalog.readThrough((id, load) => cache.getOrLoad(id, load));
    catalog.onChange.add((id) => cache.delete(id));

    ctx.http.get('/api/cache/courses/:id', async (req) => {
      const { id } = parseInput(idParam, req.params, 'path');
      const course = await catalog.read(id);
      if (!course) throw new NotFoundError(`course ${id}`);
      return course;
    });
    ctx.http.get('/api/cache/stats', async () => cache.stats());

    return {
      service: cache,
      health: async (): Promise<EngineStatus[]> => {
        if (!redis) return [];
        const t0 = performance.now();
        try {
          await redis.ping();
          return [
            {
              role: 'cache L2 + bus',
              engine: 'redis',
              ok: true,
              latencyMs: Math.round((performance.now() - t0) * 100) / 100,
            },
          ];
        } catch (err) {
          return [
            { role: 'cache L2 + bus', engine: 'redis', ok: false, detail: errorMessage(err) },
          ];
        }
      },
      panel: () => {
        const s = cache.stats();
        return {
          id: 'cache',
          title: 'Course cache (cache-aside)',
          stats: [
            { label: 'hit ratio', value: Math.round(s.hitRatio * 1000) / 10, unit: '%' },
            { label: 'hits', value: s.hits },
            { label: 'misses', value: s.misses },
            { label: 'loads', value: s.loads },
            { label: 'L1 entries', value: s.l1.size },
            { label: 'L2 errors', value: s.l2Errors },
          ],
          table: {
            columns: ['eviction cause', 'count'],
            rows: Object.entries(s.l1.evictions).map(([cause, n]) => [cause, n]),
          },
          docs: 'docs/patterns/cache-aside.md',
        };
      },
    };
  },
};
