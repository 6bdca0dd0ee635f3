import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { type Clock, systemClock } from '../core/clock.js';
import { CdpError, ClosedError, errorMessage, ValidationError } from '../core/errors.js';
import { counter, gauge } from '../core/metrics.js';
import { type RetryOptions, retry } from '../core/retry.js';

export interface WriteBehindOptions<V> {
  /** Writes a batch to the system of record; must be idempotent (a batch may be retried). */
  write: (batch: [key: string, value: V][]) => Promise<void>;
  /** Called after a value is queued, e.g. to update a cache at once: `(k, v) => cache.set(k, v)`. */
  onQueued?: (key: string, value: V) => Promise<void> | void;
  /** Most keys waiting; `write()` waits for room beyond it (backpressure). Default 10,000. */
  maxPending?: number;
  /** Most keys per batch. Default 100. */
  batchSize?: number;
  /** Flush at least this often (ms); a full batch flushes at once. Default 100. */
  flushIntervalMs?: number;
  /** Retries of a failed batch (core retry: exponential backoff with jitter). Default 5 attempts. */
  retry?: Omit<RetryOptions, 'clock' | 'signal'>;
  clock?: Clock;
  logger?: Logger;
  registry?: Registry;
  name?: string;
}

/**
 * Write-behind: writes are acknowledged once queued in memory and reach the system of record
 * later, in batches, coalesced per key (two writes of a key before a flush become one: the last
 * value wins), retried with backoff, and flushed on `close()`.
 *
 * Loss window: what is queued and not yet written is lost if the process dies: at most
 * `maxPending` keys, normally the writes of the last `flushIntervalMs` plus any batch being
 * retried. `pending` tells how many keys are exposed at any moment. A batch whose retries run
 * out is put back (unless a newer value for its key arrived) and retried at the next flush.
 */
export class WriteBehind<V> {
  readonly #o: Required<
    Pick<WriteBehindOptions<V>, 'maxPending' | 'batchSize' | 'flushIntervalMs'>
  >;
  readonly #write: WriteBehindOptions<V>['write'];
  readonly #onQueued: WriteBehindOptions<V>['onQueued'];
  readonly #retry: Omit<RetryOptions, 'clock' | 'signal'>;
  readonly #clock: Clock;
  readonly #logger: Logger | undefined;
  readonly #pending = new Map<string, V>();
  readonly #roomWaiters: (() => void)[] = [];
  readonly #stop = new AbortController();
  #flushing: Promise<void> | undefined;
  #closed = false;
  #loop: Promise<void>;
  #written = 0;
  #failedBatches = 0;
  readonly #m:
    | {
        written: { inc(n?: number): void };
        failed: { inc(): void };
        pending: { set(v: number): void };
      }
    | undefined;

  constructor(options: WriteBehindOptions<V>) {
    const maxPending = options.maxPending ?? 10_000;
    const batchSize = options.batchSize ?? 100;
    const flushIntervalMs = options.flushIntervalMs ?? 100;
    for (const [path, v, min] of [
      ['maxPending', maxPending, 1],
      ['batchSize', batchSize, 1],
      ['flushIntervalMs', flushIntervalMs, 1],
    ] as const) {
      if (!(Number.isInteger(v) && v >= min)) {
        throw new ValidationError(`write-behind: ${path} must be an integer >= ${min}, got ${v}`, [
          { path, message: `must be an integer >= ${min}` },
        ]);
      }
    }
    this.#o = { maxPending, batchSize, flushIntervalMs };
    this.#write = options.write;
    this.#onQueued = options.onQueued;
    this.#retry = options.retry ?? { attempts: 5, baseDelayMs: 50, maxDelayMs: 2000 };
    this.#clock = options.clock ?? systemClock;
    this.#logger = options.logger;
    const reg = options.registry;
    if (reg) {
      const l = { cache: options.name ?? 'default' };
      this.#m = {
        written: counter(reg, 'cdp_cache_write_behind_written_total', 'Keys written behind', [
          'cache',
        ]).labels(l),
        failed: counter(
          reg,
          'cdp_cache_write_behind_failed_batches_total',
          'Batches whose retries ran out (put back)',
          ['cache'],
        ).labels(l),
        pending: gauge(reg, 'cdp_cache_write_behind_pending', 'Keys queued, not yet written', [
          'cache',
        ]).labels(l),
      };
    }
    this.#loop = this.#run();
  }

  /** Keys queued and not yet written: what a crash now would lose. */
  get pending(): number {
    return this.#pending.size;
  }

  get stats(): { written: number; failedBatches: number; pending: number } {
    return { written: this.#written, failedBatches: this.#failedBatches, pending: this.pending };
  }

  /** Queue a write; resolves once queued (waits for room when `maxPending` keys are waiting). */
  async write(key: string, value: V): Promise<void> {
    if (this.#closed) throw new ClosedError('write-behind queue');
    while (!this.#pending.has(key) && this.#pending.size >= this.#o.maxPending) {
      void this.flush();
      await new Promise<void>((resolve) => this.#roomWaiters.push(resolve));
      if (this.#closed) throw new ClosedError('write-behind queue');
    }
    // Coalesce: delete first so the key moves to the back (newest write order).
    this.#pending.delete(key);
    this.#pending.set(key, value);
    this.#m?.pending.set(this.#pending.size);
    await this.#onQueued?.(key, value);
    if (this.#pending.size >= this.#o.batchSize) void this.flush();
  }

  /** Write everything queued now (batch by batch); resolves when the queue was drained once. */
  flush(): Promise<void> {
    this.#flushing ??= this.#drain().finally(() => {
      this.#flushing = undefined;
    });
    return this.#flushing;
  }

  /** Stop accepting writes, write everything queued, stop the timer. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#stop.abort();
    await this.#loop;
    await this.flush();
    while (this.#pending.size > 0 && (await this.#drainOnce())) {
      /* keep going while batches succeed */
    }
    for (const w of this.#roomWaiters.splice(0)) w();
    if (this.#pending.size > 0) {
      throw new CdpError(
        'CACHE_WRITE_BEHIND_UNFLUSHED',
        `write-behind closed with ${this.#pending.size} key(s) not written: the writer kept failing; check the system of record and keep the values from unflushed()`,
      );
    }
  }

  /** What close() could not write (after it rejected). */
  unflushed(): [key: string, value: V][] {
    return [...this.#pending];
  }

  async #run(): Promise<void> {
    while (!this.#stop.signal.aborted) {
      try {
        await this.#clock.sleep(this.#o.flushIntervalMs, this.#stop.signal);
      } catch {
        return;
      }
      await this.flush();
    }
  }

  async #drain(): Promise<void> {
    const rounds = Math.ceil(this.#pending.size / this.#o.batchSize);
    for (let i = 0; i < rounds && this.#pending.size > 0; i++) {
      if (!(await this.#drainOnce())) return;
    }
  }

  /** Write one batch; false if it failed after its retries. */
  async #drainOnce(): Promise<boolean> {
    const batch: [string, V][] = [];
    for (const entry of this.#pending) {
      batch.push(entry);
      if (batch.length >= this.#o.batchSize) break;
    }
    if (batch.length === 0) return true;
    for (const [k] of batch) this.#pending.delete(k);
    this.#wakeWriters();
    try {
      await retry(() => this.#write(batch), { ...this.#retry, clock: this.#clock });
      this.#written += batch.length;
      this.#m?.written.inc(batch.length);
      this.#m?.pending.set(this.#pending.size);
      return true;
    } catch (err) {
      this.#failedBatches++;
      this.#m?.failed.inc();
      // Put back what was not overwritten meanwhile, ahead of newer writes.
      const rest = [...this.#pending];
      this.#pending.clear();
      for (const [k, v] of batch) this.#pending.set(k, v);
      for (const [k, v] of rest) {
        this.#pending.delete(k);
        this.#pending.set(k, v);
      }
      this.#logger?.error(
        { keys: batch.length, err: errorMessage(err) },
        'write-behind batch failed after retries; kept for the next flush',
      );
      return false;
    }
  }

  #wakeWriters(): void {
    for (const w of this.#roomWaiters.splice(0)) w();
  }
}
