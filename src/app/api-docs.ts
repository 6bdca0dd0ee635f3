import type { FastifySchema } from 'fastify';
import { z } from 'zod';
import { ValidationError } from '../core/errors.js';
import type { Role } from './auth.js';
import { parseInput } from './http-errors.js';

/**
 * How a route is described in the platform's OpenAPI document. The request schemas are the zod
 * schemas the handler itself parses with (`parseInput`), so the document cannot drift from what
 * the route accepts; they are turned into JSON Schema (draft 2020-12, OpenAPI 3.1's dialect) by
 * zod's own `z.toJSONSchema`.
 */
export interface RouteDoc {
  summary: string;
  /** What the route does and when to use it; the access rule is appended from `roles`. */
  description: string;
  tags: string[];
  /**
   * Who may call it: absent for a public route; otherwise the roles whose Bearer API key is
   * accepted (an admin key always is), `[]` for admins only.
   */
  roles?: readonly Role[];
  /** A sentence added to the access rule (an ownership check, such as "their own courses"). */
  access?: string;
  params?: z.ZodType;
  query?: z.ZodType;
  body?: z.ZodType;
  /** Named examples of a valid body; each must pass `body` (a test checks it). */
  bodyExamples?: Record<string, { summary: string; value: unknown }>;
  /** Success responses by status. */
  responses: Record<number, ResponseDoc>;
  /** The refusals this route can answer with, beyond those its `roles` and schemas imply. */
  errors?: readonly ErrorDoc[];
  /**
   * Accepts an `Idempotency-Key` header (set by the platform on every mutating route): documents
   * the header and its refusals (400, 409, 422).
   */
  idempotencyKey?: boolean;
}

export interface ResponseDoc {
  description: string;
  /** The body's schema; absent for a response with no body (a redirect). */
  schema?: z.ZodType;
  /** A media type other than application/json. */
  contentType?: string;
  example?: unknown;
  /** Response headers, by name, with what each says. */
  headers?: Record<string, string>;
}

/** A refusal: its status, its stable code and an example of its message. */
export interface ErrorDoc {
  status: number;
  code: string;
  message: string;
  /** The invalid fields, for VALIDATION_FAILED. */
  issues?: readonly { path: string; message: string }[];
}

export const refusal = (status: number, code: string, message: string): ErrorDoc => ({
  status,
  code,
  message,
});

/** The body of every refusal: `{ error: { code, message, issues? } }`. */
export const apiError = z.object({
  error: z.object({
    code: z.string().describe('stable code a client can act on'),
    message: z.string().describe('what happened and what to do'),
    issues: z
      .array(z.object({ path: z.string(), message: z.string() }))
      .optional()
      .describe('each invalid field (VALIDATION_FAILED only)'),
  }),
});

/** Ids used in examples: a course, a student, a key. */
export const examples = {
  courseId: '0193a5b2-7c1e-7a3b-9f21-4d5e6f708192',
  student: 'demo-student-1',
  instructor: 'Ada Park',
  keyId: 'cdpk_9f3c2a7b1e4d5f60718293a4',
  token: 'cdpk_9f3c2a7b1e4d5f60718293a4.q1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6j7k8l9z0x1c',
  valetKeyId: 'cdpv_5e1f0a9b8c7d6e5f4a3b2c1d',
  correlationId: '0193a5b2-8d2f-7c4e-a012-3b4c5d6e7f80',
} as const;

/** The refusal of a route that acts on a course that does not exist (catalog, media, reviews, ...). */
export const courseNotFound = refusal(
  404,
  'COURSE_NOT_FOUND',
  `course "${examples.courseId}" (GET /api/catalog/courses lists the courses) was not found`,
);

/** The name of the Bearer API key scheme in `components.securitySchemes`. */
export const bearerScheme = 'apiKey';

/** Refusals implied by a route's shape: its key check and its schemas. */
function impliedErrors(doc: RouteDoc): ErrorDoc[] {
  const out: ErrorDoc[] = [];
  if (doc.params || doc.query || doc.body) out.push(validationExample(doc));
  if (doc.body)
    out.push(
      refusal(400, 'INVALID_JSON', 'the body is not valid JSON: Unexpected end of JSON input'),
      refusal(
        413,
        'BODY_TOO_LARGE',
        'the request body is larger than the platform accepts (1 MiB); send less',
      ),
      refusal(415, 'UNSUPPORTED_MEDIA_TYPE', 'send the body as application/json'),
    );
  if (doc.roles) {
    out.push(
      refusal(
        401,
        'UNAUTHENTICATED',
        'this route needs an API key: send Authorization: Bearer <key> (the demo keys are in the file the platform names at start)',
      ),
    );
    const other = (['viewer', 'student', 'instructor'] as const).find(
      (r) => !doc.roles?.includes(r),
    );
    out.push(
      refusal(
        403,
        'FORBIDDEN',
        `a ${other} key may not do this; it needs a key with role ${[...doc.roles, 'admin'].join(' or ')}`,
      ),
    );
  }
  return out;
}

/** Inputs a client gets wrong: a missing or unexpected field, an over-long or negative value. */
function wrongInputs(schema: z.ZodType, what: 'path' | 'query' | 'body'): unknown[] {
  if (what === 'body') return [{}, { unexpected: 'field' }];
  const keys = Object.keys((jsonSchema(schema, 'input').properties as object | undefined) ?? {});
  // Path parameters are always there; query parameters may be left out.
  const base = Object.fromEntries(what === 'path' ? keys.map((k) => [k, 'x']) : []);
  return [
    base,
    ...keys.map((k) => ({ ...base, [k]: 'x'.repeat(1100) })),
    ...keys.map((k) => ({ ...base, [k]: '-1' })),
  ];
}

/**
 * The route's own answer to a wrong input, as its handler gives it (`parseInput` on the route's
 * schemas): the body's, else the query's, else the path's.
 */
function validationExample(doc: RouteDoc): ErrorDoc {
  const parts = [
    ['body', doc.body],
    ['query', doc.query],
    ['path', doc.params],
  ] as const;
  for (const [what, schema] of parts) {
    if (!schema) continue;
    for (const input of wrongInputs(schema, what)) {
      try {
        parseInput(schema, input, what);
      } catch (err) {
        if (err instanceof ValidationError)
          return { ...refusal(400, err.code, err.message), issues: err.issues };
        throw err;
      }
    }
  }
  return refusal(400, 'VALIDATION_FAILED', 'invalid input; the message names each invalid field');
}

/** The refusals of the Idempotency-Key header, on a route that accepts one. */
function idempotencyErrors(doc: RouteDoc): ErrorDoc[] {
  const out: ErrorDoc[] = [];
  if (doc.idempotencyKey)
    out.push(
      refusal(
        400,
        'IDEMPOTENCY_KEY_INVALID',
        'the Idempotency-Key header has 300 characters; send at most 255, such as a UUID',
      ),
      refusal(
        409,
        'IDEMPOTENCY_KEY_IN_PROGRESS',
        'a request with this Idempotency-Key is still being processed (waited 10000 ms for it); retry later with the same key to get its response',
      ),
      refusal(
        422,
        'IDEMPOTENCY_KEY_REUSED',
        'this Idempotency-Key was used for a different request (another method, path or body); send a new key for a new request, or resend the first request unchanged to get its response',
      ),
    );
  return out;
}

/** Every refusal a route documents, implied and its own, without repeats. */
export function routeErrors(doc: RouteDoc): ErrorDoc[] {
  const seen = new Set<string>();
  return [...impliedErrors(doc), ...(doc.errors ?? []), ...idempotencyErrors(doc)].filter((e) => {
    const key = `${e.status} ${e.code}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** The access rule, in words, as the description's last paragraph. */
export function accessRule(doc: RouteDoc): string {
  if (!doc.roles) return 'Access: public, no API key needed.';
  const who =
    doc.roles.length === 0
      ? 'an admin key only'
      : `role ${doc.roles.join(', ')} or admin (an admin key is always accepted)`;
  return `Access: Bearer API key with ${who}.${doc.access ? ` ${doc.access}` : ''}`;
}

/** JSON Schema (2020-12) of a zod schema, as it is embedded in an OpenAPI 3.1 document. */
export function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): Record<string, unknown> {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' });
  return rest;
}

const nonEmpty = <T extends object>(o: T): T | undefined =>
  Object.keys(o).length > 0 ? o : undefined;

/** The `Idempotency-Key` request header, as documented on mutating routes. */
const idempotencyKeyHeader = {
  type: 'object',
  properties: {
    'idempotency-key': {
      type: 'string',
      minLength: 1,
      maxLength: 255,
      description:
        'Makes a retry safe: the first request with a key runs and its response (errors included) is kept for 24 hours; a retry with the same key and body gets that response again, marked `Idempotent-Replayed: true`. The same key with another body is refused with 422; a retry while the first still runs waits for it (up to 10 s, then 409). 1 to 255 printable ASCII characters, such as a UUID; keys of different API keys never meet.',
      examples: ['0193a5b2-9e3f-7d5a-b123-4c5d6e7f8091'],
    },
  },
};

/** The Fastify `schema` of a documented route, in the form @fastify/swagger reads. */
export function fastifySchema(doc: RouteDoc): FastifySchema {
  const response: Record<string, unknown> = {};
  for (const [status, r] of Object.entries(doc.responses)) {
    const headers = r.headers
      ? Object.fromEntries(
          Object.entries(r.headers).map(([name, description]) => [
            name,
            { type: 'string', description },
          ]),
        )
      : undefined;
    response[status] = r.schema
      ? {
          description: r.description,
          ...(headers ? { headers } : {}),
          content: {
            [r.contentType ?? 'application/json']: {
              schema: jsonSchema(r.schema, 'output'),
              ...(r.example !== undefined ? { example: r.example } : {}),
            },
          },
        }
      : { description: r.description, type: 'null', ...(headers ? { headers } : {}) };
  }
  const byStatus = new Map<number, ErrorDoc[]>();
  for (const e of routeErrors(doc)) byStatus.set(e.status, [...(byStatus.get(e.status) ?? []), e]);
  for (const [status, errors] of byStatus) {
    const codes = errors.map((e) => e.code) as [string, ...string[]];
    const body = jsonSchema(
      apiError.extend({ error: apiError.shape.error.extend({ code: z.enum(codes) }) }),
      'output',
    );
    response[String(status)] = {
      description: errors.map((e) => e.code).join(', '),
      content: {
        'application/json': {
          schema: body,
          examples: Object.fromEntries(
            errors.map((e) => [
              e.code,
              {
                summary: e.code,
                value: {
                  error: {
                    code: e.code,
                    message: e.message,
                    ...(e.issues ? { issues: e.issues } : {}),
                  },
                },
              },
            ]),
          ),
        },
      },
    };
  }
  const body = doc.body
    ? {
        ...jsonSchema(doc.body, 'input'),
        ...(doc.bodyExamples ? { 'x-examples': doc.bodyExamples } : {}),
      }
    : undefined;
  return {
    summary: doc.summary,
    description: `${doc.description}\n\n${accessRule(doc)}`,
    tags: doc.tags,
    security: doc.roles ? [{ [bearerScheme]: [] }] : [],
    ...(doc.params ? { params: jsonSchema(doc.params, 'input') } : {}),
    ...(doc.query ? { querystring: jsonSchema(doc.query, 'input') } : {}),
    ...(doc.idempotencyKey ? { headers: idempotencyKeyHeader } : {}),
    ...(body ? { body } : {}),
    ...(nonEmpty(response) ? { response } : {}),
  } as FastifySchema;
}

/**
 * Route options for a documented route: its OpenAPI description, and the doc itself in the
 * route's config (walked by the test that every route is described). The schema describes and
 * never validates, on whatever Fastify instance the route is declared (the platform's, or one a
 * test or a user builds): the route carries pass-through compilers, and its handler parses the
 * input with the route's zod schemas after the key check.
 */
export function documented(doc: RouteDoc): {
  schema: FastifySchema;
  config: { doc: RouteDoc };
  validatorCompiler: () => () => true;
  serializerCompiler: () => (data: unknown) => string;
} {
  return {
    schema: fastifySchema(doc),
    config: { doc },
    validatorCompiler: () => () => true,
    serializerCompiler: () => (data: unknown) => JSON.stringify(data),
  };
}
