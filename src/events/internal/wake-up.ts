import type { Logger } from 'pino';
import type { Clock } from '../../core/clock.js';
import type { SqlClient } from '../../engines/sql/sql-client.js';

/** The channel on which appends wake subscriptions (`SqlSubscription` listens on it). */
export const NOTIFY_CHANNEL = 'cdp_events';

export interface WakeUpOptions {
  clock: Clock;
  logger: Logger;
  /** At most one NOTIFY per this many ms (see `SqlEventStoreOptions.notifyIntervalMs`). */
  intervalMs: number;
  /** How often to look whether a subscription holds a lease; 0: never look, always notify. */
  subscriberCheckMs: number;
}

/**
 * Wakes subscriptions after autocommitted appends: a throttled NOTIFY on `NOTIFY_CHANNEL`, sent
 * only while some subscription may be listening. Why a separate, throttled NOTIFY rather than
 * one in each append's transaction: docs/decisions/event-store-wake-ups.md.
 */
export class AppendWakeUp {
  readonly #sql: SqlClient;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #intervalMs: number;
  readonly #subscriberCheckMs: number;
  #timer: NodeJS.Timeout | undefined;
  #again = false;
  /** What the last lookup found, and when (Clock ms). */
  #subscribers: { present: boolean; at: number } | undefined;
  #lookup: Promise<boolean> | undefined;
  #closed = false;

  constructor(sql: SqlClient, options: WakeUpOptions) {
    this.#sql = sql;
    this.#clock = options.clock;
    this.#logger = options.logger;
    this.#intervalMs = options.intervalMs;
    this.#subscriberCheckMs = options.subscriberCheckMs;
  }

  /**
   * NOTIFY after an autocommitted append, throttled: the first append after a quiet spell
   * notifies at once, later ones within the interval share one NOTIFY at its end, and at most
   * one is in flight. A NOTIFY inside every append's transaction would take PostgreSQL's
   * global notify lock at each commit and serialize concurrent appends; one NOTIFY per append
   * would cost a statement per append. Subscriptions poll as well, so a lost wake-up only
   * delays them. A NOTIFY-only transaction takes no transaction id and flushes nothing, so the
   * notify-queue lock it holds at commit is brief.
   */
  wake(): void {
    if (!this.maySubscribe()) return;
    if (this.#timer !== undefined) {
      this.#again = true;
      return;
    }
    this.#again = false;
    const sent = this.#sql
      .notify(NOTIFY_CHANNEL, '')
      .catch((err: unknown) => this.#logger.debug({ err: String(err) }, 'wake-up notify failed'));
    const timer = setTimeout(() => {
      void sent.finally(() => {
        if (this.#timer !== timer) return;
        this.#timer = undefined;
        if (this.#again && !this.#closed) this.wake();
      });
    }, this.#intervalMs);
    timer.unref();
    this.#timer = timer;
  }

  /**
   * Whether a subscription may be listening: false only on a recent lookup that found no lease
   * held. Starts a lookup (one at a time, not awaited) when the last one is `subscriberCheckMs`
   * old. Without subscribers a NOTIFY is a round trip that wakes no one.
   */
  maySubscribe(): boolean {
    if (this.#subscriberCheckMs <= 0) return true;
    const now = this.#clock.now();
    const known = this.#subscribers;
    if ((!known || now - known.at >= this.#subscriberCheckMs) && !this.#lookup)
      void this.lookUpSubscribers();
    return !known || known.present || now - known.at >= 2 * this.#subscriberCheckMs;
  }

  /**
   * Looks whether any subscription holds a lease now (a row of `cdp_event_subscriptions` with
   * an owner; a subscription that crashed keeps counting until another instance takes its lease
   * over) and remembers the answer. A lookup starts after the one in flight, if any, has ended;
   * a failed one counts as "subscribed".
   */
  lookUpSubscribers(): Promise<boolean> {
    const previous = this.#lookup;
    const lookup = (async () => {
      await previous;
      const at = this.#clock.now();
      let present = true;
      try {
        const { rows } = await this.#sql.query<{ present: boolean }>(
          'SELECT EXISTS (SELECT 1 FROM cdp_event_subscriptions WHERE owner IS NOT NULL) AS present',
        );
        present = rows[0]?.present !== false;
      } catch (err) {
        this.#logger.debug({ err: String(err) }, 'subscriber lookup failed; waking anyway');
      }
      this.#subscribers = { present, at };
      return present;
    })().finally(() => {
      if (this.#lookup === lookup) this.#lookup = undefined;
    });
    this.#lookup = lookup;
    return lookup;
  }

  /** Cancels a pending NOTIFY; no more are sent. */
  close(): void {
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
