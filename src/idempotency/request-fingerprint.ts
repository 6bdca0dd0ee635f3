import { createHash } from 'node:crypto';
import { InvalidIdempotencyKeyError } from './idempotency-errors.js';

/** The longest key accepted, as Stripe and the IETF draft's examples allow. */
export const maxIdempotencyKeyLength = 255;

/**
 * The key of an `Idempotency-Key` header value: 1 to 255 printable ASCII characters (space to
 * `~`). A value in double quotes (the IETF draft's structured-field string, `"8e03..."`) gives
 * the text between them. Anything else is refused with `InvalidIdempotencyKeyError` (HTTP 400).
 */
export function parseIdempotencyKey(value: string): string {
  let key = value.trim();
  if (key.length >= 2 && key.startsWith('"') && key.endsWith('"')) key = key.slice(1, -1);
  if (key.length === 0)
    throw new InvalidIdempotencyKeyError(
      'the Idempotency-Key header is empty; send 1 to 255 printable ASCII characters, such as a UUID',
    );
  if (key.length > maxIdempotencyKeyLength)
    throw new InvalidIdempotencyKeyError(
      `the Idempotency-Key header has ${key.length} characters; send at most ${maxIdempotencyKeyLength}, such as a UUID`,
    );
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c)
      throw new InvalidIdempotencyKeyError(
        `the Idempotency-Key header holds a character that is not allowed at position ${i + 1}; send printable ASCII only (no control characters, quotes, backslashes or non-ASCII), such as a UUID`,
      );
  }
  return key;
}

/** Object keys sorted at every depth, so that `{a,b}` and `{b,a}` are the same request. */
function sortKeys(_key: string, value: unknown): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  return Object.fromEntries(
    Object.entries(value as Record<string, unknown>).sort(([a], [b]) =>
      a < b ? -1 : a > b ? 1 : 0,
    ),
  );
}

/**
 * What a request asks, as a SHA-256 (hex) of its method, path and body: a parsed JSON body in
 * canonical form (keys sorted, so key order and whitespace do not count), raw bytes or text as
 * they are. The same key with another fingerprint is a different request (HTTP 422).
 */
export function requestFingerprint(request: {
  method: string;
  path: string;
  body?: unknown;
}): string {
  const hash = createHash('sha256');
  hash.update(JSON.stringify([request.method.toUpperCase(), request.path]));
  hash.update('\n');
  const body = request.body;
  if (body === undefined || body === null) hash.update('-');
  else if (body instanceof Uint8Array) hash.update('b').update(body);
  else if (typeof body === 'string') hash.update('s').update(body);
  else hash.update('j').update(JSON.stringify(body, sortKeys) ?? '');
  return hash.digest('hex');
}
