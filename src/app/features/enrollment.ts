import { z } from 'zod';
import type { Migration } from '../../engines/sql/migrations.js';
import type { SqlClient, SqlTransaction } from '../../engines/sql/sql-client.js';
import {
  ChoreographyService,
  DeadLetterNotFoundError,
  dlqList,
  dlqReplay,
  EventTypes,
  messagingMigrations,
  OutboxRelay,
  openBroker,
  outboxStats,
  traceFlow,
} from '../../messaging/index.js';
import { documented, examples, refusal } from '../api-docs.js';
import { recordingBroker } from '../demos/recent-messages.js';
import { demoPingType, openRelayRestartDemo } from '../demos/relay-restart.js';
import type { PlatformFeature } from '../feature.js';
import {
  NotFoundError,
  parseInput,
  quote,
  RequestRefusedError,
  singleLine,
} from '../http-errors.js';
import type { CatalogService } from './catalog.js';

/**
 * Course enrollment as a choreography: the enrollment service writes EnrollmentRequested
 * through the outbox; the email, recommendations and instructor-stats services react (each
 * with its inbox) and emit their own events. In-process broker by default; NATS JetStream
 * with CDP_NATS_URL, RabbitMQ with CDP_AMQP_URL.
 */
const types = new EventTypes();
// An enrollment is the pair (student, course); `enrollmentId` is only in events written before
// enrollments had composite keys (still accepted when they are relayed or replayed).
types.define(
  'enrollment.requested',
  z.object({ enrollmentId: z.string().optional(), student: z.string(), course: z.string() }),
);
types.define(
  'email.sent',
  z.object({
    enrollmentId: z.string().optional(),
    student: z.string().optional(),
    course: z.string().optional(),
    to: z.string(),
  }),
);
types.define('recommendations.updated', z.object({ student: z.string(), basedOn: z.string() }));
types.define(
  'instructor.stats.updated',
  z.object({ course: z.string(), enrollments: z.number().int() }),
);
// A course purchase's receipt (the purchases feature's saga sends it through this outbox).
types.define(
  'purchase.receipt',
  z.object({
    purchaseId: z.string(),
    student: z.string(),
    course: z.string(),
    amountCents: z.number().int(),
  }),
);
// The relay demonstration's own messages (see demos/relay-restart.ts).
types.define(demoPingType, z.object({ run: z.string(), n: z.number().int() }));

const enrollmentMigrations: Migration[] = [
  {
    module: 'enrollment-app',
    version: 1,
    name: 'enrollments and the reacting services tables',
    sql: `
CREATE TABLE app_enrollments (id text PRIMARY KEY, student text NOT NULL, course text NOT NULL, requested_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE app_enrollment_emails (enrollment_id text PRIMARY KEY, recipient text NOT NULL);
CREATE TABLE app_recommendations (student text NOT NULL, course text NOT NULL, PRIMARY KEY (student, course));
CREATE TABLE app_course_enrollments (course text PRIMARY KEY, enrollments integer NOT NULL);
`,
  },
  {
    module: 'enrollment-app',
    version: 2,
    name: 'enrollments and their emails keyed by (student, course), not a joined id',
    // Old ids were student || ':' || course, unique, so the pairs are unique too. An email row
    // finds its pair through the enrollment; one without an enrollment is split at the first ':'.
    sql: `
ALTER TABLE app_enrollment_emails ADD COLUMN student text, ADD COLUMN course text;
UPDATE app_enrollment_emails m SET student = e.student, course = e.course
  FROM app_enrollments e WHERE e.id = m.enrollment_id;
UPDATE app_enrollment_emails SET student = split_part(enrollment_id, ':', 1),
  course = substr(enrollment_id, length(split_part(enrollment_id, ':', 1)) + 2)
  WHERE student IS NULL;
ALTER TABLE app_enrollment_emails DROP CONSTRAINT app_enrollment_emails_pkey;
ALTER TABLE app_enrollment_emails DROP COLUMN enrollment_id;
ALTER TABLE app_enrollment_emails ALTER COLUMN student SET NOT NULL, ALTER COLUMN course SET NOT NULL;
ALTER TABLE app_enrollment_emails ADD PRIMARY KEY (student, course);
ALTER TABLE app_enrollments DROP CONSTRAINT app_enrollments_pkey;
ALTER TABLE app_enrollments DROP COLUMN id;
ALTER TABLE app_enrollments ADD PRIMARY KEY (student, course);
`,
  },
];

/** The enrollment feature's service: who is enrolled in what. */
export interface EnrollmentService {
  isEnrolled(student: string, course: string): Promise<boolean>;
  /**
   * Enroll in the caller's transaction, writing EnrollmentRequested through the outbox in it;
   * false (and nothing written) when the student was already enrolled.
   */
  enroll(tx: SqlTransaction, student: string, course: string): Promise<boolean>;
  /** Write a purchase's receipt through the outbox, in the caller's transaction. */
  sendReceipt(
    tx: SqlTransaction,
    receipt: { purchaseId: string; student: string; course: string; amountCents: number },
  ): Promise<void>;
}

async function isEnrolled(sql: SqlClient, student: string, course: string): Promise<boolean> {
  const { rows } = await sql.query(
    'SELECT 1 FROM app_enrollments WHERE student = $1 AND course = $2',
    [student, course],
  );
  return rows.length > 0;
}

// The student is the caller (the API key's subject), never a field of the body.
const enrollBody = z.strictObject({ course: singleLine(100) });
const idParam = z.object({ id: z.string().min(1).max(200) });

const docs = {
  enroll: documented({
    summary: 'Enroll in a course',
    description:
      'Enrolls the calling student and writes EnrollmentRequested through the transactional outbox, in the same transaction. The relay publishes it; the email, recommendations and instructor-stats services react, each once (inbox). Follow the flow with GET /api/enrollment/flows/{correlationId}.',
    tags: ['enrollment'],
    roles: ['student'],
    access: "The student is the key's subject, never a field of the body.",
    body: enrollBody,
    bodyExamples: { course: { summary: 'A course', value: { course: examples.courseId } } },
    responses: {
      202: {
        description: 'Accepted: the event is in the outbox, the reactions follow',
        schema: z.object({ eventId: z.string(), correlationId: z.string() }),
        example: { eventId: examples.correlationId, correlationId: examples.correlationId },
      },
    },
    errors: [
      refusal(
        404,
        'COURSE_NOT_FOUND',
        `course "${examples.courseId}" (GET /api/catalog/courses lists the courses) was not found`,
      ),
      refusal(
        409,
        'ALREADY_ENROLLED',
        `student "${examples.student}" is already enrolled in course ${examples.courseId}`,
      ),
    ],
  }),
  flow: documented({
    summary: 'Trace an enrollment flow',
    description:
      'Every event of a choreography flow (by correlation id or an event id) in causation order, with the services that handled each.',
    tags: ['enrollment'],
    roles: ['viewer'],
    params: idParam,
    responses: {
      200: {
        description: 'The steps',
        schema: z.object({
          steps: z.array(
            z.object({
              id: z.string(),
              type: z.string(),
              source: z.string(),
              causationId: z.string().nullable(),
              depth: z.number().int(),
              recordedAt: z.iso.datetime(),
              handledBy: z.array(z.string()),
            }),
          ),
        }),
        example: {
          steps: [
            {
              id: examples.correlationId,
              type: 'enrollment.requested',
              source: 'enrollment',
              causationId: null,
              depth: 0,
              recordedAt: '2026-12-07T16:00:00.000Z',
              handledBy: ['email', 'instructor-stats', 'recommendations'],
            },
          ],
        },
      },
    },
    errors: [refusal(404, 'FLOW_NOT_FOUND', `flow "${examples.correlationId}" was not found`)],
  }),
  dlq: documented({
    summary: 'List dead letters',
    description:
      'Messages a consumer gave up on after its retries, with the last error: replay one once its cause is fixed.',
    tags: ['enrollment'],
    roles: ['viewer'],
    responses: {
      200: {
        description: 'The dead letters',
        schema: z.object({
          deadLetters: z.array(
            z.object({
              id: z.string(),
              group: z.string(),
              topic: z.string(),
              type: z.string(),
              key: z.string(),
              attempts: z.number().int(),
              deadAt: z.string(),
              error: z.string(),
            }),
          ),
        }),
        example: {
          deadLetters: [
            {
              id: 'dl-1',
              group: 'email',
              topic: 'cdp_app.enrollment.requested',
              type: 'enrollment.requested',
              key: 'demo-student-1',
              attempts: 5,
              deadAt: '2026-12-07T16:00:00.000Z',
              error: 'mail server refused the message',
            },
          ],
        },
      },
    },
  }),
  redeliver: documented({
    summary: 'Deliver a stored message again',
    description:
      'Delivers a message again with the same id and body: a dead letter (as its replay does), or one of the last 1,000 messages delivered, handed again to every consumer group that received it, as a broker does when an acknowledgement is lost. Consumers with an inbox recognise the id and do nothing the second time: that is what an idempotent consumer is for.',
    tags: ['enrollment'],
    roles: [],
    params: idParam,
    responses: {
      200: {
        description: 'The message was published again',
        schema: z.object({
          id: z.string(),
          from: z.enum(['dead-letters', 'recently-delivered']),
          groups: z.array(z.string()),
        }),
        example: {
          id: examples.correlationId,
          from: 'recently-delivered',
          groups: ['email', 'instructor-stats', 'recommendations'],
        },
      },
    },
    errors: [
      refusal(
        404,
        'MESSAGE_NOT_FOUND',
        'no dead letter or recently delivered message with id "m-9"; GET /api/enrollment/dlq lists dead letters, GET /api/enrollment/flows/{id} the messages of a flow',
      ),
    ],
  }),
  replay: documented({
    summary: 'Replay a dead letter',
    description: 'Puts a dead letter back on its topic for its consumer group to handle again.',
    tags: ['enrollment'],
    roles: [],
    params: idParam,
    responses: {
      200: {
        description: 'The dead letter was replayed',
        schema: z.object({ id: z.string(), replayed: z.number().int() }),
        example: { id: 'dl-1', replayed: 1 },
      },
    },
    errors: [
      refusal(
        404,
        'DEAD_LETTER_NOT_FOUND',
        'no dead letter with id "dl-9"; run `cdp dlq list` or GET /api/enrollment/dlq to see the ids',
      ),
    ],
  }),
};

export const enrollmentFeature: PlatformFeature = {
  name: 'enrollment',
  description: 'Course enrollment as a choreography over a transactional outbox and inboxes',
  docs: [
    'docs/patterns/transactional-outbox.md',
    'docs/patterns/idempotent-consumer.md',
    'docs/patterns/choreography.md',
  ],
  migrations: [...messagingMigrations, ...enrollmentMigrations],
  async start(ctx) {
    const { sql, logger, registry, http, lifecycle, config, clock } = ctx;
    // Recording the last messages published lets one be delivered again by id.
    const broker = lifecycle.use(
      'messaging broker',
      recordingBroker(
        await openBroker({
          natsUrl: config.natsUrl,
          amqpUrl: config.amqpUrl,
          prefix: 'cdp_app',
          logger,
        }),
      ),
    );
    const common = { sql, broker, types, logger };
    const enrollment = new ChoreographyService({ name: 'enrollment', ...common });
    const email = new ChoreographyService({ name: 'email', ...common }).on(
      'enrollment.requested',
      async ({ event, tx, emit }) => {
        const d = event.data as { student: string; course: string };
        await tx.query(
          `INSERT INTO app_enrollment_emails (student, course, recipient) VALUES ($1, $2, $3)
           ON CONFLICT (student, course) DO NOTHING`,
          [d.student, d.course, d.student],
        );
        await emit({
          type: 'email.sent',
          data: { student: d.student, course: d.course, to: d.student },
          key: d.student,
        });
      },
    );
    const recommendations = new ChoreographyService({ name: 'recommendations', ...common }).on(
      'enrollment.requested',
      async ({ event, tx, emit }) => {
        const d = event.data as { student: string; course: string };
        await tx.query(
          'INSERT INTO app_recommendations (student, course) VALUES ($1, $2) ON CONFLICT DO NOTHING',
          [d.student, d.course],
        );
        await emit({
          type: 'recommendations.updated',
          data: { student: d.student, basedOn: d.course },
          key: d.student,
        });
      },
    );
    const stats = new ChoreographyService({ name: 'instructor-stats', ...common }).on(
      'enrollment.requested',
      async ({ event, tx, emit }) => {
        const d = event.data as { course: string };
        const { rows } = await tx.query<{ enrollments: number }>(
          `INSERT INTO app_course_enrollments (course, enrollments) VALUES ($1, 1)
           ON CONFLICT (course) DO UPDATE SET enrollments = app_course_enrollments.enrollments + 1
           RETURNING enrollments`,
          [d.course],
        );
        await emit({
          type: 'instructor.stats.updated',
          data: { course: d.course, enrollments: rows[0]!.enrollments },
          key: d.course,
        });
      },
    );
    for (const s of [email, recommendations, stats]) {
      await s.start();
      lifecycle.use(`service ${s.name}`, s);
    }
    // The relay can be stopped and started again (the relay demonstration does); a stopped
    // relay is closed for good, so starting means a new one. `published` spans them all.
    const newRelay = () => new OutboxRelay({ sql, broker, logger, registry, clock });
    let relay = newRelay();
    let relayRunning = true;
    let publishedBefore = 0;
    lifecycle.defer('outbox relay', () => relay.close());
    await relay.start();
    const relayControl = {
      stop: async () => {
        if (!relayRunning) return;
        relayRunning = false;
        await relay.close();
        publishedBefore += relay.published;
      },
      start: async () => {
        if (relayRunning) return;
        relay = newRelay();
        relayRunning = true;
        await relay.start();
      },
    };
    const published = () => publishedBefore + (relayRunning ? relay.published : 0);
    const redeliver = async (id: string) => {
      const dead = await broker.listDeadLetters({ limit: 1000 });
      if (dead.some((d) => d.id === id)) {
        const d = dead.find((x) => x.id === id)!;
        await dlqReplay(broker, id);
        return { id, from: 'dead-letters' as const, groups: [d.group] };
      }
      const groups = await broker.redeliver(id);
      if (groups.length === 0)
        throw new RequestRefusedError(
          'MESSAGE_NOT_FOUND',
          404,
          `no dead letter or recently delivered message with id ${quote(id)}; GET /api/enrollment/dlq lists dead letters, GET /api/enrollment/flows/{id} the messages of a flow`,
        );
      return { id, from: 'recently-delivered' as const, groups };
    };
    const relayDemo = await openRelayRestartDemo({
      sql,
      broker,
      types,
      relay: relayControl,
      redeliver,
      clock,
    });
    lifecycle.defer('relay demonstration consumer', () => relayDemo.close());
    let lastFlow: string | undefined;
    let lastPublished = 0;
    let lastPanelAt = clock.now();

    http.post('/api/enrollment/enrollments', docs.enroll, async (req, reply) => {
      const student = (await ctx.auth.require(req, 'student')).subject;
      const body = parseInput(enrollBody, req.body, 'body');
      const catalog = ctx.services.get('catalog') as CatalogService;
      const course = (await catalog.require(body.course)).id;
      const env = await sql.transaction(async (tx) => {
        const { rows } = await tx.query(
          `INSERT INTO app_enrollments (student, course) VALUES ($1, $2)
           ON CONFLICT (student, course) DO NOTHING RETURNING student`,
          [student, course],
        );
        if (rows.length === 0)
          throw new RequestRefusedError(
            'ALREADY_ENROLLED',
            409,
            `student ${quote(student)} is already enrolled in course ${course}`,
          );
        return enrollment.emit(tx, {
          type: 'enrollment.requested',
          data: { student, course },
          key: `${student.length}:${student}${course}`,
        });
      });
      lastFlow = env.correlationid;
      return reply.status(202).send({ eventId: env.id, correlationId: env.correlationid });
    });
    http.get('/api/enrollment/flows/:id', docs.flow, async (req) => {
      await ctx.auth.require(req, 'viewer');
      const { id } = parseInput(idParam, req.params, 'path');
      const steps = await traceFlow(sql, id);
      if (steps.length === 0) throw new NotFoundError(`flow ${quote(id)}`, 'FLOW_NOT_FOUND');
      return { steps };
    });
    http.get('/api/enrollment/dlq', docs.dlq, async (req) => {
      await ctx.auth.require(req, 'viewer');
      return { deadLetters: await dlqList(broker) };
    });
    http.post('/api/enrollment/messages/:id/redeliver', docs.redeliver, async (req) => {
      await ctx.auth.require(req);
      const { id } = parseInput(idParam, req.params, 'path');
      return redeliver(id);
    });
    http.post('/api/enrollment/dlq/:id/replay', docs.replay, async (req) => {
      await ctx.auth.require(req);
      const { id } = parseInput(idParam, req.params, 'path');
      try {
        return await dlqReplay(broker, id);
      } catch (err) {
        if (err instanceof DeadLetterNotFoundError)
          throw new RequestRefusedError(
            'DEAD_LETTER_NOT_FOUND',
            404,
            `no dead letter with id ${quote(id)}; run \`cdp dlq list\` or GET /api/enrollment/dlq to see the ids`,
          );
        throw err;
      }
    });

    const service: EnrollmentService & {
      broker: typeof broker;
      readonly relay: OutboxRelay;
    } = {
      broker,
      get relay() {
        return relay;
      },
      isEnrolled: (student, course) => isEnrolled(sql, student, course),
      enroll: async (tx, student, course) => {
        const { rows } = await tx.query(
          `INSERT INTO app_enrollments (student, course) VALUES ($1, $2)
           ON CONFLICT (student, course) DO NOTHING RETURNING student`,
          [student, course],
        );
        if (rows.length === 0) return false;
        await enrollment.emit(tx, {
          type: 'enrollment.requested',
          data: { student, course },
          key: `${student.length}:${student}${course}`,
        });
        return true;
      },
      sendReceipt: async (tx, receipt) => {
        await enrollment.emit(tx, {
          type: 'purchase.receipt',
          data: receipt,
          key: receipt.purchaseId,
        });
      },
    };
    return {
      service,
      demos: [relayDemo.demo],
      health: async () => {
        const started = performance.now();
        try {
          await broker.ping();
          return [
            {
              role: 'broker',
              engine: broker.kind,
              ok: true,
              latencyMs: Math.round((performance.now() - started) * 100) / 100,
            },
          ];
        } catch (err) {
          return [
            { role: 'broker', engine: broker.kind, ok: false, detail: (err as Error).message },
          ];
        }
      },
      panel: async () => {
        const s = await outboxStats(sql);
        const now = clock.now();
        const total = published();
        const rate = now > lastPanelAt ? ((total - lastPublished) * 1000) / (now - lastPanelAt) : 0;
        lastPublished = total;
        lastPanelAt = now;
        const dead = await broker.listDeadLetters({ limit: 1000 });
        const trace = lastFlow ? await traceFlow(sql, lastFlow) : [];
        return {
          id: 'enrollment',
          title: `Enrollment choreography (${broker.kind} broker)`,
          stats: [
            {
              label: 'outbox backlog',
              value: s.backlog,
              unit: 'rows',
              hint: 'Messages committed with their business change and not yet published by the relay.',
            },
            {
              label: 'oldest waiting',
              value: Math.round(s.oldestAgeMs),
              unit: 'ms',
              hint: 'Age of the oldest message in the outbox: how late the slowest delivery is.',
            },
            {
              label: 'relay rate',
              value: Math.round(rate * 10) / 10,
              unit: 'msg/s',
              hint: 'Messages the relay published per second over the last period.',
            },
            {
              label: 'published by relay',
              value: total,
              unit: 'msgs',
              hint: 'Messages published since start, confirmed by the broker.',
            },
            {
              label: 'relay',
              value: relayRunning ? 'running' : 'stopped',
              hint: 'A stopped relay loses nothing: messages wait in the outbox table.',
            },
            {
              label: 'parked rows',
              value: s.parked,
              hint: 'Messages the relay gave up publishing after repeated failures (poison).',
            },
            {
              label: 'dead letters',
              value: dead.length,
              hint: 'Messages a consumer gave up on after its retries; they can be replayed.',
            },
          ],
          charts: [
            {
              title: 'Outbox backlog',
              stats: ['outbox backlog'],
              unit: 'rows',
              hint: 'Near zero while the relay keeps up; grows while it is stopped, drains when it restarts.',
            },
            {
              title: 'Relay rate',
              stats: ['relay rate'],
              unit: 'msg/s',
              hint: 'Bursts follow enrollments and the relay restarting.',
            },
          ],
          table: {
            columns: ['depth', 'type', 'source', 'handled by'],
            rows: trace.map((t) => [t.depth, t.type, t.source, t.handledBy.join(', ')]),
          },
          docs: 'docs/patterns/choreography.md',
        };
      },
    };
  },
};
