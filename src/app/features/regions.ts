import { join } from 'node:path';
import { z } from 'zod';
import { errorMessage } from '../../core/errors.js';
import { migrate } from '../../engines/sql/migrations.js';
import { PgliteSqlClient } from '../../engines/sql/pglite-sql-client.js';
import type { SqlClient } from '../../engines/sql/sql-client.js';
import { MemoryBroker, messagingMigrations } from '../../messaging/index.js';
import {
  multiMasterMigrations,
  orSetType,
  pnCounterType,
  RegionReplica,
} from '../../replication/index.js';
import { documented, examples, refusal } from '../api-docs.js';
import { multiMasterPartitionDemo } from '../demos/multi-master-partition.js';
import type { PlatformFeature } from '../feature.js';
import { ForbiddenError, parseInput } from '../http-errors.js';
import type { CatalogService } from './catalog.js';

/**
 * Multi-master across two regions: each region is its own database (an embedded PGlite here;
 * a PostgreSQL server in that region in a real deployment) and accepts writes. A student's
 * wishlist is an OR-Set and a course's view count a PN-Counter; the regions exchange deltas
 * through their outboxes and the broker, and anti-entropy repairs what a lost message missed.
 */

const REGIONS = ['eu', 'us'] as const;
const GROUP = 'marketplace';

const regionQuery = z.object({
  region: z.enum(REGIONS).default('eu').describe('The region whose database serves the request'),
});
const wishlistItemParams = z.object({
  id: z.string().min(1).max(120),
  courseId: z.string().uuid(),
});
const studentParams = z.object({ id: z.string().min(1).max(120) });
const courseParams = z.object({ id: z.string().uuid() });
const wishlist = z.object({
  student: z.string(),
  region: z.enum(REGIONS),
  courses: z.array(z.string()),
});
const views = z.object({ courseId: z.string(), region: z.enum(REGIONS), views: z.number().int() });

const notThem = refusal(
  403,
  'FORBIDDEN',
  `this key acts as student "someone-else", not as "${examples.student}"`,
);
const noCourse = refusal(404, 'COURSE_NOT_FOUND', `course ${examples.courseId} was not found`);
const wishlistExample = { student: examples.student, region: 'eu', courses: [examples.courseId] };

export const regionsFeature: PlatformFeature = {
  name: 'regions',
  description:
    'Multi-master across two regions: wishlists as OR-Sets and view counts as PN-Counters, each region its own database, synchronised through outbox, broker and inbox, repaired by anti-entropy',
  docs: ['docs/patterns/multi-master.md'],
  async start({ config, clock, logger, lifecycle, http, auth, services }) {
    const dataDir = config.database.kind === 'pglite' ? config.database.dataDir : undefined;
    // The regions' databases start in the background (PGlite takes seconds); requests wait.
    const setup = (async () => {
      const broker = await MemoryBroker.open({ clock, logger });
      const dbs: SqlClient[] = [];
      const replicas: RegionReplica[] = [];
      try {
        for (const region of REGIONS) {
          const sql = await PgliteSqlClient.open(
            dataDir ? { dataDir: join(dataDir, `region-${region}`) } : {},
          );
          dbs.push(sql);
          await migrate(sql, [...messagingMigrations, ...multiMasterMigrations]);
          replicas.push(
            await RegionReplica.open({
              sql,
              broker,
              region,
              group: GROUP,
              types: [orSetType, pnCounterType],
              antiEntropyIntervalMs: 5000,
              relayPollIntervalMs: 500,
              clock,
              logger,
            }),
          );
        }
      } catch (err) {
        for (const r of replicas) await r.close();
        for (const d of dbs) await d.close();
        await broker.close();
        throw err;
      }
      return { broker, dbs, replicas };
    })();
    setup.catch((err) => logger.error({ err: errorMessage(err) }, 'regions could not start'));
    lifecycle.defer('regions', async () => {
      const opened = await setup.catch(() => undefined);
      if (!opened) return;
      for (const r of opened.replicas) await r.close();
      await opened.broker.close();
      for (const d of opened.dbs) await d.close();
    });
    const replica = async (region: (typeof REGIONS)[number]) =>
      (await setup).replicas[REGIONS.indexOf(region)]!;
    const catalog = () => services.get('catalog') as CatalogService;

    const mayActFor = (by: { role: string; subject: string }, student: string) => {
      if (by.role === 'student' && by.subject !== student)
        throw new ForbiddenError(`this key acts as student "${by.subject}", not as "${student}"`);
    };
    const readWishlist = async (region: (typeof REGIONS)[number], student: string) => {
      const got = await (await replica(region)).read(`wishlist:${student}`);
      return { student, region, courses: (got?.value as string[] | undefined) ?? [] };
    };

    const wishlistChange = (action: 'add' | 'remove') =>
      documented({
        summary:
          action === 'add' ? 'Add a course to a wishlist' : 'Remove a course from a wishlist',
        description:
          action === 'add'
            ? "Adds the course to the student's wishlist in the region's own database (an OR-Set); the change reaches the other region through the outbox and the broker. An add made concurrently with a remove in the other region wins."
            : "Removes the course from the student's wishlist in the region's own database: the adds this region has seen are removed; an add the other region made concurrently, not yet seen here, survives (add wins).",
        tags: ['multi-master'],
        roles: ['student'],
        access: 'A student changes only their own wishlist.',
        params: wishlistItemParams,
        query: regionQuery,
        responses: {
          200: {
            description: 'The wishlist in that region after the change',
            schema: wishlist,
            example: wishlistExample,
          },
        },
        errors: action === 'add' ? [notThem, noCourse] : [notThem],
      });

    http.post(
      '/api/regions/students/:id/wishlist/:courseId',
      wishlistChange('add'),
      async (req) => {
        const by = await auth.require(req, 'student');
        const { id, courseId } = parseInput(wishlistItemParams, req.params, 'path');
        mayActFor(by, id);
        const { region } = parseInput(regionQuery, req.query, 'query');
        await catalog().require(courseId);
        const courses = await (await replica(region)).update(`wishlist:${id}`, orSetType, (s) =>
          s.add(courseId),
        );
        return { student: id, region, courses };
      },
    );
    http.delete(
      '/api/regions/students/:id/wishlist/:courseId',
      wishlistChange('remove'),
      async (req) => {
        const by = await auth.require(req, 'student');
        const { id, courseId } = parseInput(wishlistItemParams, req.params, 'path');
        mayActFor(by, id);
        const { region } = parseInput(regionQuery, req.query, 'query');
        const courses = await (await replica(region)).update(`wishlist:${id}`, orSetType, (s) =>
          s.remove(courseId),
        );
        return { student: id, region, courses };
      },
    );
    http.get(
      '/api/regions/students/:id/wishlist',
      documented({
        summary: "A student's wishlist as one region sees it",
        description:
          "Reads the wishlist from the region's own database. Right after a change in the other region it may not show it yet (replication is asynchronous); both regions converge once the delta or anti-entropy arrives.",
        tags: ['multi-master'],
        roles: ['student', 'viewer'],
        access: 'A student reads only their own wishlist.',
        params: studentParams,
        query: regionQuery,
        responses: {
          200: { description: 'The wishlist', schema: wishlist, example: wishlistExample },
        },
        errors: [notThem],
      }),
      async (req) => {
        const by = await auth.require(req, 'student', 'admin', 'viewer');
        const { id } = parseInput(studentParams, req.params, 'path');
        mayActFor(by, id);
        const { region } = parseInput(regionQuery, req.query, 'query');
        return readWishlist(region, id);
      },
    );
    http.post(
      '/api/regions/courses/:id/views',
      documented({
        summary: 'Count a view of a course',
        description:
          "Adds one view to the course's counter (a PN-Counter) in the region's own database; the regions' counts add up as they synchronise, and no view is counted twice however often a message is delivered.",
        tags: ['multi-master'],
        params: courseParams,
        query: regionQuery,
        responses: {
          200: {
            description: 'The count in that region after the view',
            schema: views,
            example: { courseId: examples.courseId, region: 'eu', views: 42 },
          },
        },
        errors: [noCourse],
      }),
      async (req) => {
        const { id } = parseInput(courseParams, req.params, 'path');
        const { region } = parseInput(regionQuery, req.query, 'query');
        await catalog().require(id);
        const n = await (await replica(region)).update(`views:${id}`, pnCounterType, (c) =>
          c.increment(),
        );
        return { courseId: id, region, views: n };
      },
    );
    http.get(
      '/api/regions/courses/:id/views',
      documented({
        summary: "A course's view count as one region sees it",
        description: "Reads the course's view counter from the region's own database.",
        tags: ['multi-master'],
        params: courseParams,
        query: regionQuery,
        responses: {
          200: {
            description: 'The count',
            schema: views,
            example: { courseId: examples.courseId, region: 'us', views: 41 },
          },
        },
      }),
      async (req) => {
        const { id } = parseInput(courseParams, req.params, 'path');
        const { region } = parseInput(regionQuery, req.query, 'query');
        const got = await (await replica(region)).read(`views:${id}`);
        return { courseId: id, region, views: (got?.value as number | undefined) ?? 0 };
      },
    );

    return {
      service: { replica, readWishlist },
      demos: [multiMasterPartitionDemo(async () => (await setup).replicas)],
      panel: async () => {
        const { replicas } = await setup;
        const stats = replicas.map((r) => r.stats());
        const sum = (
          k:
            | 'conflictsResolved'
            | 'repairs'
            | 'messagesSent'
            | 'dropped'
            | 'antiEntropyRounds'
            | 'updates',
        ) => stats.reduce((a, s) => a + s[k], 0);
        const lists = await Promise.all(replicas.map((r) => r.list()));
        const digests = lists.map((l) => JSON.stringify(l.map((o) => [o.key, o.digest])));
        const inSync = digests.every((d) => d === digests[0]);
        return {
          id: 'multi-master',
          title: 'Multi-master regions (OR-Set wishlists, PN-Counter views)',
          stats: [
            {
              label: 'conflicts resolved',
              value: sum('conflictsResolved'),
              hint: 'Updates made concurrently in both regions (neither had seen the other) that the CRDT join merged without losing either',
            },
            {
              label: 'anti-entropy repairs',
              value: sum('repairs'),
              hint: 'Objects that the periodic digest exchange found different and repaired: what lost messages had missed',
            },
            {
              label: 'sync messages',
              value: sum('messagesSent'),
              hint: 'Messages the regions sent each other: deltas from the outboxes, digests and states of anti-entropy',
            },
            {
              label: 'messages lost',
              value: sum('dropped'),
              hint: 'Messages lost while a region was cut off (the demonstration cuts the link on purpose)',
            },
            {
              label: 'local updates',
              value: sum('updates'),
              hint: 'Writes accepted by either region, each committed with its delta in that region’s outbox',
            },
            {
              label: 'regions in sync',
              value: inSync ? 'yes' : 'no',
              hint: 'Whether every object has the same state digest in both regions right now; "no" lasts until the next delta or anti-entropy round',
            },
            ...replicas.map((r, i) => ({
              label: `objects in ${r.region}`,
              value: lists[i]!.length,
              hint: `Wishlists and view counters held in region ${r.region}'s own database${r.partitioned ? ' (cut off now)' : ''}`,
            })),
          ],
          charts: [
            {
              title: 'Sync traffic',
              stats: ['sync messages', 'messages lost'],
              hint: 'Deltas and anti-entropy messages between the regions, and those a partition lost.',
            },
            {
              title: 'Conflicts and repairs',
              stats: ['conflicts resolved', 'anti-entropy repairs'],
              hint: 'Concurrent updates merged by the CRDTs, and objects anti-entropy repaired after lost messages.',
            },
          ],
          table: {
            columns: [
              'region',
              'updates',
              'deltas applied',
              'duplicates',
              'anti-entropy rounds',
              'repairs',
            ],
            rows: stats.map((s) => [
              s.region,
              s.updates,
              s.deltasApplied,
              s.duplicates,
              s.antiEntropyRounds,
              s.repairs,
            ]),
          },
          docs: 'docs/patterns/multi-master.md',
        };
      },
    };
  },
};
