import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrollmentFeature } from '../../src/app/features/enrollment.js';
import type { ShardingService } from '../../src/app/features/sharding.js';
import { silentLogger } from '../../src/core/logger.js';
import { migrate } from '../../src/engines/sql/migrations.js';
import { openSql } from '../../src/engines/sql/open.js';
import { type Client, codeOf, startClient } from './support.js';

/** Identifiers (issue 18, point 8): composite keys, and ids that are names of Object's members. */
describe('platform identifiers', () => {
  let c: Client;
  let course: { id: string; topic: string };
  beforeAll(async () => {
    c = await startClient();
    course = await c.course('Ada Park', { priceCents: 100 });
  });
  afterAll(async () => c?.close());

  it('keeps enrollments whose joined ids would collide apart (x:b + c vs x + b:c)', async () => {
    const a = await c.course('Ada Park');
    const b = await c.course('Ada Park');
    // Student ids that join with course ids into the same `${student}:${course}`.
    const s1 = `x:${b.id}`;
    const s2 = 'x';
    const k1 = await c.key('student', s1);
    const k2 = await c.key('student', `x:${a.id}`);
    const k3 = await c.key('student', s2);
    expect(
      (await c.call('POST', '/api/enrollment/enrollments', { key: k1, body: { course: a.id } }))
        .status,
    ).toBe(202);
    expect(
      (await c.call('POST', '/api/enrollment/enrollments', { key: k2, body: { course: b.id } }))
        .status,
    ).toBe(202);
    expect(
      (await c.call('POST', '/api/enrollment/enrollments', { key: k3, body: { course: a.id } }))
        .status,
    ).toBe(202);
    // Enrollments are sharded by student: ask every shard.
    const { router } = c.platform.services.get('sharding') as ShardingService;
    const { rows } = await router.fanOut<{ student: string; course: string }>(
      'SELECT student, course FROM app_enrollments WHERE student LIKE $1',
      ['x%'],
    );
    expect(rows).toHaveLength(3);
    // The key is the pair, not a string joined from it.
    const pk = await router.client(router.shardIds()[0]!).query<{ column_name: string }>(
      `SELECT a.attname AS column_name FROM pg_index i
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
        WHERE i.indrelid = 'app_enrollments'::regclass AND i.indisprimary ORDER BY a.attname`,
    );
    expect(pk.rows.map((r) => r.column_name)).toEqual(['course', 'student']);
  });

  for (const id of ['constructor', '__proto__', 'toString']) {
    it(`works with the student id ${id} on every route`, async () => {
      const s = await c.key('student', id);
      const enrolled = await c.call('POST', '/api/enrollment/enrollments', {
        key: s,
        body: { course: course.id },
      });
      expect(enrolled.status).toBe(202);
      const submitted = await c.call('POST', `/api/reviews/courses/${course.id}/reviews`, {
        key: s,
        body: { rating: 4 },
      });
      expect(submitted.status).toBe(201);
      const path = `/api/reviews/courses/${course.id}/reviews/${encodeURIComponent(id)}`;
      const revised = await c.call('PUT', path, { key: s, body: { rating: 2 } });
      expect(revised.status).toBe(200);
      expect((await c.call('DELETE', path, { key: s })).status).toBe(200);
      const again = await c.call('POST', `/api/reviews/courses/${course.id}/reviews`, {
        key: s,
        body: { rating: 5 },
      });
      expect(again.status).toBe(201);
      const wallet = `/api/reviews/wallets/${encodeURIComponent(id)}`;
      expect(
        (await c.call('POST', `${wallet}/top-ups`, { key: s, body: { amountCents: 500 } })).status,
      ).toBe(201);
      expect(
        (await c.call('POST', `${wallet}/purchases`, { key: s, body: { courseId: course.id } }))
          .status,
      ).toBe(201);
      expect((await c.call('GET', wallet, { key: s })).body).toMatchObject({
        studentId: id,
        balanceCents: 400,
        courses: [course.id],
      });
      const play = await c.call(
        'GET',
        `/api/media/play?key=${encodeURIComponent(`courses/${course.id}/a.mp4`)}`,
        { key: s },
      );
      expect(play.status).toBe(200);
    });

    it(`answers the course id ${id} with COURSE_NOT_FOUND, not a failure`, async () => {
      const s = await c.key('student', `stu-${id}`);
      const r = await c.call('POST', '/api/enrollment/enrollments', {
        key: s,
        body: { course: id },
      });
      expect(r.status).toBe(404);
      expect(codeOf(r)).toBe('COURSE_NOT_FOUND');
      const rating = await c.call('GET', `/api/reviews/courses/${id}/rating`);
      expect(rating.status).toBe(200);
    });
  }
});

describe('enrollment migration to composite keys', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cdp-enroll-migrate-'));
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  it('moves rows written by the old code (id = student:course) without loss', async () => {
    // The schema and rows as the code before composite keys left them.
    const sql = await openSql({ kind: 'pglite', dataDir: join(dir) }, { logger: silentLogger() });
    const old = (enrollmentFeature.migrations ?? []).filter(
      (m) => m.module !== 'enrollment-app' || m.version === 1,
    );
    await migrate(sql, old, { logger: silentLogger() });
    const rows: [string, string][] = [
      ['x:b', 'c'],
      ['ada', 'db-101'],
      ['constructor', 'toString'],
    ];
    for (const [student, course] of rows) {
      await sql.query('INSERT INTO app_enrollments (id, student, course) VALUES ($1, $2, $3)', [
        `${student}:${course}`,
        student,
        course,
      ]);
      await sql.query(
        'INSERT INTO app_enrollment_emails (enrollment_id, recipient) VALUES ($1, $2)',
        [`${student}:${course}`, student],
      );
    }
    await sql.close();

    const c = await startClient({ CDP_DATA_DIR: dir });
    try {
      const got = await c.platform.sql.query<{ student: string; course: string }>(
        'SELECT student, course FROM app_enrollments ORDER BY student, course',
      );
      expect(got.rows.map((r) => [r.student, r.course])).toEqual(
        [...rows].sort((a, b) => (a[0] < b[0] ? -1 : 1)),
      );
      // ... and the shards took them over (enrollments are sharded by student since).
      const { router } = c.platform.services.get('sharding') as ShardingService;
      const adopted = await router.fanOut<{ student: string; course: string }>(
        'SELECT student, course FROM app_enrollments',
        [],
        { orderBy: [{ column: 'student' }, { column: 'course' }] },
      );
      expect(adopted.rows.map((r) => [r.student, r.course])).toEqual(
        got.rows.map((r) => [r.student, r.course]),
      );
      const emails = await c.platform.sql.query<{ student: string; course: string }>(
        'SELECT student, course FROM app_enrollment_emails ORDER BY student, course',
      );
      expect(emails.rows).toHaveLength(3);
      // The pair that collided under the old id now enrolls.
      const course = await c.course('Ada Park');
      const k = await c.key('student', 'x');
      const r = await c.call('POST', '/api/enrollment/enrollments', {
        key: k,
        body: { course: course.id },
      });
      expect(r.status).toBe(202);
    } finally {
      await c.close();
    }
  });
});
