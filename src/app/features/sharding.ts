import { errorMessage } from '../../core/errors.js';
import { openSql } from '../../engines/sql/open.js';
import {
  countRowsByUnit,
  findHotUnits,
  IndexTables,
  MoveInProgressError,
  type MoveRecord,
  parseShardUrl,
  planRebalance,
  ShardMapError,
  ShardMover,
  ShardRouter,
  ShardUnavailableError,
  shardingMigrations,
  UniqueIndexViolationError,
} from '../../sharding/index.js';
import type { PlatformFeature } from '../feature.js';
import {
  ForbiddenError,
  NotFoundError,
  parseInput,
  quote,
  RequestRefusedError,
} from '../http-errors.js';
import { openMoveDemo } from '../sharding/demo.js';
import {
  shardingDocs as docs,
  emailQuery,
  indexParam,
  instructorParam,
  moveBody,
  moveParam,
  planBody,
  studentBody,
  studentParam,
} from '../sharding/docs.js';
import { ShardedEnrollments } from '../sharding/enrollments.js';
import { shardingAppMigrations } from '../sharding/migrations.js';
import { shardingPanel } from '../sharding/panel.js';
import { installMarketplaceMap, MARKETPLACE_MAP, openShards } from '../sharding/shards.js';
import type { CatalogService, Course } from './catalog.js';

/** What the sharding feature gives the features started after it. */
export interface ShardingService {
  router: ShardRouter;
  enrollments: ShardedEnrollments;
}

const INDEXES = [
  {
    name: 'courses_by_instructor',
    baseTable: 'app_course_directory',
    baseKey: 'id',
    column: 'instructor',
    mode: 'denormalized' as const,
  },
  {
    name: 'students_by_email',
    baseTable: 'app_students',
    baseKey: 'id',
    column: 'email',
    mode: 'partial' as const,
    columns: ['id', 'name'],
    unique: true,
  },
];

/** Sharding errors a caller can act on, as HTTP refusals. */
function refusalOf(err: unknown): unknown {
  if (err instanceof MoveInProgressError)
    return new RequestRefusedError(err.code, 409, err.message);
  if (err instanceof ShardUnavailableError || err instanceof ShardMapError)
    return new RequestRefusedError(err.code, 422, err.message);
  return err;
}

export const shardingFeature: PlatformFeature = {
  name: 'sharding',
  description:
    'Enrollments, student profiles and a course directory sharded by key over several databases, with online slot moves and index tables',
  docs: ['docs/patterns/sharding.md', 'docs/patterns/index-table.md'],
  migrations: [...shardingMigrations, ...shardingAppMigrations],
  async start(ctx) {
    const { sql, logger, registry, http, lifecycle, config, clock } = ctx;
    const opened = await openShards(config, logger);
    lifecycle.defer('shards', () => opened.close());
    // Embedded shards in memory live and die with this process, and so does their map: it is
    // kept on the first shard, never in a database that outlives them or that other processes
    // (each with shards of its own) share.
    const mapSql =
      config.shards.kind === 'pglite' && config.shards.dataDir === undefined
        ? opened.shards.s1!
        : sql;
    await installMarketplaceMap(mapSql, opened);
    const router = await ShardRouter.open({
      catalog: mapSql,
      map: MARKETPLACE_MAP,
      shards: opened.shards,
      clock,
      registry,
    });
    lifecycle.defer('shard router', () => router.close());
    for (const id of router.shardIds()) {
      if (!opened.shards[id])
        throw new ShardMapError(
          `the stored map "${MARKETPLACE_MAP}" has shard "${id}" but CDP_SHARD_URLS gives only ${Object.keys(opened.shards).length}: give every shard's URL, in the order they were added`,
        );
    }
    let progress: MoveRecord | undefined;
    const mover = new ShardMover({
      catalog: mapSql,
      map: MARKETPLACE_MAP,
      shards: opened.shards,
      clock,
      onProgress: (m) => {
        progress = m;
      },
    });
    let moving: Promise<unknown> | undefined;
    const runMove = (id: string) => {
      moving = mover
        .run(id)
        .catch((err) => logger.warn({ err: errorMessage(err), move: id }, 'shard move failed'))
        .finally(() => {
          moving = undefined;
        });
    };
    lifecycle.defer('shard move', async () => {
      await moving;
    });
    // A move interrupted by a crash continues (or rolls back) now.
    const interrupted = await mover.running();
    if (interrupted) runMove(interrupted.id);

    const indexes = new IndexTables(router, INDEXES, { clock, registry });
    await indexes.install();
    const stopDrain = new AbortController();
    const drainLoop = (async () => {
      while (!stopDrain.signal.aborted) {
        try {
          await clock.sleep(200, stopDrain.signal);
        } catch {
          return;
        }
        await indexes
          .drain()
          .catch((err) => logger.warn({ err: errorMessage(err) }, 'index drain failed'));
      }
    })();
    lifecycle.defer('index drain', async () => {
      stopDrain.abort();
      await drainLoop;
    });

    const enrollments = new ShardedEnrollments(router, sql, clock, logger);
    lifecycle.defer('sharded enrollments', () => enrollments.close());

    // The course directory: the catalog's courses, sharded by course id, indexed by instructor.
    const catalog = ctx.services.get('catalog') as CatalogService | undefined;
    const seen = new Map<string, number>();
    const syncCourse = async (c: Course) => {
      if (seen.get(c.id) === c.version) return;
      await indexes.put('app_course_directory', {
        id: c.id,
        instructor: c.instructor,
        title: c.title,
        topic: c.topic,
        version: c.version,
      });
      seen.set(c.id, c.version);
    };
    const syncCatalog = async () => {
      for (const c of (await catalog?.list({ limit: 1000 })) ?? []) await syncCourse(c);
    };
    await syncCatalog();
    catalog?.onChange.add(async (id) => {
      const c = await catalog.read(id);
      if (c) await syncCourse(c);
    });
    // Routed transactions per slot: the router counts in memory; the increments are added to
    // app_shard_unit_counts every few seconds, so hot-spot detection survives a restart.
    const flushed = new Map<string, number>();
    const flushCounts = async () => {
      const units: string[] = [];
      const deltas: number[] = [];
      for (const [unit, n] of router.unitCounts()) {
        const d = n - (flushed.get(unit) ?? 0);
        if (d > 0) {
          units.push(unit);
          deltas.push(d);
        }
      }
      if (units.length === 0) return;
      await sql.query(
        `INSERT INTO app_shard_unit_counts (map, unit, transactions)
         SELECT $1, u, d FROM unnest($2::text[], $3::bigint[]) AS x(u, d)
         ON CONFLICT (map, unit) DO UPDATE SET transactions = app_shard_unit_counts.transactions + EXCLUDED.transactions`,
        [MARKETPLACE_MAP, units, deltas],
      );
      for (const [i, u] of units.entries()) flushed.set(u, (flushed.get(u) ?? 0) + deltas[i]!);
    };
    const persistedCounts = async () => {
      await flushCounts();
      const { rows } = await sql.query<{ unit: string; n: string | number }>(
        'SELECT unit, transactions AS n FROM app_shard_unit_counts WHERE map = $1',
        [MARKETPLACE_MAP],
      );
      return new Map(rows.map((r) => [r.unit, Number(r.n)]));
    };
    const stopSync = new AbortController();
    const syncLoop = (async () => {
      while (!stopSync.signal.aborted) {
        try {
          await clock.sleep(2_000, stopSync.signal);
        } catch {
          return;
        }
        await syncCatalog().catch((err) =>
          logger.warn({ err: errorMessage(err) }, 'course directory sync failed'),
        );
        await flushCounts().catch((err) =>
          logger.warn({ err: errorMessage(err) }, 'slot counters flush failed'),
        );
      }
    })();
    lifecycle.defer('course directory sync', async () => {
      stopSync.abort();
      await syncLoop;
      await flushCounts().catch(() => {});
    });
    // The demo students' profiles (the email index has something to find from the start).
    for (const [id, email] of [
      ['demo-student-1', 'student1@example.com'],
      ['demo-student-2', 'student2@example.com'],
    ] as const) {
      const [has] = await router.query(id, 'SELECT 1 FROM app_students WHERE id = $1', [id]);
      if (!has)
        await indexes
          .put('app_students', { id, email, name: `Demo student ${id.slice(-1)}` })
          .catch(() => {});
    }

    const status = async () => {
      const state = router.map.state;
      const slots = router.map.unitsByShard();
      const tables = await router.catalog.tables(MARKETPLACE_MAP);
      const shards = [];
      for (const s of state.shards) {
        const rows: Record<string, number> = {};
        for (const t of tables.filter((x) => x.name.startsWith('app_'))) {
          const { rows: r } = await router
            .client(s.id)
            .query<{ n: number }>(`SELECT count(*)::int AS n FROM ${t.name}`);
          rows[t.name] = r[0]!.n;
        }
        shards.push({ id: s.id, location: s.location, slots: slots.get(s.id)?.length ?? 0, rows });
      }
      const running = await mover.running();
      const move = running
        ? progress?.id === running.id && progress.phase === running.phase
          ? progress
          : running
        : ((await mover.list(1))[0] ?? null);
      return {
        map: MARKETPLACE_MAP,
        version: state.version,
        slotCount: state.slotCount,
        shards,
        move,
        indexes: INDEXES.map((d) => ({ name: d.name, lagMs: indexes.lagMs })),
        hotSlots: findHotUnits(await persistedCounts(), 3).slice(0, 5),
      };
    };
    const startMove = async (slot: number, target: string) => {
      if (slot >= router.map.state.slotCount)
        throw new ShardMapError(
          `slot ${slot} does not exist: the map has slots 0 to ${router.map.state.slotCount - 1}`,
        );
      const planned = await mover.plan(`slot:${slot}`, target);
      runMove(planned.id);
      return planned;
    };

    http.get('/api/sharding/status', docs.status, async (req) => {
      await ctx.auth.require(req, 'viewer');
      return status();
    });
    http.post('/api/sharding/plans', docs.plan, async (req) => {
      await ctx.auth.require(req);
      const { add } = parseInput(planBody, req.body, 'body');
      try {
        parseShardUrl(add);
      } catch (err) {
        throw refusalOf(err);
      }
      const id = `s${router.shardIds().length + 1}`;
      let probe: Awaited<ReturnType<typeof openSql>> | undefined;
      try {
        probe = await openSql({ kind: 'postgres', url: add }, { max: 1 });
        await probe.ping();
      } catch (err) {
        throw new RequestRefusedError(
          'SHARD_UNAVAILABLE',
          422,
          `shard URL ${quote(add)} does not answer (${errorMessage(err)}); nothing was planned`,
        );
      } finally {
        await probe?.close().catch(() => {});
      }
      const state = router.map.state;
      const rows = await countRowsByUnit(mapSql, MARKETPLACE_MAP, opened.shards);
      const plan = planRebalance(
        { ...state, shards: [...state.shards, { id, location: add }] },
        rows,
      );
      return { shard: id, location: add, ...plan };
    });
    http.post('/api/sharding/moves', docs.startMove, async (req, reply) => {
      await ctx.auth.require(req);
      const body = parseInput(moveBody, req.body, 'body');
      try {
        return reply.status(202).send(await startMove(body.slot, body.target));
      } catch (err) {
        throw refusalOf(err);
      }
    });
    http.get('/api/sharding/moves/:id', docs.getMove, async (req) => {
      await ctx.auth.require(req, 'viewer');
      const { id } = parseInput(moveParam, req.params, 'path');
      try {
        return await mover.get(id);
      } catch {
        throw new NotFoundError(`move ${quote(id)}`, 'MOVE_NOT_FOUND');
      }
    });
    http.get(
      '/api/sharding/instructors/:instructor/courses',
      docs.coursesByInstructor,
      async (req) => {
        const { instructor } = parseInput(instructorParam, req.params, 'path');
        const rows = await indexes.lookup('courses_by_instructor', instructor);
        return {
          courses: rows.map((r) => ({
            id: String(r.id),
            title: String(r.title),
            topic: String(r.topic),
            instructor: String(r.instructor),
          })),
        };
      },
    );
    http.get('/api/sharding/students', docs.studentByEmail, async (req) => {
      await ctx.auth.require(req, 'viewer');
      const { email } = parseInput(emailQuery, req.query, 'query');
      const found = await indexes.lookup('students_by_email', email);
      const students = [];
      for (const f of found) {
        const [s] = await router.query<{ id: string; email: string | null; name: string }>(
          String(f.id),
          'SELECT id, email, name FROM app_students WHERE id = $1',
          [String(f.id)],
        );
        if (s?.email === email) students.push(s);
      }
      return { students };
    });
    http.put('/api/sharding/students/:id', docs.putStudent, async (req) => {
      const by = await ctx.auth.require(req, 'student');
      const { id } = parseInput(studentParam, req.params, 'path');
      const body = parseInput(studentBody, req.body, 'body');
      if (by.role === 'student' && by.subject !== id)
        throw new ForbiddenError(`a student writes only their own profile (${quote(by.subject)})`);
      try {
        await indexes.put('app_students', { id, email: body.email, name: body.name });
      } catch (err) {
        if (err instanceof UniqueIndexViolationError)
          throw new RequestRefusedError(
            'EMAIL_TAKEN',
            409,
            `email ${quote(body.email)} belongs to another student; nothing was written`,
          );
        throw err;
      }
      return { id, email: body.email, name: body.name };
    });
    http.get('/api/sharding/indexes/:name/check', docs.checkIndex, async (req) => {
      await ctx.auth.require(req, 'viewer');
      const { name } = parseInput(indexParam, req.params, 'path');
      return indexes.check(name);
    });
    http.post('/api/sharding/indexes/:name/repair', docs.repairIndex, async (req) => {
      await ctx.auth.require(req);
      const { name } = parseInput(indexParam, req.params, 'path');
      return indexes.repair(name);
    });

    const demo = openMoveDemo({ router, mover, clock, busy: () => moving !== undefined });
    const service: ShardingService & { indexes: IndexTables; mover: ShardMover } = {
      router,
      enrollments,
      indexes,
      mover,
    };
    return {
      service,
      demos: [demo],
      health: async () =>
        Promise.all(
          router.shardIds().map(async (id) => {
            const started = performance.now();
            const client = router.client(id);
            try {
              await client.ping();
              return {
                role: `shard ${id}`,
                engine: client.engine,
                ok: true,
                latencyMs: Math.round((performance.now() - started) * 100) / 100,
              };
            } catch (err) {
              return {
                role: `shard ${id}`,
                engine: client.engine,
                ok: false,
                detail: errorMessage(err),
              };
            }
          }),
        ),
      panel: async () => shardingPanel(await status()),
    };
  },
};
