import type { Clock } from '../../core/clock.js';
import { TimeoutError } from '../../core/errors.js';

/**
 * Timeouts for many short calls at a low cost: one loop on the clock (running only while calls
 * are pending) fails the calls whose deadline passed, within one `tickMs`. core's withTimeout
 * costs a timer and an AbortController per call (the abort builds a DOMException), which
 * dominated the CPU profile of a two-tier read.
 */
export class Deadlines {
  readonly #pending = new Set<{ at: number; fail: () => void }>();
  #running = false;

  constructor(
    private readonly clock: Clock,
    private readonly tickMs: number,
  ) {}

  wrap<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const entry = {
        at: this.clock.now() + ms,
        fail: () => reject(new TimeoutError(`${what} did not finish within ${ms} ms`, ms)),
      };
      this.#pending.add(entry);
      p.then(
        (v) => {
          this.#pending.delete(entry);
          resolve(v);
        },
        (err) => {
          this.#pending.delete(entry);
          reject(err);
        },
      );
      if (!this.#running) void this.#loop();
    });
  }

  async #loop(): Promise<void> {
    this.#running = true;
    try {
      while (this.#pending.size > 0) {
        await this.clock.sleep(this.tickMs);
        const now = this.clock.now();
        for (const e of this.#pending) {
          if (e.at <= now) {
            this.#pending.delete(e);
            e.fail();
          }
        }
      }
    } finally {
      this.#running = false;
    }
  }
}
