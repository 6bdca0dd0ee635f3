import { z } from 'zod';
import type { Migration } from '../../engines/sql/migrations.js';
import {
  ChoreographyService,
  dlqList,
  dlqReplay,
  EventTypes,
  messagingMigrations,
  OutboxRelay,
  openBroker,
  outboxStats,
  traceFlow,
} from '../../messaging/index.js';
import type { PlatformFeature } from '../feature.js';
import { NotFoundError, parseInput } from '../http-errors.js';

/**
 * Course enrollment as a choreography: the enrollment service writes EnrollmentRequested
 * through the outbox; the email, recommendations and instructor-stats services react (each
 * with its inbox) and emit their own events. In-process broker by default; NATS JetStream
 * with CDP_NATS_URL, RabbitMQ with CDP_AMQP_URL.
 */
const types = new EventTypes();
types.define(
  'enrollment.requested',
  z.object({ enrollmentId: z.string(), student: z.string(), course: z.string() }),
);
types.define('email.sent', z.object({ enrollmentId: z.string(), to: z.string() }));
types.define('recommendations.updated', z.object({ student: z.string(), basedOn: z.string() }));
types.define(
  'instructor.stats.updated',
  z.object({ course: z.string(), enrollments: z.number().int() }),
);

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
];

const enrollBody = z.object({
  student: z.string().min(1).max(100),
  course: z.string().min(1).max(100),
});
const idParam = z.object({ id: z.string().min(1).max(200) });

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
    const broker = lifecycle.use(
      'messaging broker',
      await openBroker({
        natsUrl: config.natsUrl,
        amqpUrl: config.amqpUrl,
        prefix: 'cdp_app',
        logger,
      }),
    );
    const common = { sql, broker, types, logger };
    const enrollment = new ChoreographyService({ name: 'enrollment', ...common });
    const email = new ChoreographyService({ name: 'email', ...common }).on(
      'enrollment.requested',
      async ({ event, tx, emit }) => {
        const d = event.data as { enrollmentId: string; student: string };
        await tx.query(
          'INSERT INTO app_enrollment_emails (enrollment_id, recipient) VALUES ($1, $2)',
          [d.enrollmentId, d.student],
        );
        await emit({
          type: 'email.sent',
          data: { enrollmentId: d.enrollmentId, to: d.student },
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
    const relay = lifecycle.use(
      'outbox relay',
      new OutboxRelay({ sql, broker, logger, registry, clock }),
    );
    await relay.start();
    let lastFlow: string | undefined;
    let lastPublished = 0;
    let lastPanelAt = clock.now();

    http.post('/api/enrollment/enrollments', async (req, reply) => {
      const body = parseInput(enrollBody, req.body, 'body');
      const env = await sql.transaction(async (tx) => {
        const id = `${body.student}:${body.course}`;
        await tx.query('INSERT INTO app_enrollments (id, student, course) VALUES ($1, $2, $3)', [
          id,
          body.student,
          body.course,
        ]);
        return enrollment.emit(tx, {
          type: 'enrollment.requested',
          data: { enrollmentId: id, student: body.student, course: body.course },
          key: id,
        });
      });
      lastFlow = env.correlationid;
      return reply.status(202).send({ eventId: env.id, correlationId: env.correlationid });
    });
    http.get('/api/enrollment/flows/:id', async (req) => {
      const { id } = parseInput(idParam, req.params, 'path');
      const steps = await traceFlow(sql, id);
      if (steps.length === 0) throw new NotFoundError(`flow ${id}`);
      return { steps };
    });
    http.get('/api/enrollment/dlq', async () => ({ deadLetters: await dlqList(broker) }));
    http.post('/api/enrollment/dlq/:id/replay', async (req) => {
      const { id } = parseInput(idParam, req.params, 'path');
      return dlqReplay(broker, id);
    });

    return {
      service: { broker, relay },
      health: async () => {
        const started = performance.now();
        try {
          await broker.ping();
          return [
            {
              role: 'broker',
              engine: broker.kind,
              ok: true,
              latencyMs: performance.now() - started,
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
        const rate =
          now > lastPanelAt ? ((relay.published - lastPublished) * 1000) / (now - lastPanelAt) : 0;
        lastPublished = relay.published;
        lastPanelAt = now;
        const dead = await broker.listDeadLetters({ limit: 1000 });
        const trace = lastFlow ? await traceFlow(sql, lastFlow) : [];
        return {
          id: 'enrollment',
          title: `Enrollment choreography (${broker.kind} broker)`,
          stats: [
            { label: 'outbox backlog', value: s.backlog, unit: 'rows' },
            { label: 'oldest waiting', value: Math.round(s.oldestAgeMs), unit: 'ms' },
            { label: 'relay rate', value: Math.round(rate * 10) / 10, unit: 'msg/s' },
            { label: 'published by relay', value: relay.published, unit: 'msgs' },
            { label: 'parked rows', value: s.parked },
            { label: 'dead letters', value: dead.length },
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
