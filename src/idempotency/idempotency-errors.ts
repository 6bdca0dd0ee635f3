import { CdpError } from '../core/errors.js';

/**
 * The refusals of idempotency keys. Each carries the HTTP status it stands for (`statusCode`, the
 * property Fastify's default error handler reads), so an HTTP layer answers without a table.
 */
export abstract class IdempotencyError extends CdpError {
  abstract readonly statusCode: number;
}

/** The Idempotency-Key header is malformed: empty, over 255 characters, or not printable ASCII. */
export class InvalidIdempotencyKeyError extends IdempotencyError {
  readonly statusCode = 400;
  constructor(message: string) {
    super('IDEMPOTENCY_KEY_INVALID', message);
  }
}

/** The key was used before for a different request (another method, path or body). */
export class IdempotencyKeyReusedError extends IdempotencyError {
  readonly statusCode = 422;
  constructor() {
    super(
      'IDEMPOTENCY_KEY_REUSED',
      'this Idempotency-Key was used for a different request (another method, path or body); send a new key for a new request, or resend the first request unchanged to get its response',
    );
  }
}

/** A request with the same key is still running and did not finish within the wait. */
export class IdempotencyKeyInProgressError extends IdempotencyError {
  readonly statusCode = 409;
  /** How long the first request may still hold the key, in ms (for a Retry-After). */
  readonly retryAfterMs: number;
  constructor(waitedMs: number, retryAfterMs: number) {
    super(
      'IDEMPOTENCY_KEY_IN_PROGRESS',
      `a request with this Idempotency-Key is still being processed (waited ${waitedMs} ms for it); retry later with the same key to get its response`,
    );
    this.retryAfterMs = retryAfterMs;
  }
}
