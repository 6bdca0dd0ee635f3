import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { HeldKey, Idempotency } from './idempotency.js';
import { IdempotencyKeyInProgressError, InvalidIdempotencyKeyError } from './idempotency-errors.js';
import { parseIdempotencyKey, requestFingerprint } from './request-fingerprint.js';

export interface FastifyIdempotencyOptions {
  /** The rules and the store (`new Idempotency({ store, ttlMs, waitMs, ... })`). */
  idempotency: Idempotency;
  /** Methods whose requests may carry a key. Default POST, PUT, PATCH, DELETE. */
  methods?: readonly string[];
  /** The request header. Default `idempotency-key`. */
  header?: string;
  /**
   * Who sends the request, as a string: keys of different principals never meet. Default: a
   * SHA-256 of the Authorization header (only a holder of the whole credential reaches its
   * keys), or `anonymous` without one. Return undefined to leave a request out.
   */
  principal?: (req: FastifyRequest) => string | undefined;
  /** Response headers kept and replayed with the body. Default content-type, location, etag, retry-after, allow, www-authenticate. */
  replayHeaders?: readonly string[];
  /** The header that marks a replayed response. Default `idempotent-replayed` (value `true`). */
  replayedHeader?: string;
}

const held = Symbol('idempotency key held by this request');
type WithHeld = FastifyRequest & { [held]?: HeldKey };

const defaultPrincipal = (req: FastifyRequest): string => {
  const auth = req.headers.authorization;
  return auth === undefined ? 'anonymous' : createHash('sha256').update(auth).digest('hex');
};

/** How many times a header is sent (Node joins repeats of most headers into one value). */
function count(req: FastifyRequest, name: string): number {
  let n = 0;
  const raw = req.raw.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === name) n++;
  return n;
}

function payloadBytes(payload: unknown): Uint8Array | undefined {
  if (payload === null || payload === undefined) return new Uint8Array();
  if (typeof payload === 'string') return new Uint8Array(Buffer.from(payload, 'utf8'));
  if (payload instanceof Uint8Array) return new Uint8Array(payload);
  return undefined;
}

/**
 * Idempotency keys for a Fastify server: a request of a mutating method (POST, PUT, PATCH,
 * DELETE) with an `Idempotency-Key` header runs once; its response (status, chosen headers,
 * body, errors included) is kept and replayed to every retry with the same key, marked
 * `Idempotent-Replayed: true`. The same key with another method, path or body is refused with
 * 422, a malformed key with 400, and a duplicate that outwaits the first request with 409 (see
 * `Idempotency`). Keys are scoped by principal, method and route. A request without the header
 * is served as before. Refusals are thrown as errors with a `statusCode` and a stable `code`,
 * so the server's error handler formats them.
 *
 * Register it on the root instance (it applies to every route, like `fastify-plugin`).
 */
export async function fastifyIdempotency(
  http: FastifyInstance,
  options: FastifyIdempotencyOptions,
): Promise<void> {
  const { idempotency } = options;
  const methods = new Set(
    (options.methods ?? ['POST', 'PUT', 'PATCH', 'DELETE']).map((m) => m.toUpperCase()),
  );
  const header = (options.header ?? 'idempotency-key').toLowerCase();
  const principal = options.principal ?? defaultPrincipal;
  const keep = (
    options.replayHeaders ?? [
      'content-type',
      'location',
      'etag',
      'retry-after',
      'allow',
      'www-authenticate',
    ]
  ).map((h) => h.toLowerCase());
  const replayed = options.replayedHeader ?? 'idempotent-replayed';

  http.addHook('preHandler', async (req: WithHeld, reply: FastifyReply) => {
    if (!methods.has(req.method)) return;
    const value = req.headers[header];
    if (value === undefined) return;
    const route = req.routeOptions.url;
    const who = route === undefined ? undefined : principal(req);
    if (who === undefined) return;
    if (typeof value !== 'string' || count(req, header) > 1)
      throw new InvalidIdempotencyKeyError(
        `send one ${options.header ?? 'Idempotency-Key'} header, not several`,
      );
    const key = parseIdempotencyKey(value);
    const scope = JSON.stringify([who, req.method, route]);
    const fingerprint = requestFingerprint({ method: req.method, path: req.url, body: req.body });
    let got: Awaited<ReturnType<Idempotency['acquire']>>;
    try {
      got = await idempotency.acquire(scope, key, fingerprint);
    } catch (err) {
      if (err instanceof IdempotencyKeyInProgressError)
        reply.header('retry-after', String(Math.max(1, Math.ceil(err.retryAfterMs / 1000))));
      throw err;
    }
    if (got.replayed) {
      const r = got.response;
      reply.code(r.status);
      for (const [name, v] of Object.entries(r.headers)) reply.header(name, v);
      reply.header(replayed, 'true');
      return reply.send(Buffer.from(r.body.buffer, r.body.byteOffset, r.body.byteLength));
    }
    req[held] = got;
    // A route that writes its own response (reply.hijack) never reaches onSend: give the key
    // up once the response is written, so that a retry runs it again.
    reply.raw.once('finish', () => {
      const h = req[held];
      if (h) {
        req[held] = undefined;
        void h
          .release()
          .catch((err: unknown) => req.log.error({ err }, 'idempotency key release failed'));
      }
    });
  });

  // Responses being kept, awaited when the server closes.
  const keeping = new Set<Promise<unknown>>();
  http.addHook('onSend', async (req: WithHeld, reply, payload) => {
    const h = req[held];
    if (!h) return payload;
    req[held] = undefined;
    const body = payloadBytes(payload);
    let kept: Promise<unknown>;
    if (body === undefined) {
      // A streamed body is not kept: the key is given up, and a retry runs again.
      kept = h.release();
    } else {
      const headers: Record<string, string> = {};
      for (const name of keep) {
        const v = reply.getHeader(name);
        if (v !== undefined) headers[name] = Array.isArray(v) ? v.join(', ') : String(v);
      }
      // Kept while the response is sent, not before: a retry that arrives first waits for it
      // (as a concurrent duplicate does), and a crash between the effect and this write has the
      // same outcome either way (the key stays held until its lease ends).
      kept = h.complete({ status: reply.statusCode, headers, body });
    }
    const tracked: Promise<unknown> = kept
      .catch((err: unknown) => {
        // The response is sent anyway (its effect happened); the key stays held until its lease ends.
        req.log.error({ err }, 'idempotency: the response could not be kept');
      })
      .finally(() => keeping.delete(tracked));
    keeping.add(tracked);
    return payload;
  });
  http.addHook('onClose', async () => {
    await Promise.all(keeping);
  });
}

// Hooks apply to the instance it is registered on, not to an encapsulated child (what the
// fastify-plugin package marks with these symbols).
Object.assign(fastifyIdempotency, {
  [Symbol.for('skip-override')]: true,
  [Symbol.for('fastify.display-name')]: 'cloud-data-patterns-idempotency',
});
