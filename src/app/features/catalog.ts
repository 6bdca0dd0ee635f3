import { z } from 'zod';
import { UuidV7Generator } from '../../core/ids.js';
import { importOptional } from '../../core/optional-dependency.js';
import type { SqlClient } from '../../engines/sql/sql-client.js';
import {
  type ConsistencyToken,
  ConsistencyTokenError,
  formatConsistencyToken,
  laterToken,
  type ReadConsistency,
  type ReplicaRouter,
} from '../../replication/index.js';
import { courseNotFound, documented, examples, refusal } from '../api-docs.js';
import type { Principal } from '../auth.js';
import type { PlatformFeature } from '../feature.js';
import {
  ForbiddenError,
  NotFoundError,
  parseInput,
  quote,
  RequestRefusedError,
  singleLine,
} from '../http-errors.js';

/**
 * The marketplace's course catalog: the system of record that other features read through
 * patterns (the cache reads course details through cache-aside, search reads a read model).
 */
export interface Course {
  id: string;
  title: string;
  topic: string;
  instructor: string;
  priceCents: number;
  description: string;
  updatedAt: string;
  version: number;
}

const fields = {
  title: singleLine(200),
  topic: singleLine(60),
  instructor: singleLine(120),
  priceCents: z.number().int().min(0).max(10_000_000),
  description: z.string().max(10_000),
};
const newCourse = z.strictObject({ ...fields, description: fields.description.default('') });
/** A partial update: each field optional, none with a default (so an absent one is unchanged). */
const coursePatch = z.strictObject({
  title: fields.title.optional(),
  topic: fields.topic.optional(),
  instructor: fields.instructor.optional(),
  priceCents: fields.priceCents.optional(),
  description: fields.description.optional(),
});
/** A course created by an instructor: under their own name. */
const ownCourse = newCourse.extend({ instructor: fields.instructor.optional() });
const idParam = z.object({ id: z.uuid('must be a course id (UUID)') });
const listQuery = z.object({
  topic: z.string().optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
});

/** A course as the API returns it. */
export const courseSchema = z.object({
  id: z.uuid(),
  title: z.string(),
  topic: z.string(),
  instructor: z.string(),
  priceCents: z.number().int(),
  description: z.string(),
  updatedAt: z.iso.datetime(),
  version: z.number().int(),
});
export const exampleCourse: Course = {
  id: examples.courseId,
  title: 'PostgreSQL from the inside',
  topic: 'databases',
  instructor: examples.instructor,
  priceCents: 4900,
  description: 'How PostgreSQL stores, indexes and vacuums your rows.',
  updatedAt: '2026-12-07T16:00:00.000Z',
  version: 1,
};
const notTheirs = refusal(
  403,
  'FORBIDDEN',
  `course ${examples.courseId} belongs to instructor "Ada Park"; only they or an admin change it`,
);

const docs = {
  list: documented({
    summary: 'List courses',
    description: 'Courses in id order (oldest first), optionally of one topic.',
    tags: ['catalog'],
    query: listQuery,
    responses: {
      200: {
        description: 'The courses',
        schema: z.object({ courses: z.array(courseSchema) }),
        example: { courses: [exampleCourse] },
      },
    },
  }),
  create: documented({
    summary: 'Create a course',
    description:
      "Creates a course in the catalog, the system of record. An instructor's course is under their own name (leave `instructor` out); an admin names the instructor.",
    tags: ['catalog'],
    roles: ['instructor'],
    body: ownCourse,
    bodyExamples: {
      instructor: {
        summary: 'As an instructor, under their own name',
        value: {
          title: 'PostgreSQL from the inside',
          topic: 'databases',
          priceCents: 4900,
          description: 'How PostgreSQL stores, indexes and vacuums your rows.',
        },
      },
      admin: {
        summary: 'As an admin, naming the instructor',
        value: {
          title: 'Caching that does not lie',
          topic: 'performance',
          instructor: 'Sam Ruiz',
          priceCents: 3900,
        },
      },
    },
    responses: { 201: { description: 'The course', schema: courseSchema, example: exampleCourse } },
    errors: [
      refusal(
        403,
        'FORBIDDEN',
        'an instructor creates courses under their own name ("Ada Park"); leave instructor out',
      ),
    ],
  }),
  get: documented({
    summary: 'Read a course',
    description:
      'One course, read through the course cache (cache-aside): an update invalidates it, so a read after an update never returns the old course. With replicas (CDP_REPLICA_URLS), send back the `x-cdp-consistency-token` a create or change returned to read from a replica that has that write (or from the primary).',
    tags: ['catalog'],
    params: idParam,
    responses: { 200: { description: 'The course', schema: courseSchema, example: exampleCourse } },
    errors: [
      courseNotFound,
      refusal(
        400,
        'REPLICATION_TOKEN_MALFORMED',
        'x-cdp-consistency-token: not a consistency token: "abc"; send back exactly the token a write returned (cdp1.<cluster>.<timeline>.<lsn>), or none',
      ),
    ],
  }),
  update: documented({
    summary: 'Change a course',
    description:
      'Changes the fields the body names, and only those; the version goes up by one and cached copies are invalidated. With replicas (CDP_REPLICA_URLS) the response carries `x-cdp-consistency-token`: send it back on reads to see this change.',
    tags: ['catalog'],
    roles: ['instructor'],
    access: 'An instructor changes only their own courses, and cannot give them away.',
    params: idParam,
    body: coursePatch,
    bodyExamples: {
      price: { summary: 'A new price', value: { priceCents: 3900 } },
      text: {
        summary: 'A new title and description',
        value: { title: 'PostgreSQL, inside out', description: 'Pages, tuples, WAL.' },
      },
    },
    responses: {
      200: {
        description: 'The changed course',
        schema: courseSchema,
        example: { ...exampleCourse, priceCents: 3900, version: 2 },
      },
    },
    errors: [
      refusal(
        400,
        'EMPTY_PATCH',
        'the change names no field; send at least one of title, topic, instructor, priceCents, description',
      ),
      notTheirs,
      courseNotFound,
    ],
  }),
};

interface CourseRow {
  id: string;
  title: string;
  topic: string;
  instructor: string;
  price_cents: number;
  description: string;
  updated_at: Date;
  version: number;
}

function toCourse(r: CourseRow): Course {
  return {
    id: r.id,
    title: r.title,
    topic: r.topic,
    instructor: r.instructor,
    priceCents: r.price_cents,
    description: r.description,
    updatedAt: r.updated_at.toISOString(),
    version: r.version,
  };
}

const COLUMNS =
  'id::text AS id, title, topic, instructor, price_cents, description, updated_at, version';

/** A course id's shape (a UUID), checked before it reaches a uuid column. */
function isUuid(id: string): boolean {
  return z.uuid().safeParse(id).success;
}

/** Who may change a course: an admin, or the instructor whose course it is. */
function mayChange(p: Principal, course: Course): boolean {
  return p.role === 'admin' || (p.role === 'instructor' && p.subject === course.instructor);
}

/** The header a write's consistency token comes back in, and a later read sends it in. */
export const CONSISTENCY_HEADER = 'x-cdp-consistency-token';
/** How stale a read without a token may be when replicas serve the catalog. */
const MAX_STALENESS_MS = 5_000;
/** Per-course write tokens kept (the oldest go first). */
const COURSE_TOKENS = 10_000;

export class CatalogService {
  readonly #sql: SqlClient;
  readonly #ids: UuidV7Generator;
  /** The replica router when CDP_REPLICA_URLS names standbys; reads then go through it. */
  readonly replicas: ReplicaRouter | undefined;
  /** The last write's token per course: a course's readers never see it older than its last change. */
  readonly #courseTokens = new Map<string, ConsistencyToken>();
  /** Called after a course changed; the cache feature hooks invalidation here. */
  readonly onChange = new Set<(id: string) => void | Promise<void>>();
  /** How reads of one course are served: straight from SQL unless a feature (the cache) wraps it. */
  #reader: (
    id: string,
    load: (id: string) => Promise<Course | undefined>,
  ) => Promise<Course | undefined> = (id, load) => load(id);

  constructor(sql: SqlClient, ids: UuidV7Generator, replicas?: ReplicaRouter) {
    this.#sql = sql;
    this.#ids = ids;
    this.replicas = replicas;
  }

  /**
   * The token of a write that just committed (undefined without replicas): the primary's WAL
   * position, kept for the course so that reads of it wait for a replica that has it.
   */
  async #written(courseId: string): Promise<string | undefined> {
    if (!this.replicas) return undefined;
    const token = await this.replicas.currentToken();
    this.#courseTokens.delete(courseId);
    this.#courseTokens.set(courseId, token);
    if (this.#courseTokens.size > COURSE_TOKENS) {
      this.#courseTokens.delete(this.#courseTokens.keys().next().value!);
    }
    return formatConsistencyToken(token);
  }

  /**
   * Parses a token a client sent back (400 REPLICATION_TOKEN_MALFORMED / _FOREIGN for a bad
   * one); without replicas any token is accepted and ignored, as every read is on the primary.
   */
  checkToken(token: string | undefined): ConsistencyToken | undefined {
    if (token === undefined || !this.replicas) return undefined;
    try {
      return this.replicas.token(token);
    } catch (err) {
      if (err instanceof ConsistencyTokenError) {
        throw new RequestRefusedError(err.code, 400, `${CONSISTENCY_HEADER}: ${err.message}`);
      }
      throw err;
    }
  }

  async #read<R>(text: string, params: unknown[], after: ConsistencyToken | undefined) {
    if (!this.replicas) return (await this.#sql.query<R>(text, params as never)).rows;
    const consistency: ReadConsistency = after
      ? { kind: 'after', token: after }
      : { kind: 'bounded', maxStalenessMs: MAX_STALENESS_MS };
    return (await this.replicas.read<R>(text, params as never, consistency)).rows;
  }

  async create(input: z.input<typeof newCourse>): Promise<Course> {
    return (await this.createWithToken(input)).course;
  }

  /** Creates a course; `token` (with replicas) is what a later read sends for read-your-writes. */
  async createWithToken(
    input: z.input<typeof newCourse>,
  ): Promise<{ course: Course; token: string | undefined }> {
    const c = parseInput(newCourse, input, 'course');
    const { rows } = await this.#sql.query<CourseRow>(
      `INSERT INTO courses (id, title, topic, instructor, price_cents, description)
       VALUES ($1, $2, $3, $4, $5, $6) RETURNING ${COLUMNS}`,
      [this.#ids.next(), c.title, c.topic, c.instructor, c.priceCents, c.description],
    );
    const course = toCourse(rows[0]!);
    return { course, token: await this.#written(course.id) };
  }

  /**
   * A course by id; undefined for an unknown id, or one that is not a course id (UUID) at all.
   * With replicas: from one that has replayed the course's last change and `after`.
   */
  async get(id: string, after?: ConsistencyToken): Promise<Course | undefined> {
    if (!isUuid(id)) return undefined;
    const rows = await this.#read<CourseRow>(
      `SELECT ${COLUMNS} FROM courses WHERE id = $1`,
      [id],
      laterToken(after, this.#courseTokens.get(id)),
    );
    return rows[0] ? toCourse(rows[0]) : undefined;
  }

  /** The course, or a 404 COURSE_NOT_FOUND: for features that act on a course (sell, enroll, review). */
  async require(id: string): Promise<Course> {
    const course = await this.read(id);
    if (!course)
      throw new NotFoundError(
        `course ${quote(id)} (GET /api/catalog/courses lists the courses)`,
        'COURSE_NOT_FOUND',
      );
    return course;
  }

  /** Route single-course reads through `reader` (cache-aside); `load` reads the row from SQL. */
  readThrough(
    reader: (
      id: string,
      load: (id: string) => Promise<Course | undefined>,
    ) => Promise<Course | undefined>,
  ): void {
    this.#reader = reader;
  }

  /** One course as the API serves it: through the reader (the cache) when one is set. */
  read(id: string): Promise<Course | undefined> {
    return this.#reader(id, (key) => this.get(key));
  }

  async list(
    options: { topic?: string; limit?: number } = {},
    after?: ConsistencyToken,
  ): Promise<Course[]> {
    const rows = await this.#read<CourseRow>(
      `SELECT ${COLUMNS} FROM courses WHERE ($1::text IS NULL OR topic = $1) ORDER BY id LIMIT $2`,
      [options.topic ?? null, options.limit ?? 50],
      after,
    );
    return rows.map(toCourse);
  }

  /** Change the fields `patch` names, and only those; an empty patch is refused (EMPTY_PATCH). */
  async update(id: string, patch: z.input<typeof coursePatch>): Promise<Course> {
    return (await this.updateWithToken(id, patch)).course;
  }

  /** Changes a course; `token` (with replicas) is what a later read sends for read-your-writes. */
  async updateWithToken(
    id: string,
    patch: z.input<typeof coursePatch>,
  ): Promise<{ course: Course; token: string | undefined }> {
    const p = parseInput(coursePatch, patch, 'course change');
    if (Object.values(p).every((v) => v === undefined))
      throw new RequestRefusedError(
        'EMPTY_PATCH',
        400,
        'the change names no field; send at least one of title, topic, instructor, priceCents, description',
      );
    if (!isUuid(id)) throw new NotFoundError(`course ${quote(id)}`, 'COURSE_NOT_FOUND');
    const { rows } = await this.#sql.query<CourseRow>(
      `UPDATE courses SET
         title = COALESCE($2, title), topic = COALESCE($3, topic), instructor = COALESCE($4, instructor),
         price_cents = COALESCE($5, price_cents), description = COALESCE($6, description),
         updated_at = now(), version = version + 1
       WHERE id = $1 RETURNING ${COLUMNS}`,
      [
        id,
        p.title ?? null,
        p.topic ?? null,
        p.instructor ?? null,
        p.priceCents ?? null,
        p.description ?? null,
      ],
    );
    if (!rows[0]) throw new NotFoundError(`course ${quote(id)}`, 'COURSE_NOT_FOUND');
    const token = await this.#written(id);
    for (const hook of this.onChange) await hook(id);
    return { course: toCourse(rows[0]), token };
  }

  async count(): Promise<number> {
    const { rows } = await this.#sql.query<{ n: number }>('SELECT count(*)::int AS n FROM courses');
    return rows[0]!.n;
  }
}

const SEED = [
  {
    title: 'PostgreSQL from the inside',
    topic: 'databases',
    instructor: 'Ada Park',
    priceCents: 4900,
  },
  {
    title: 'Event sourcing in TypeScript',
    topic: 'architecture',
    instructor: 'Lin Osei',
    priceCents: 5900,
  },
  {
    title: 'Caching that does not lie',
    topic: 'performance',
    instructor: 'Sam Ruiz',
    priceCents: 3900,
  },
  {
    title: 'Messaging without losing messages',
    topic: 'architecture',
    instructor: 'Noor Haddad',
    priceCents: 4500,
  },
  {
    title: 'Object storage and signed URLs',
    topic: 'cloud',
    instructor: 'Jo Meyer',
    priceCents: 2900,
  },
];

export const catalogFeature: PlatformFeature = {
  name: 'catalog',
  description: 'Course catalog (system of record in SQL): create, read, update courses',
  docs: ['docs/architecture.md'],
  migrations: [
    {
      module: 'catalog',
      version: 1,
      name: 'create courses',
      sql: `CREATE TABLE courses (
        id uuid PRIMARY KEY,
        title text NOT NULL,
        topic text NOT NULL,
        instructor text NOT NULL,
        price_cents integer NOT NULL CHECK (price_cents >= 0),
        description text NOT NULL DEFAULT '',
        updated_at timestamptz NOT NULL DEFAULT now(),
        version integer NOT NULL DEFAULT 1
      );
      CREATE INDEX courses_topic ON courses (topic);`,
    },
  ],
  async start(ctx) {
    let replicas: ReplicaRouter | undefined;
    const { database, replicaUrls } = ctx.config;
    if (replicaUrls.length > 0 && database.kind === 'postgres') {
      const { openReplicaRouter } = await importOptional(
        'pg',
        'catalog reads from replicas (CDP_REPLICA_URLS)',
        () => import('../../replication/postgres.js'),
      );
      replicas = ctx.lifecycle.use(
        'catalog replica router',
        await openReplicaRouter({
          primaryUrl: database.url,
          replicaUrls,
          max: 4,
          logger: ctx.logger,
        }),
      );
    }
    const service = new CatalogService(ctx.sql, new UuidV7Generator(ctx.clock), replicas);
    const sentToken = (req: { headers: Record<string, unknown> }) => {
      const h = req.headers[CONSISTENCY_HEADER];
      return service.checkToken(typeof h === 'string' && h.length > 0 ? h : undefined);
    };
    if ((await service.count()) === 0) for (const c of SEED) await service.create(c);
    const { http } = ctx;
    http.get('/api/catalog/courses', docs.list, async (req) => {
      const q = parseInput(listQuery, req.query, 'query');
      return { courses: await service.list(q, sentToken(req)) };
    });
    http.post('/api/catalog/courses', docs.create, async (req, reply) => {
      const by = await ctx.auth.require(req, 'instructor');
      let input: z.input<typeof newCourse>;
      if (by.role === 'instructor') {
        const own = parseInput(ownCourse, req.body, 'course');
        if (own.instructor !== undefined && own.instructor !== by.subject)
          throw new ForbiddenError(
            `an instructor creates courses under their own name (${quote(by.subject)}); leave instructor out`,
          );
        input = { ...own, instructor: by.subject };
      } else {
        input = req.body as z.input<typeof newCourse>;
      }
      const { course, token } = await service.createWithToken(input);
      if (token) reply.header(CONSISTENCY_HEADER, token);
      return reply.status(201).send(course);
    });
    http.get('/api/catalog/courses/:id', docs.get, async (req) => {
      const { id } = parseInput(idParam, req.params, 'path');
      const after = sentToken(req);
      // A read that carries a token skips the cache: the cache may hold an older copy.
      const course = after ? await service.get(id, after) : await service.read(id);
      if (!course) throw new NotFoundError(`course ${id}`, 'COURSE_NOT_FOUND');
      return course;
    });
    http.patch('/api/catalog/courses/:id', docs.update, async (req, reply) => {
      const by = await ctx.auth.require(req, 'instructor');
      const { id } = parseInput(idParam, req.params, 'path');
      const course = await service.require(id);
      const patch = parseInput(coursePatch, req.body, 'course change');
      if (
        !mayChange(by, course) ||
        (by.role !== 'admin' && patch.instructor !== undefined && patch.instructor !== by.subject)
      )
        throw new ForbiddenError(
          `course ${id} belongs to instructor ${quote(course.instructor)}; only they or an admin change it`,
        );
      const { course: changed, token } = await service.updateWithToken(id, patch);
      if (token) reply.header(CONSISTENCY_HEADER, token);
      return changed;
    });
    return {
      service,
      panel: async () => ({
        id: 'catalog',
        title: 'Catalog',
        stats: [{ label: 'courses', value: await service.count() }],
      }),
    };
  },
};
