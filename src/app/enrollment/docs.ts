import { z } from 'zod';
import { courseNotFound, documented, examples, refusal } from '../api-docs.js';
import { singleLine } from '../http-errors.js';

// The student is the caller (the API key's subject), never a field of the body.
export const enrollBody = z.strictObject({ course: singleLine(100) });
export const idParam = z.object({ id: z.string().min(1).max(200) });

/** The enrollment feature's routes: summaries, descriptions, schemas, refusals. */
export const enrollmentDocs = {
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
      courseNotFound,
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
