import { z } from 'zod';
import { Cache } from '../../cache/index.js';
import { errorMessage } from '../../core/errors.js';
import { documented, examples, refusal } from '../api-docs.js';
import { cacheStampedeDemo } from '../demos/cache-stampede.js';
import type { EngineStatus, PlatformFeature } from '../feature.js';
import { NotFoundError, parseInput } from '../http-errors.js';
import { type CatalogService, type Course, courseSchema, exampleCourse } from './catalog.js';

const idParam = z.object({ id: z.string().uuid() });
const count = z.number().int();

const docs = {
  course: documented({
    summary: 'Read a course through the cache',
    description:
      'The same course as GET /api/catalog/courses/{id}, through cache-aside: L1 in process, plus Redis L2 and an invalidation bus when CDP_REDIS_URL is set. Concurrent misses of one course load it once.',
    tags: ['cache'],
    params: idParam,
    responses: { 200: { description: 'The course', schema: courseSchema, example: exampleCourse } },
    errors: [refusal(404, 'NOT_FOUND', `course ${examples.courseId} was not found`)],
  }),
  stats: documented({
    summary: "The course cache's counters",
    description:
      'Hits, misses, the hit ratio (0 to 1), loads, stale values served, L2 errors, and the L1 store (size, evictions by cause), since start.',
    tags: ['cache'],
    responses: {
      200: {
        description: 'The counters',
        schema: z.looseObject({
          hits: count,
          misses: count,
          hitRatio: z.number().min(0).max(1),
          loads: count,
          loadErrors: count,
          staleServed: count,
          l2Errors: count,
          lockFallbacks: count,
          fillsRefused: count,
          l1: z.looseObject({ size: count }),
        }),
        example: {
          hits: 120,
          misses: 8,
          hitRatio: 0.9375,
          loads: 8,
          loadErrors: 0,
          staleServed: 0,
          l2Errors: 0,
          lockFallbacks: 0,
          fillsRefused: 0,
          l1: { size: 5, evictions: {} },
        },
      },
    },
  }),
};

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
      // Loaded only with CDP_REDIS_URL: the cache's Redis entry names `redis` if it is missing.
      const { openRedisTier } = await import('./redis-tier.js');
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

    ctx.http.get('/api/cache/courses/:id', docs.course, async (req) => {
      const { id } = parseInput(idParam, req.params, 'path');
      const course = await catalog.read(id);
      if (!course) throw new NotFoundError(`course ${id}`);
      return course;
    });
    ctx.http.get('/api/cache/stats', docs.stats, async () => cache.stats());

    return {
      service: cache,
      demos: [
        cacheStampedeDemo(
          cache,
          async () => (await catalog.list({ limit: 1 }))[0] ?? exampleCourse,
        ),
      ],
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
            {
              label: 'hit ratio',
              value: Math.round(s.hitRatio * 1000) / 10,
              unit: '%',
              hint: 'Share of reads answered from the cache without asking the database, since start.',
            },
            { label: 'hits', value: s.hits, hint: 'Reads answered from L1 or L2.' },
            { label: 'misses', value: s.misses, hint: 'Reads that found nothing in any tier.' },
            {
              label: 'loads',
              value: s.loads,
              hint: 'Database reads made to fill the cache: concurrent misses of one key share one load, so this stays at or below misses.',
            },
            { label: 'L1 entries', value: s.l1.size, hint: 'Courses held in this process.' },
            {
              label: 'L2 errors',
              value: s.l2Errors,
              hint: 'Redis calls that failed; the cache then reads the database instead of failing.',
            },
          ],
          charts: [
            {
              title: 'Hit ratio',
              stats: ['hit ratio'],
              unit: '%',
              hint: 'Rises as repeated reads are served from memory; drops after updates invalidate entries.',
            },
            {
              title: 'Misses and loads',
              stats: ['misses', 'loads'],
              hint: 'Loads below misses means concurrent misses of a key were collapsed into one load.',
            },
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
