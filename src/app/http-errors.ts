import type { FastifyError, FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { CdpError, ValidationError } from '../core/errors.js';
import { RouteTable } from './route-table.js';

/** Parse a request part with zod; a failure becomes a ValidationError (HTTP 400) listing each issue. */
export function parseInput<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issues = r.error.issues.map((i) => ({
    path: i.path.join('.') || what,
    message: i.message,
  }));
  throw new ValidationError(
    `invalid ${what}: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
    issues,
  );
}

/** No control characters (CR, LF, tab, ...): names, ids and titles are one line. */
function isSingleLine(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return false;
  }
  return true;
}

/** A trimmed, non-empty, one-line string of at most `max` characters. */
export function singleLine(max: number) {
  return z
    .string()
    .trim()
    .min(1)
    .max(max)
    .refine(isSingleLine, 'must be one line, without control characters such as CR or LF');
}

/** A client-given value quoted for a message, cut to 80 characters. */
export function quote(value: string): string {
  return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
}

/** A request the platform refuses, with its own code and HTTP status. */
export class RequestRefusedError extends CdpError {
  readonly status: number;
  constructor(code: string, status: number, message: string) {
    super(code, message);
    this.status = status;
  }
}

export class NotFoundError extends RequestRefusedError {
  constructor(what: string, code = 'NOT_FOUND') {
    super(code, 404, `${what} was not found`);
  }
}

/** No credentials, or credentials that do not name a live key (HTTP 401). */
export class UnauthenticatedError extends RequestRefusedError {
  constructor(message: string) {
    super('UNAUTHENTICATED', 401, message);
  }
}

/** The key is valid but may not do this (HTTP 403). */
export class ForbiddenError extends RequestRefusedError {
  constructor(message: string, code = 'FORBIDDEN') {
    super(code, 403, message);
  }
}

/** Statuses of codes raised below the HTTP layer (by modules and the domain model). */
const STATUS_BY_CODE: ReadonlyMap<string, number> = new Map([
  ['VALIDATION_FAILED', 400],
  ['NOT_FOUND', 404],
  ['CONCURRENCY_CONFLICT', 409],
  ['ALREADY_REVIEWED', 409],
  ['REVIEW_NOT_FOUND', 404],
  ['INSUFFICIENT_FUNDS', 409],
  ['TOPIC_MISMATCH', 409],
  ['DOMAIN_RULE_REFUSED', 409],
  ['IDEMPOTENCY_KEY_INVALID', 400],
  ['IDEMPOTENCY_KEY_IN_PROGRESS', 409],
  ['IDEMPOTENCY_KEY_REUSED', 422],
  ['ENGINE_UNAVAILABLE', 503],
  ['TIMEOUT', 504],
]);

/**
 * Fastify's own client errors whose messages are safe to show; any other error becomes a 500
 * with a fixed message (its text may carry SQL or paths) and is logged.
 */
function clientError(
  err: FastifyError,
): { status: number; code: string; message: string } | undefined {
  if (!err.statusCode || err.statusCode >= 500) return undefined;
  if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE')
    return {
      status: 413,
      code: 'BODY_TOO_LARGE',
      message: 'the request body is larger than the platform accepts (1 MiB); send less',
    };
  if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE')
    return {
      status: 415,
      code: 'UNSUPPORTED_MEDIA_TYPE',
      message: 'send the body as application/json',
    };
  if (err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY')
    return {
      status: 400,
      code: 'EMPTY_BODY',
      message: 'the body is empty; send a JSON object (or no content-type header)',
    };
  if (err instanceof SyntaxError || err.code === 'FST_ERR_CTP_INVALID_JSON_BODY')
    return {
      status: 400,
      code: 'INVALID_JSON',
      message: `the body is not valid JSON: ${err.message}`,
    };
  return { status: err.statusCode, code: err.code ?? 'BAD_REQUEST', message: err.message };
}

/** No lone UTF-16 surrogate (String.prototype.isWellFormed, which ES2023's lib lacks). */
function wellFormed(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xd800 || c > 0xdfff) continue;
    if (c > 0xdbff) return false;
    const next = s.charCodeAt(i + 1);
    if (!(next >= 0xdc00 && next <= 0xdfff)) return false;
    i++;
  }
  return true;
}

/**
 * Every string anywhere in `value` must be storable text: no NUL (PostgreSQL text cannot hold
 * it) and no lone UTF-16 surrogate (not encodable as UTF-8). Throws a ValidationError naming the
 * field.
 */
export function checkText(value: unknown, path: string): void {
  if (typeof value === 'string') {
    if (value.includes('\u0000'))
      throw new ValidationError(
        `${path} contains a NUL character (U+0000), which the platform does not store; remove it`,
        [{ path, message: 'contains U+0000' }],
      );
    if (!wellFormed(value))
      throw new ValidationError(
        `${path} contains a lone UTF-16 surrogate (not valid Unicode text); send valid UTF-8`,
        [{ path, message: 'not well-formed Unicode' }],
      );
    return;
  }
  if (Array.isArray(value)) {
    for (const [i, v] of value.entries()) checkText(v, `${path}.${i}`);
    return;
  }
  if (value !== null && typeof value === 'object')
    for (const [k, v] of Object.entries(value)) {
      checkText(k, `${path} (a field name)`);
      checkText(v, `${path}.${k}`);
    }
}

/**
 * Errors as JSON `{ error: { code, message, issues? } }` with a status chosen by the error; a
 * wrong method on a known path is a 405 with Allow; every string in a body, query or path is
 * checked to be storable text before a handler sees it.
 */
export function installErrorHandler(app: FastifyInstance): void {
  const table = new RouteTable();
  // JSON bodies must be valid UTF-8: a malformed byte is refused, not turned into U+FFFD.
  const json = app.getDefaultJsonParser('error', 'ignore');
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body, done) => {
    let text: string;
    try {
      text = utf8.decode(body as Buffer);
    } catch {
      done(
        new ValidationError('the body is not valid UTF-8; send JSON encoded as UTF-8', [
          { path: 'body', message: 'invalid UTF-8' },
        ]),
        undefined,
      );
      return;
    }
    json(req, text, done);
  });
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    // A route hidden from the API document (the reference page's own files) is no suggestion.
    table.add(route.url, methods, (route.schema as { hide?: boolean } | undefined)?.hide !== true);
  });
  app.addHook('preValidation', async (req: FastifyRequest) => {
    checkText(req.params, 'path');
    checkText(req.query, 'query');
    checkText(req.body, 'body');
  });
  app.setErrorHandler((err: FastifyError | CdpError | Error, request, reply) => {
    if (err instanceof CdpError) {
      const status =
        err instanceof RequestRefusedError ? err.status : (STATUS_BY_CODE.get(err.code) ?? 500);
      if (status >= 500) request.log.error({ err }, 'request failed');
      // An engine's error (SQL_*, or a code with no status here) may carry statement text: it
      // is logged, and the client gets a fixed message.
      if (status === 500)
        return reply
          .status(500)
          .send({ error: { code: 'INTERNAL', message: 'internal error; see the server log' } });
      if (status === 401) reply.header('www-authenticate', 'Bearer');
      return reply.status(status).send({
        error: {
          code: err.code,
          message: err.message,
          ...(err instanceof ValidationError ? { issues: err.issues } : {}),
        },
      });
    }
    const client = clientError(err as FastifyError);
    if (client)
      return reply
        .status(client.status)
        .send({ error: { code: client.code, message: client.message } });
    request.log.error({ err }, 'request failed');
    return reply
      .status(500)
      .send({ error: { code: 'INTERNAL', message: 'internal error; see the server log' } });
  });
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0]!;
    const allowed = table.allowed(path);
    if (allowed.length > 0 && !allowed.includes(request.method)) {
      return reply
        .status(405)
        .header('allow', allowed.join(', '))
        .send({
          error: {
            code: 'METHOD_NOT_ALLOWED',
            message: `${request.method} is not allowed on ${path}; use ${allowed.join(', ')}`,
          },
        });
    }
    const nearest = table.nearest(path, request.method);
    const listed = nearest.map((r) => `${r.methods.join(', ')} ${r.url}`);
    reply.status(404).send({
      error: {
        code: 'NOT_FOUND',
        message: `no route ${request.method} ${path}; nearest: ${listed.join('; ')} (GET /api/openapi.json describes every route)`,
        nearest: nearest.map((r) => ({ url: r.url, methods: r.methods })),
      },
    });
  });
}
