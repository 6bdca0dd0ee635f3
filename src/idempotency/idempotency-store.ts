/**
 * The response an idempotency key keeps: what the first request answered, replayed as is to
 * every retry with the same key. Errors (4xx, 5xx) are kept too: a retry sees the same refusal.
 */
export interface StoredResponse {
  status: number;
  /** The headers chosen to replay (content-type, location, ...), lower-case names. */
  headers: Record<string, string>;
  body: Uint8Array;
}

/** What `begin` is asked: one key of one scope, the request's fingerprint, and the times. */
export interface BeginRequest {
  /**
   * Who and where the key belongs: the principal, method and route (as the caller builds it).
   * Keys of different scopes never meet, so two clients choosing the same key never collide.
   */
  scope: string;
  /** The client's Idempotency-Key. */
  key: string;
  /** A hash of what the request asks (method, path, canonical body): a reuse must match it. */
  fingerprint: string;
  /** Now, in ms since the epoch, from the caller's clock. */
  now: number;
  /** How long the key and its response are kept after the first request, in ms. */
  ttlMs: number;
  /**
   * How long the first request may hold the key before another may take it over, in ms: the
   * recovery point after a crash that left no response.
   */
  leaseMs: number;
}

/**
 * The outcome of `begin`:
 * - `started`: this request holds the key (a new key, an expired one, or one whose lease ran out
 *   without a response); it runs and then calls `complete` (or `release`) with `token`.
 * - `replay`: a request with the same key and fingerprint finished; here is its response.
 * - `in-progress`: a request with the same key and fingerprint holds the key right now.
 * - `mismatch`: the key was used for a different request (another fingerprint).
 */
export type BeginResult =
  | { outcome: 'started'; token: string; recovered: boolean }
  | { outcome: 'replay'; response: StoredResponse }
  | { outcome: 'in-progress'; lockedUntil: number }
  | { outcome: 'mismatch' };

/**
 * Where idempotency keys live: one record per (scope, key), taken atomically by `begin` (two
 * requests racing on one key: exactly one gets `started`). Adapters: memory, SQL (PGlite and
 * PostgreSQL), Redis; all pass `idempotencyStoreContract` from `cloud-data-patterns/testing`.
 */
export interface IdempotencyStore {
  begin(request: BeginRequest): Promise<BeginResult>;
  /**
   * Keep the response of the request holding `token`. Returns false (and keeps nothing) when the
   * key is no longer that request's: its lease ran out and another request took it over.
   */
  complete(scope: string, key: string, token: string, response: StoredResponse): Promise<boolean>;
  /** Give the key up without a response (the request failed before any effect): a retry runs. */
  release(scope: string, key: string, token: string): Promise<void>;
  /** Remove every key that expired at `now`; returns how many (0 when the engine expires keys itself). */
  purgeExpired(now: number): Promise<number>;
}
