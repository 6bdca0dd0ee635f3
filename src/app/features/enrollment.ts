import type { SqlTransaction } from '../../engines/sql/sql-client.js';
import {
  ChoreographyService,
  DeadLetterNotFoundError,
  dlqList,
  dlqReplay,
  messagingMigrations,
  OutboxRelay,
  openBroker,
  outboxStats,
  traceFlow,
} from '../../messaging/index.js';
import { recordingBroker } from '../demos/recent-messages.js';
import { openRelayRestartDemo } from '../demos/relay-restart.js';
import { enrollmentDocs as docs, enrollBody, idParam } from '../enrollment/docs.js';
import { enrollmentMigrations, enrollmentTypes as types } from '../enrollment/schema.js';
import type { PlatformFeature } from '../feature.js';
import { NotFoundError, parseInput, quote, RequestRefusedError } from '../http-errors.js';
import type { CatalogService } from './catalog.js';
import type { ShardingService } from './sharding.js';

/**
 * Course enrollment as a choreography: the enrollment service writes EnrollmentRequested
 * through the outbox; the email, recommendations and instructor-stats services react (each
 * with its inbox) and emit their own events. In-process broker by default; NATS JetStream
 * with CDP_NATS_URL, RabbitMQ with CDP_AMQP_URL. Enrollments are sharded by student id (the
 * sharding feature's map); the outbox stays in the catalog database (see
 * src/app/sharding/enrollments.ts for how the two commits are ordered).
 */

/** The enrollment feature's service: who is enrolled in what. */
export interface EnrollmentService {
  isEnrolled(student: string, course: string): Promise<boolean>;
  /**
   * Enroll as part of a purchase: the row on the student's shard (recognised when the same
   * purchase runs the step again), EnrollmentRequested through the outbox in the caller's
   * transaction; false (and nothing written) when the student was already enrolled otherwise.
   */
  enroll(
    tx: SqlTransaction,
    student: string,
    course: string,
    purchaseId?: string,
  ): Promise<boolean>;
  /** Write a purchase's receipt through the outbox, in the caller's transaction. */
  sendReceipt(
    tx: SqlTransaction,
    receipt: { purchaseId: string; student: string; course: string; amountCents: number },
  ): Promise<void>;
}

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
    const sharding = ctx.services.get('sharding') as ShardingService | undefined;
    if (!sharding)
      throw new Error('the enrollment feature needs the sharding feature started before it');
    const enrollments = sharding.enrollments;
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
    enrollments.useAnnouncer((tx, student, course) =>
      enrollment.emit(tx, {
        type: 'enrollment.requested',
        data: { student, course },
        key: `${student.length}:${student}${course}`,
      }),
    );
    await enrollments.adoptUnsharded();
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
      if (!(await enrollments.record(student, course)))
        throw new RequestRefusedError(
          'ALREADY_ENROLLED',
          409,
          `student ${quote(student)} is already enrolled in course ${course}`,
        );
      const announced = await sql.transaction((tx) => enrollments.announce(tx, student, course));
      await enrollments.markAnnounced(student, course);
      const env = { id: announced.eventId, correlationid: announced.correlationId };
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
      isEnrolled: (student, course) => enrollments.isEnrolled(student, course),
      enroll: async (tx, student, course, purchaseId) => {
        if (!(await enrollments.record(student, course, purchaseId))) return false;
        // The sweeper marks the shard row once this transaction has committed.
        await enrollments.announce(tx, student, course);
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
