import { type Clock, systemClock } from './clock.js';
import { TimeoutError } from './errors.js';

export interface RetryOptions {
  /** Attempts in all, the first included. Default 5. */
  attempts?: number;
  /** First delay in ms. Default 100. */
  baseDelayMs?: number;
  /** Largest delay in ms. Default 10_000. */
  maxDelayMs?: number;
  /** Growth factor between attempts. Default 2. */
  factor?: number;
  /**
   * 'full' (AWS "full jitter": uniform in [0, backoff]), 'equal' (half fixed, half random)
   * or 'none'. Default 'full'.
   */
  jitter?: 'full' | 'equal' | 'none';
  /** Give up when the next attempt would start after this many ms since the first. */
  deadlineMs?: number;
  /** Return false to stop retrying and rethrow at once. Default: retry every error. */
  retryIf?: (err: unknown, attempt: number) => boolean;
  /** Called before each wait, for logging and metrics. */
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
  signal?: AbortSignal;
  clock?: Clock;
  /** Source of randomness in [0, 1); injectable for tests. */
  random?: () => number;
}

/** The delay before attempt `attempt + 1` (attempt counts from 1). */
export function backoffDelay(
  attempt: number,
  opts: Pick<RetryOptions, 'baseDelayMs' | 'maxDelayMs' | 'factor' | 'jitter' | 'random'> = {},
): number {
  const base = opts.baseDelayMs ?? 100;
  const max = opts.maxDelayMs ?? 10_000;
  const factor = opts.factor ?? 2;
  const random = opts.random ?? Math.random;
  const exp = Math.min(max, base * factor ** (attempt - 1));
  switch (opts.jitter ?? 'full') {
    case 'none':
      return exp;
    case 'equal':
      return exp / 2 + random() * (exp / 2);
    default:
      return random() * exp;
  }
}

/**
 * Run `fn` until it succeeds, with exponential backoff and jitter between attempts, within a
 * number of attempts and an optional deadline. The last error is rethrown; when the deadline
 * ends the retries, a TimeoutError carrying the last error as `cause` is thrown.
 */
export async function retry<T>(
  fn: (attempt: number, signal?: AbortSignal) => Promise<T>,
  options: RetryOptions = {},
): Promise<T> {
  const attempts = options.attempts ?? 5;
  if (!Number.isInteger(attempts) || attempts < 1) {
    throw new RangeError(`retry: attempts must be an integer >= 1, got ${attempts}`);
  }
  const clock = options.clock ?? systemClock;
  const started = clock.now();
  for (let attempt = 1; ; attempt++) {
    options.signal?.throwIfAborted();
    try {
      return await fn(attempt, options.signal);
    } catch (err) {
      if (attempt >= attempts || (options.retryIf && !options.retryIf(err, attempt))) throw err;
      const delay = backoffDelay(attempt, options);
      if (options.deadlineMs !== undefined) {
        const elapsed = clock.now() - started;
        if (elapsed + delay > options.deadlineMs) {
          throw new TimeoutError(
            `gave up after ${attempt} attempt(s): the ${options.deadlineMs} ms deadline would pass before the next one`,
            options.deadlineMs,
            { cause: err },
          );
        }
      }
      options.onRetry?.(err, attempt, delay);
      await clock.sleep(delay, options.signal);
    }
  }
}
