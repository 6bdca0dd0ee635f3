import { TimeoutError } from './errors.js';

/**
 * Time for patterns: read through a Clock so that tests can move time by hand.
 * `now()` is milliseconds since the epoch; `sleep` resolves after `ms` of this clock's time.
 */
export interface Clock {
  now(): number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new Error('aborted');
}

export class SystemClock implements Clock {
  now(): number {
    return Date.now();
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        clearTimeout(timer);
        reject(abortReason(signal!));
      };
      const timer = setTimeout(
        () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        Math.max(0, ms),
      );
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}

export const systemClock: Clock = new SystemClock();

interface Sleeper {
  at: number;
  seq: number;
  resolve: () => void;
}

/** A clock that moves only when told to: `advance(ms)` wakes every sleeper whose time came. */
export class ManualClock implements Clock {
  #now: number;
  #sleepers: Sleeper[] = [];
  #seq = 0;

  constructor(start = 0) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  /** Number of pending sleeps: lets a test wait until code under test has gone to sleep. */
  get pendingSleeps(): number {
    return this.#sleepers.length;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    if (ms <= 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const sleeper: Sleeper = {
        at: this.#now + ms,
        seq: this.#seq++,
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      const onAbort = () => {
        this.#sleepers = this.#sleepers.filter((s) => s !== sleeper);
        reject(abortReason(signal!));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#sleepers.push(sleeper);
    });
  }

  /** Move time forward, waking sleepers in time order; awaits microtasks between wake-ups. */
  async advance(ms: number): Promise<void> {
    if (!(ms >= 0)) throw new RangeError(`advance(ms) needs ms >= 0, got ${ms}`);
    const target = this.#now + ms;
    // Let code that is about to sleep (after a rejected await, say) reach its sleep first.
    await flushMicrotasks();
    for (;;) {
      this.#sleepers.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const next = this.#sleepers[0];
      if (!next || next.at > target) break;
      this.#sleepers.shift();
      this.#now = next.at;
      next.resolve();
      await flushMicrotasks();
    }
    this.#now = target;
    await flushMicrotasks();
  }

  set(time: number): void {
    if (time < this.#now) throw new RangeError('ManualClock cannot go backwards');
    this.#now = time;
  }
}

/** Resolves after every queued microtask has run (setImmediate is a later macrotask). */
function flushMicrotasks(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Race a promise against a deadline on the given clock. */
export async function withTimeout<T>(
  promise: Promise<T>,
  ms: number,
  what: string,
  clock: Clock = systemClock,
): Promise<T> {
  const ac = new AbortController();
  try {
    return await Promise.race([
      promise,
      clock.sleep(ms, ac.signal).then(() => {
        throw new TimeoutError(`${what} did not finish within ${ms} ms`, ms);
      }),
    ]);
  } finally {
    ac.abort();
  }
}

let isoSecond = Number.NaN;
let isoPrefix = '';

/**
 * `new Date(ms).toISOString()`, made cheaply for times in the same second as the one before:
 * the text up to the seconds is kept, only the milliseconds are written (hot paths stamp every
 * event; a Date and its ISO text cost about a microsecond each time).
 */
export function isoTime(ms: number): string {
  if (!Number.isInteger(ms) || ms < 0) return new Date(ms).toISOString();
  const second = Math.floor(ms / 1000);
  if (second !== isoSecond) {
    isoPrefix = new Date(second * 1000).toISOString().slice(0, -4);
    isoSecond = second;
  }
  const milli = ms - second * 1000;
  return `${isoPrefix}${milli < 10 ? '00' : milli < 100 ? '0' : ''}${milli}Z`;
}
