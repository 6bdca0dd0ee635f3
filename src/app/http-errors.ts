import type { FastifyError, FastifyInstance } from 'fastify';
import type { z } from 'zod';
import { CdpError, ValidationError } from '../core/errors.js';

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

const STATUS_BY_CODE: Record<string, number> = {
  VALIDATION_FAILED: 400,
  NOT_FOUND: 404,
  CONCURRENCY_CONFLICT: 409,
  SQL_UNIQUE_VIOLATION: 409,
  ENGINE_UNAVAILABLE: 503,
  TIMEOUT: 504,
};

export class NotFoundError extends CdpError {
  constructor(what: string) {
    super('NOT_FOUND', `${what} was not found`);
  }
}

/** Errors as JSON `{ error: { code, message, issues? } }` with a status chosen by code. */
export function installErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError | CdpError | Error, request, reply) => {
    if (err instanceof CdpError) {
      const status = STATUS_BY_CODE[err.code] ?? 500;
      if (status >= 500) request.log.error({ err }, 'request failed');
      return reply.status(status).send({
        error: {
          code: err.code,
          message: err.message,
          ...(err instanceof ValidationError ? { issues: err.issues } : {}),
        },
      });
    }
    const fe = err as FastifyError;
    if (fe.statusCode && fe.statusCode < 500) {
      return reply
        .status(fe.statusCode)
        .send({ error: { code: fe.code ?? 'BAD_REQUEST', message: fe.message } });
    }
    request.log.error({ err }, 'request failed');
    return reply
      .status(500)
      .send({ error: { code: 'INTERNAL', message: 'internal error; see the server log' } });
  });
  app.setNotFoundHandler((request, reply) => {
    reply.status(404).send({
      error: {
        code: 'NOT_FOUND',
        message: `no route ${request.method} ${request.url}; see GET /api`,
      },
    });
  });
}
