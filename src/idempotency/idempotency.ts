import { type Clock, systemClock } from '../core/clock.js';
import { type Counter, counter, type Registry } from '../core/metrics.js';
import { IdempotencyKeyInProgressError, IdempotencyKeyReusedError } from './idempotency-errors.js';
import type { IdempotencyStore, StoredResponse } from './idempotency-store.js';

export interface IdempotencyOptions {
  store: IdempotencyStore;
  clock?: Clock;
  /** How long a key and its response are kept, in ms. Default 24 hours. */
  ttlMs?: number;
  /**
   * How long a running request holds its key before another request may take it over, in ms:
   * the recovery point when the process running it died without a response. Keep it above
   * the longest request (the HTTP request timeout). Default 60,000.
   */
  leaseMs?: number;
  /**
   * How long a duplicate that arrives while the first request runs waits for it, in ms, before
   * it is refused with 409 (`IdempotencyKeyInProgressError`). 0 refuses at once, as Stripe does.
   * Default 10,000.
   */
  waitMs?: number;
  /**
   * How often a waiting duplicate asks the store again, in ms. Duplicates in this process are
   * woken as soon as the first request finishes here; polling finds a first request that runs
   * in another process. Default 50.
   */
  pollMs?: number;
  /**
   * Counts requests by outcome in `cdp_idempotency_requests_total{outcome}`: started,
   * recovered (taken over after a lease ran out), replayed, reused (422), in_progress (409).
   */
  registry?: Registry;
}

/** A key held by this request: keep its response with `complete`, or give it up with `release`. */
export interface HeldKey {
  readonly replayed: false;
  /** Whether the key was taken over from a request whose lease ran out without a response. */
  readonly recovered: boolean;
  /** Keep the response; false when the lease ran out and another request took the key. */
  complete(response: StoredResponse): Promise<boolean>;
  /** Give the key up without a response: the next request with it runs. */
  release(): Promise<void>;
}

/** The first request's response, for a retry with the same key and request. */
export interface ReplayedKey {
  readonly replayed: true;
  readonly response: StoredResponse;
}

const DAY_MS = 24 * 60 * 60 * 1000;

function positive(name: string, value: number | undefined, fallback: number, min = 1): number {
  const v = value ?? fallback;
  if (!Number.isFinite(v) || v < min)
    throw new RangeError(`idempotency: ${name} must be a finite number >= ${min}, got ${value}`);
  return v;
}

/**
 * Idempotency keys, framework-free: `acquire` takes a key for a request or gives the first
 * response back; `run` wraps a handler. The rules (after Stripe's keys and the IETF draft
 * "The Idempotency-Key HTTP Header Field"):
 * - the first request with a key runs, and its response (errors included) is kept for `ttlMs`;
 * - a retry with the same key and the same request gets that response again;
 * - the same key with a different request is refused (`IdempotencyKeyReusedError`, 422);
 * - a duplicate that arrives while the first runs waits up to `waitMs` for it, then gets its
 *   response; after that it is refused (`IdempotencyKeyInProgressError`, 409);
 * - a first request that dies without a response holds the key until its lease ends
 *   (`leaseMs`); then a retry runs again.
 */
export class Idempotency {
  readonly store: IdempotencyStore;
  readonly clock: Clock;
  readonly ttlMs: number;
  readonly leaseMs: number;
  readonly waitMs: number;
  readonly pollMs: number;
  readonly #outcomes: Counter<'outcome'> | undefined;
  /** Duplicates waiting in this process, by key, woken when the holder here finishes. */
  readonly #waiters = new Map<string, Set<() => void>>();

  constructor(options: IdempotencyOptions) {
    this.store = options.store;
    this.clock = options.clock ?? systemClock;
    this.ttlMs = positive('ttlMs', options.ttlMs, DAY_MS);
    this.leaseMs = positive('leaseMs', options.leaseMs, 60_000);
    this.waitMs = positive('waitMs', options.waitMs, 10_000, 0);
    this.pollMs = positive('pollMs', options.pollMs, 50);
    this.#outcomes =
      options.registry &&
      counter(
        options.registry,
        'cdp_idempotency_requests_total',
        'Requests with an idempotency key, by outcome',
        ['outcome'],
      );
    if (this.leaseMs > this.ttlMs)
      throw new RangeError('idempotency: leaseMs must not be longer than ttlMs');
  }

  /**
   * Take `key` of `scope` for a request with this fingerprint, or get the first request's
   * response. Throws `IdempotencyKeyReusedError` or `IdempotencyKeyInProgressError`.
   */
  async acquire(scope: string, key: string, fingerprint: string): Promise<HeldKey | ReplayedKey> {
    const id = JSON.stringify([scope, key]);
    const started = this.clock.now();
    const deadline = started + this.waitMs;
    for (;;) {
      // Listen before asking, so that a finish between the answer and the wait is not missed.
      let wake: () => void = () => {};
      const woken = new Promise<void>((resolve) => {
        wake = resolve;
      });
      const listeners = this.#waiters.get(id) ?? new Set();
      listeners.add(wake);
      this.#waiters.set(id, listeners);
      try {
        const now = this.clock.now();
        const r = await this.store.begin({
          scope,
          key,
          fingerprint,
          now,
          ttlMs: this.ttlMs,
          leaseMs: this.leaseMs,
        });
        if (r.outcome === 'started') {
          this.#outcomes?.inc({ outcome: r.recovered ? 'recovered' : 'started' });
          return this.#held(id, scope, key, r.token, r.recovered);
        }
        if (r.outcome === 'replay') {
          this.#outcomes?.inc({ outcome: 'replayed' });
          return { replayed: true, response: r.response };
        }
        if (r.outcome === 'mismatch') {
          this.#outcomes?.inc({ outcome: 'reused' });
          throw new IdempotencyKeyReusedError();
        }
        const left = deadline - this.clock.now();
        if (left <= 0) {
          this.#outcomes?.inc({ outcome: 'in_progress' });
          throw new IdempotencyKeyInProgressError(
            this.clock.now() - started,
            Math.max(0, r.lockedUntil - this.clock.now()),
          );
        }
        const ac = new AbortController();
        await Promise.race([woken, this.clock.sleep(Math.min(this.pollMs, left), ac.signal)]);
        ac.abort();
      } finally {
        listeners.delete(wake);
        if (listeners.size === 0 && this.#waiters.get(id) === listeners) this.#waiters.delete(id);
      }
    }
  }

  /**
   * Run `handler` once per key: the first request runs it and its response is kept; a retry
   * gets that response (`replayed: true`). A handler that throws gives the key up and the error
   * is rethrown: it made no response to keep, so a retry runs the handler again.
   */
  async run(
    scope: string,
    key: string,
    fingerprint: string,
    handler: () => Promise<StoredResponse>,
  ): Promise<{ response: StoredResponse; replayed: boolean }> {
    const got = await this.acquire(scope, key, fingerprint);
    if (got.replayed) return { response: got.response, replayed: true };
    let response: StoredResponse;
    try {
      response = await handler();
    } catch (err) {
      await got.release();
      throw err;
    }
    await got.complete(response);
    return { response, replayed: false };
  }

  /** Remove the keys that expired by this clock's now; returns how many. */
  purgeExpired(): Promise<number> {
    return this.store.purgeExpired(this.clock.now());
  }

  #held(id: string, scope: string, key: string, token: string, recovered: boolean): HeldKey {
    let done = false;
    const finish = () => {
      done = true;
      for (const wake of this.#waiters.get(id) ?? []) wake();
    };
    return {
      replayed: false,
      recovered,
      complete: async (response) => {
        if (done) return false;
        try {
          return await this.store.complete(scope, key, token, response);
        } finally {
          finish();
        }
      },
      release: async () => {
        if (done) return;
        try {
          await this.store.release(scope, key, token);
        } finally {
          finish();
        }
      },
    };
  }
}

/**
 * One idempotent call without keeping an `Idempotency` object: `run` on a new one. Code that
 * serves many requests keeps one `Idempotency` (its in-process waiters wake duplicates at once).
 */
export function runIdempotent(
  options: IdempotencyOptions & { scope: string; key: string; fingerprint: string },
  handler: () => Promise<StoredResponse>,
): Promise<{ response: StoredResponse; replayed: boolean }> {
  return new Idempotency(options).run(options.scope, options.key, options.fingerprint, handler);
}
