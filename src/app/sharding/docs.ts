import { z } from 'zod';
import { documented, examples, refusal } from '../api-docs.js';
import { singleLine } from '../http-errors.js';

const movePhase = z.enum([
  'planned',
  'copying',
  'catching-up',
  'fenced',
  'verifying',
  'switched',
  'cleaning',
  'done',
  'rolled-back',
]);

export const moveSchema = z.object({
  id: z.string(),
  unit: z.string(),
  source: z.string(),
  target: z.string(),
  phase: movePhase,
  rowsTotal: z.number().int(),
  rowsCopied: z.number().int(),
  fenceMs: z.number().nullable(),
  error: z.string().nullable(),
});

const moveExample = {
  id: '7d3f8a9e-1c2b-4d5e-8f70-9a1b2c3d4e5f',
  unit: 'slot:17',
  source: 's1',
  target: 's2',
  phase: 'copying',
  rowsTotal: 120,
  rowsCopied: 60,
  fenceMs: null,
  error: null,
};

export const statusSchema = z.object({
  map: z.string(),
  version: z.number().int(),
  slotCount: z.number().int(),
  shards: z.array(
    z.object({
      id: z.string(),
      location: z.string(),
      slots: z.number().int(),
      rows: z.record(z.string(), z.number().int()),
    }),
  ),
  move: moveSchema.nullable(),
  indexes: z.array(z.object({ name: z.string(), lagMs: z.number() })),
  hotSlots: z.array(
    z.object({ unit: z.string(), count: z.number(), ratio: z.number(), suggestion: z.string() }),
  ),
});

export const planBody = z.strictObject({ add: z.string().min(1).max(500) });
export const moveBody = z.strictObject({
  slot: z.number().int().min(0).max(65_535),
  target: z.string().regex(/^[a-z0-9_-]{1,40}$/, 'must be a shard id such as s2'),
});
export const moveParam = z.object({ id: z.string().min(1).max(100) });
export const instructorParam = z.object({ instructor: singleLine(120) });
export const emailQuery = z.strictObject({ email: z.email().max(200) });
export const studentParam = z.object({ id: singleLine(200) });
export const studentBody = z.strictObject({ email: z.email().max(200), name: singleLine(200) });
export const indexParam = z.object({
  name: z.enum(['courses_by_instructor', 'students_by_email']),
});

const checkReport = z.object({
  index: z.string(),
  baseRows: z.number().int(),
  indexRows: z.number().int(),
  missing: z.number().int(),
  extra: z.number().int(),
  stale: z.number().int(),
  samples: z.array(
    z.object({
      value: z.string(),
      key: z.string(),
      shard: z.string(),
      kind: z.enum(['missing', 'extra', 'stale']),
    }),
  ),
});
const checkExample = {
  index: 'students_by_email',
  baseRows: 2,
  indexRows: 2,
  missing: 0,
  extra: 0,
  stale: 0,
  samples: [],
};

const student = z.object({ id: z.string(), email: z.string().nullable(), name: z.string() });

/** The sharding feature's routes: summaries, descriptions, schemas, refusals. */
export const shardingDocs = {
  status: documented({
    summary: 'Shard map status',
    description:
      'The marketplace shard map: its version, each shard with its slots and rows per sharded table, the move in progress (or the last one) with its phase and progress, the index tables with their lag, and hot slots with a suggested move.',
    tags: ['sharding'],
    roles: ['viewer'],
    responses: {
      200: {
        description: 'The map now',
        schema: statusSchema,
        example: {
          map: 'marketplace',
          version: 3,
          slotCount: 256,
          shards: [
            { id: 's1', location: 'pglite:memory:s1', slots: 127, rows: { app_enrollments: 40 } },
            { id: 's2', location: 'pglite:memory:s2', slots: 129, rows: { app_enrollments: 38 } },
          ],
          move: moveExample,
          indexes: [{ name: 'students_by_email', lagMs: 12 }],
          hotSlots: [],
        },
      },
    },
  }),
  plan: documented({
    summary: 'Plan adding a shard',
    description:
      'What would move if the PostgreSQL server at `add` joined the map as a new shard: the slots each shard would give it and the rows they hold. The server must answer; nothing is added and nothing moves.',
    tags: ['sharding'],
    roles: [],
    body: planBody,
    bodyExamples: {
      url: {
        summary: 'A new server',
        value: { add: 'postgres://postgres@127.0.0.1:5443/postgres' },
      },
    },
    responses: {
      200: {
        description: 'The plan',
        schema: z.object({
          shard: z.string(),
          location: z.string(),
          moves: z.array(
            z.object({
              unit: z.string(),
              source: z.string(),
              target: z.string(),
              rows: z.number().int(),
            }),
          ),
          rowsMoved: z.number().int(),
          rowsTotal: z.number().int(),
          unitsAfter: z.record(z.string(), z.number().int()),
        }),
        example: {
          shard: 's3',
          location: 'postgres://postgres@127.0.0.1:5443/postgres',
          moves: [{ unit: 'slot:171', source: 's2', target: 's3', rows: 4 }],
          rowsMoved: 4,
          rowsTotal: 12,
          unitsAfter: { s1: 86, s2: 85, s3: 85 },
        },
      },
    },
    errors: [
      refusal(
        422,
        'SHARD_UNAVAILABLE',
        'shard URL "postgres://nohost:1/x" does not answer; nothing was planned',
      ),
    ],
  }),
  startMove: documented({
    summary: 'Move a slot to another shard',
    description:
      'Starts moving one hash slot (every enrollment, student and course-directory row in it) to another shard while writers keep writing: copy, catch-up, a short write fence, verify, switch, clean up. Answers at once; follow it with GET /api/sharding/moves/{id}. One move at a time.',
    tags: ['sharding'],
    roles: [],
    body: moveBody,
    bodyExamples: { slot: { summary: 'Slot 17 to s2', value: { slot: 17, target: 's2' } } },
    responses: {
      202: { description: 'Started', schema: moveSchema, example: moveExample },
    },
    errors: [
      refusal(
        409,
        'SHARD_MOVE_IN_PROGRESS',
        'shard map "marketplace" is already moving slot:3 (move 7d3f..., phase copying); wait for it to finish',
      ),
      refusal(422, 'SHARD_MAP_INVALID', 'slot:17 is already on shard "s2"'),
    ],
  }),
  getMove: documented({
    summary: 'A move and its progress',
    description: 'One move: its phase, rows copied of the total, and the write fence it took.',
    tags: ['sharding'],
    roles: ['viewer'],
    params: moveParam,
    responses: { 200: { description: 'The move', schema: moveSchema, example: moveExample } },
    errors: [refusal(404, 'MOVE_NOT_FOUND', 'no move with id "m-9"')],
  }),
  coursesByInstructor: documented({
    summary: 'Courses by instructor (index table)',
    description:
      "An instructor's courses, read from the `courses_by_instructor` index table: one routed read on the shard of the instructor's name instead of asking every shard. The index rows carry the course (denormalized) and follow the catalog within the index lag.",
    tags: ['sharding'],
    params: instructorParam,
    responses: {
      200: {
        description: 'The courses',
        schema: z.object({
          courses: z.array(
            z.object({
              id: z.string(),
              title: z.string(),
              topic: z.string(),
              instructor: z.string(),
            }),
          ),
        }),
        example: {
          courses: [
            {
              id: examples.courseId,
              title: 'Databases 101',
              topic: 'databases',
              instructor: examples.instructor,
            },
          ],
        },
      },
    },
  }),
  studentByEmail: documented({
    summary: 'Find a student by email (index table)',
    description:
      'The student whose profile has this email, from the unique `students_by_email` index table: one routed read on the shard of the email, then the profile on the shard of the student id.',
    tags: ['sharding'],
    roles: ['viewer'],
    query: emailQuery,
    responses: {
      200: {
        description: 'The students (none or one: the index is unique)',
        schema: z.object({ students: z.array(student) }),
        example: {
          students: [{ id: examples.student, email: 'student1@example.com', name: 'Demo Student' }],
        },
      },
    },
  }),
  putStudent: documented({
    summary: "Set a student's profile",
    description:
      "Writes the student's profile on the shard of the student id and keeps the email index: an email is unique across all shards.",
    tags: ['sharding'],
    roles: ['student'],
    access: 'A student writes only their own profile.',
    params: studentParam,
    body: studentBody,
    bodyExamples: {
      profile: { summary: 'A profile', value: { email: 'ada@example.com', name: 'Ada' } },
    },
    responses: {
      200: {
        description: 'The profile',
        schema: student,
        example: { id: examples.student, email: 'ada@example.com', name: 'Ada' },
      },
    },
    errors: [
      refusal(
        409,
        'EMAIL_TAKEN',
        'email "ada@example.com" belongs to another student; nothing was written',
      ),
    ],
  }),
  checkIndex: documented({
    summary: 'Check an index table',
    description:
      'Compares the base rows with the index rows on every shard: index rows missing, extra (or on the wrong shard), or stale. Changes nothing.',
    tags: ['sharding'],
    roles: ['viewer'],
    params: indexParam,
    responses: {
      200: { description: 'What it found', schema: checkReport, example: checkExample },
    },
  }),
  repairIndex: documented({
    summary: 'Repair an index table',
    description:
      'Checks the index table, then fixes every divergence found: missing and stale rows written again from the base rows, extra rows deleted. Answers with what it found.',
    tags: ['sharding'],
    roles: [],
    params: indexParam,
    responses: {
      200: { description: 'What it found and fixed', schema: checkReport, example: checkExample },
    },
  }),
};
