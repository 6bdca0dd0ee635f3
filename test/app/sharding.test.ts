import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ShardingService } from '../../src/app/features/sharding.js';
import { startPlatform } from '../../src/app/platform.js';
import { loadConfig } from '../../src/core/config.js';
import { silentLogger } from '../../src/core/logger.js';
import type { IndexTables, MoveRecord, ShardMover } from '../../src/sharding/index.js';
import { eventually } from '../../src/testing/index.js';
import { type Client, codeOf, startClient } from './support.js';

type Service = ShardingService & { indexes: IndexTables; mover: ShardMover };

interface Status {
  version: number;
  slotCount: number;
  shards: { id: string; slots: number; rows: Record<string, number> }[];
  move: MoveRecord | null;
}

describe('the platform shards enrollments, students and the course directory', () => {
  let c: Client;
  let admin: string;
  let viewer: string;
  let svc: Service;
  beforeAll(async () => {
    c = await startClient();
    admin = await c.key('admin', 'shard-admin');
    viewer = await c.key('viewer', 'shard-viewer');
    svc = c.platform.services.get('sharding') as Service;
  }, 180_000);
  afterAll(() => c?.close());

  const status = async () =>
    (await c.call('GET', '/api/sharding/status', { key: viewer })).body as Status;

  it('spreads the slots over two embedded shards and keeps an enrollment on its student’s shard', async () => {
    const s = await status();
    expect(s.shards.map((x) => x.id)).toEqual(['s1', 's2']);
    expect(s.shards.reduce((a, x) => a + x.slots, 0)).toBe(s.slotCount);
    const course = await c.course('Shard Teacher');
    const key = await c.key('student', 'sharded-ann');
    const r = await c.call('POST', '/api/enrollment/enrollments', {
      key,
      body: { course: course.id },
    });
    expect(r.status).toBe(202);
    const home = svc.router.route('sharded-ann').shard;
    const other = svc.router.shardIds().find((x) => x !== home)!;
    const on = async (shard: string) =>
      (
        await svc.router
          .client(shard)
          .query('SELECT announced FROM app_enrollments WHERE student = $1', ['sharded-ann'])
      ).rows;
    expect(await on(home)).toEqual([{ announced: true }]);
    expect(await on(other)).toEqual([]);
    const again = await c.call('POST', '/api/enrollment/enrollments', {
      key,
      body: { course: course.id },
    });
    expect(codeOf(again)).toBe('ALREADY_ENROLLED');
  });

  it('announces an enrollment left unannounced (a crash between the two commits) exactly once', async () => {
    const course = await c.course('Sweep Teacher');
    expect(await svc.enrollments.record('swept-bo', course.id)).toBe(true);
    expect(await svc.enrollments.sweep(0)).toBeGreaterThanOrEqual(1);
    expect(await svc.enrollments.sweep(0)).toBe(0);
    const { rows } = await c.platform.sql.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM cdp_message_log WHERE type = 'enrollment.requested' AND key LIKE '8:swept-bo%'",
    );
    expect(rows[0]!.n).toBe(1);
    const ann = await c.platform.sql.query(
      'SELECT event_id FROM app_enrollment_announcements WHERE student = $1',
      ['swept-bo'],
    );
    expect(ann.rows).toHaveLength(1);
    expect(await svc.enrollments.isEnrolled('swept-bo', course.id)).toBe(true);
  });

  it('finds students by email through the unique index table, refusing a taken email', async () => {
    const ann = await c.key('student', 'idx-ann');
    const bob = await c.key('student', 'idx-bob');
    const put = (key: string, id: string, email: string) =>
      c.call('PUT', `/api/sharding/students/${id}`, { key, body: { email, name: id } });
    expect((await put(ann, 'idx-ann', 'ann@example.com')).status).toBe(200);
    expect(codeOf(await put(bob, 'idx-bob', 'ann@example.com'))).toBe('EMAIL_TAKEN');
    expect((await put(bob, 'idx-ann', 'x@example.com')).status).toBe(403);
    // The index row is written in the profile's transaction when both sit on one shard, else
    // by the index queue's next drain (every 200 ms): wait for it.
    const found = await eventually(async () => {
      const r = await c.call('GET', '/api/sharding/students?email=ann%40example.com', {
        key: viewer,
      });
      return (r.body as { students: unknown[] }).students.length > 0 ? r : undefined;
    }, 'ann in the students_by_email index');
    expect(found.body).toEqual({
      students: [{ id: 'idx-ann', email: 'ann@example.com', name: 'idx-ann' }],
    });
    const bad = await c.call('GET', '/api/sharding/students?email=nope', { key: viewer });
    expect(bad.status).toBe(400);
  });

  it("lists an instructor's courses from the index table", async () => {
    const course = await c.course('Index Instructor');
    await eventually(async () => {
      const r = await c.call(
        'GET',
        `/api/sharding/instructors/${encodeURIComponent('Index Instructor')}/courses`,
      );
      return (r.body as { courses: { id: string }[] }).courses.some((x) => x.id === course.id);
    }, 'the new course in courses_by_instructor');
  });

  it('checks an index table, finds a missing row and repairs it', async () => {
    const key = await c.key('student', 'idx-cid');
    await c.call('PUT', '/api/sharding/students/idx-cid', {
      key,
      body: { email: 'cid@example.com', name: 'Cid' },
    });
    await eventually(
      async () => (await svc.indexes.lookup('students_by_email', 'cid@example.com')).length === 1,
      'the index row',
    );
    const where = svc.router.map.routeHashed('cid@example.com').shard;
    await svc.router
      .client(where)
      .query('DELETE FROM students_by_email WHERE value = $1', ['cid@example.com']);
    const check = await c.call('GET', '/api/sharding/indexes/students_by_email/check', {
      key: viewer,
    });
    expect(check.body).toMatchObject({ missing: 1, extra: 0, stale: 0 });
    const repair = await c.call('POST', '/api/sharding/indexes/students_by_email/repair', {
      key: admin,
    });
    expect(repair.body).toMatchObject({ missing: 1 });
    const after = await c.call('GET', '/api/sharding/indexes/students_by_email/check', {
      key: viewer,
    });
    expect(after.body).toMatchObject({ missing: 0, extra: 0, stale: 0 });
    expect((await c.call('GET', '/api/sharding/indexes/nope/check', { key: viewer })).status).toBe(
      400,
    );
  });

  it('moves a slot with its enrollments, refusing a second move while one runs', async () => {
    const course = await c.course('Move Teacher');
    const key = await c.key('student', 'mover-dee');
    await c.call('POST', '/api/enrollment/enrollments', { key, body: { course: course.id } });
    const { unit, shard } = svc.router.route('mover-dee');
    const target = svc.router.shardIds().find((x) => x !== shard)!;
    const slot = Number(unit.slice('slot:'.length));
    // A planned move holds the map: another is refused, naming it.
    const another = svc.router.map
      .unitsByShard()
      .get(shard)!
      .find((u) => u !== unit)!;
    const held = await svc.mover.plan(another, target);
    const refused = await c.call('POST', '/api/sharding/moves', {
      key: admin,
      body: { slot, target },
    });
    expect(refused.status).toBe(409);
    expect(codeOf(refused)).toBe('SHARD_MOVE_IN_PROGRESS');
    expect((refused.body as { error: { message: string } }).error.message).toContain(held.id);
    await svc.mover.rollback(held.id);
    const started = await c.call('POST', '/api/sharding/moves', {
      key: admin,
      body: { slot, target },
    });
    expect(started.status).toBe(202);
    const id = (started.body as MoveRecord).id;
    let move: MoveRecord | undefined;
    await eventually(async () => {
      move = (await c.call('GET', `/api/sharding/moves/${id}`, { key: viewer })).body as MoveRecord;
      return move.phase === 'done';
    }, 'the move done');
    expect(move!.rowsCopied).toBeGreaterThanOrEqual(1);
    await eventually(async () => svc.router.route('mover-dee').shard === target, 'the new map');
    expect(await svc.enrollments.isEnrolled('mover-dee', course.id)).toBe(true);
    expect((await status()).move?.id).toBe(id);
    const same = await c.call('POST', '/api/sharding/moves', {
      key: admin,
      body: { slot, target },
    });
    expect(codeOf(same)).toBe('SHARD_MAP_INVALID');
    expect((await c.call('GET', '/api/sharding/moves/nope', { key: viewer })).status).toBe(404);
  });

  it('counts routed transactions per slot in the catalog database and shows a hot slot', async () => {
    for (let i = 0; i < 400; i++)
      await svc.router.query('hot-student', 'SELECT 1 FROM app_students WHERE id = $1', [
        'hot-student',
      ]);
    const unit = svc.router.route('hot-student').unit;
    const s = (await c.call('GET', '/api/sharding/status', { key: viewer })).body as {
      hotSlots: { unit: string; count: number; suggestion: string }[];
    };
    const hot = s.hotSlots.find((h) => h.unit === unit);
    expect(hot?.count).toBeGreaterThanOrEqual(400);
    expect(hot?.suggestion).toContain('move');
    const { rows } = await c.platform.sql.query<{ n: string | number }>(
      'SELECT transactions AS n FROM app_shard_unit_counts WHERE map = $1 AND unit = $2',
      ['marketplace', unit],
    );
    expect(Number(rows[0]!.n)).toBe(hot!.count);
  });

  it('plans adding a shard only for a URL that parses and answers', async () => {
    const bad = await c.call('POST', '/api/sharding/plans', {
      key: admin,
      body: { add: 'not a url' },
    });
    expect(bad.status).toBe(422);
    expect((bad.body as { error: { message: string } }).error.message).toContain('not a url');
    const down = await c.call('POST', '/api/sharding/plans', {
      key: admin,
      body: { add: 'postgres://postgres@127.0.0.1:1/none' },
    });
    expect(codeOf(down)).toBe('SHARD_UNAVAILABLE');
    expect((down.body as { error: { message: string } }).error.message).toContain('127.0.0.1:1');
  });

  it('shows a sharding panel with hints and charts, and its demonstration loses no write', async () => {
    const r = await c.call('GET', '/api/panels');
    const p = (
      r.body as {
        panels: { id: string; stats: { label: string; hint?: string }[]; charts?: unknown[] }[];
      }
    ).panels.find((x) => x.id === 'sharding')!;
    expect(p.stats.map((s) => s.label)).toEqual(
      expect.arrayContaining(['slots on s1', 'rows on s2', 'move', 'move progress', 'index lag']),
    );
    expect(p.stats.every((s) => s.hint)).toBe(true);
    expect(p.charts?.length).toBeGreaterThan(0);
    const demo = await c.call('POST', '/api/demos/sharding-move-under-writes', { key: admin });
    expect(demo.status).toBe(200);
    const result = demo.body as { ok: boolean; figures: { label: string; value: number }[] };
    expect(result.ok).toBe(true);
    expect(result.figures.find((f) => f.label === 'lost writes')?.value).toBe(0);
    expect(result.figures.find((f) => f.label === 'writes acknowledged')?.value).toBeGreaterThan(0);
  });
});

describe('CDP_SHARD_URLS', () => {
  it('refuses a URL that does not parse, naming it', () => {
    expect(() =>
      loadConfig({ CDP_SHARD_URLS: 'postgres://a@127.0.0.1:5441/x,http//oops' }),
    ).toThrow(/CDP_SHARD_URLS.*http\/\/oops/);
  });

  it('stops the start when a shard does not answer, naming it', async () => {
    await expect(
      startPlatform({
        config: loadConfig({
          CDP_DATA_DIR: 'memory://',
          CDP_PORT: '0',
          CDP_SHARD_URLS: 'postgres://postgres@127.0.0.1:1/nothing',
        }),
        logger: silentLogger(),
      }),
    ).rejects.toThrow(/shard s1 at postgres:\/\/postgres@127.0.0.1:1\/nothing does not answer/);
  });
});
