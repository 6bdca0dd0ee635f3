/**
 * Which autocommitted appends wake subscribers, and when a wake-up needs a statement of its own.
 *
 * A wake-up is a NOTIFY, delivered when the transaction that sent it commits. The cheapest
 * carrier is the append itself: the NOTIFY rides in the append's statement, so it costs no
 * round trip, no transaction and no commit of its own, and it arrives exactly when the events
 * become readable. But a commit that carries a NOTIFY holds PostgreSQL's notify-queue lock
 * through its WAL flush, so carriers serialize: at most one append per `intervalMs` carries.
 *
 * - `carry()` before an autocommitted append: true when no carrier's interval is open. A carrier
 *   commits after every append that has settled so far, so it covers them.
 * - `settled()` after it: an append that committed without carrying (or a carrier that did not
 *   commit its events) leaves committed events no wake-up has covered yet. When the interval
 *   ends, the next append to start carries for them; if none starts within one more interval,
 *   `sendStandalone` sends a NOTIFY on its own (only ever at the tail of a burst).
 *
 * So under steady load every wake-up rides on an append, and after the last append of a burst
 * subscribers are woken within two intervals. Subscriptions also poll: a lost wake-up only
 * delays them.
 */
export class WakeUpSchedule {
  readonly #intervalMs: number;
  readonly #sendStandalone: () => Promise<void>;
  #window: NodeJS.Timeout | undefined;
  #grace: NodeJS.Timeout | undefined;
  #uncovered = false;
  #closed = false;

  constructor(intervalMs: number, sendStandalone: () => Promise<void>) {
    if (!Number.isFinite(intervalMs) || intervalMs < 0) {
      throw new RangeError(`notify interval must be a number of ms >= 0, got ${intervalMs}`);
    }
    this.#intervalMs = intervalMs;
    this.#sendStandalone = sendStandalone;
  }

  /** Before an autocommitted append: should this one carry the NOTIFY? */
  carry(): boolean {
    if (this.#closed || this.#window !== undefined) return false;
    this.#uncovered = false;
    if (this.#grace !== undefined) clearTimeout(this.#grace);
    this.#grace = undefined;
    this.#window = this.#timer(() => {
      this.#window = undefined;
      if (this.#uncovered) this.#startGrace();
    });
    return true;
  }

  /**
   * After an autocommitted append: `stored` when its events committed, `nothing` when it
   * committed nothing (a conflict, a replay), `unknown` when it failed.
   */
  settled(carried: boolean, outcome: 'stored' | 'nothing' | 'unknown'): void {
    if (carried ? outcome === 'stored' : outcome === 'nothing') return;
    // Committed events no carrier covers, or a carrier that did not deliver what it covered.
    this.#uncovered = true;
    if (this.#window === undefined) this.#startGrace();
  }

  close(): void {
    this.#closed = true;
    if (this.#window !== undefined) clearTimeout(this.#window);
    if (this.#grace !== undefined) clearTimeout(this.#grace);
    this.#window = undefined;
    this.#grace = undefined;
  }

  #startGrace(): void {
    if (this.#grace !== undefined || this.#closed) return;
    this.#grace = this.#timer(() => {
      this.#grace = undefined;
      if (!this.#uncovered || this.#closed) return;
      this.#uncovered = false;
      void this.#sendStandalone();
    });
  }

  #timer(fn: () => void): NodeJS.Timeout {
    const t = setTimeout(fn, this.#intervalMs);
    t.unref();
    return t;
  }
}
