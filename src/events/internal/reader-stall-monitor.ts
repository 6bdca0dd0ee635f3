import type { Logger } from 'pino';
import type { Counter, Gauge, Registry } from 'prom-client';
import type { Clock } from '../../core/clock.js';
import { counter, gauge } from '../../core/metrics.js';
import type { SqlClient } from '../../engines/sql/sql-client.js';

/** The open transaction that holds readers of the global log back. */
export interface ReaderBlocker {
  pid: number;
  database: string | null;
  state: string | null;
  /** How long its transaction has been open, in seconds. */
  ageSeconds: number;
  query: string | null;
}

export interface ReaderStatus {
  /** Committed events exist beyond what readers may read yet. */
  heldBack: boolean;
  /** Since when (Clock ms), when held back. */
  heldSince: number | undefined;
  /** The oldest open transaction, once held back longer than `stallReportMs` (PostgreSQL only). */
  blocker: ReaderBlocker | undefined;
}

export interface ReaderStallMonitorOptions {
  clock: Clock;
  logger: Logger;
  registry: Registry | undefined;
  /** Report a transaction that holds global readers back for longer than this. */
  stallReportMs: number;
}

/**
 * Watches what each `readAll` finds: when committed events lie beyond the reader horizon (an
 * open transaction holds readers back), it measures how long, and once that passes
 * `stallReportMs` it finds the oldest open transaction (PostgreSQL), logs it and counts a
 * stall, at most once per `stallReportMs`.
 */
export class ReaderStallMonitor {
  readonly #sql: SqlClient;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #stallReportMs: number;
  readonly #heldBackGauge: Gauge<'engine'> | undefined;
  readonly #stalls: Counter<'engine'> | undefined;
  #heldSince: number | undefined;
  #blocker: ReaderBlocker | undefined;
  #lastReport = 0;

  constructor(sql: SqlClient, options: ReaderStallMonitorOptions) {
    this.#sql = sql;
    this.#clock = options.clock;
    this.#logger = options.logger;
    this.#stallReportMs = options.stallReportMs;
    const r = options.registry;
    if (r) {
      this.#heldBackGauge = gauge(
        r,
        'cdp_events_readers_held_back_seconds',
        'How long global readers have been held back by an open transaction (0 when not)',
        ['engine'],
      );
      this.#stalls = counter(
        r,
        'cdp_events_reader_stalls_total',
        'Reports of a transaction holding readers back',
        ['engine'],
      );
    }
  }

  /** Record what a read found: whether committed events lie beyond the reader horizon. */
  async observe(heldBack: boolean): Promise<void> {
    const engine = this.#sql.engine;
    if (!heldBack) {
      if (this.#heldSince !== undefined) {
        this.#logger.info(
          { heldMs: this.#clock.now() - this.#heldSince },
          'event readers no longer held back',
        );
      }
      this.#heldSince = undefined;
      this.#blocker = undefined;
      this.#heldBackGauge?.set({ engine }, 0);
      return;
    }
    const now = this.#clock.now();
    this.#heldSince ??= now;
    const heldMs = now - this.#heldSince;
    this.#heldBackGauge?.set({ engine }, heldMs / 1000);
    if (heldMs >= this.#stallReportMs && now - this.#lastReport >= this.#stallReportMs) {
      this.#lastReport = now;
      this.#blocker = await this.#findBlocker().catch(() => undefined);
      this.#stalls?.inc({ engine });
      this.#logger.warn(
        { heldMs, blocker: this.#blocker },
        `event readers held back for ${Math.round(heldMs)} ms by an open transaction${
          this.#blocker
            ? ` (pid ${this.#blocker.pid}, open ${this.#blocker.ageSeconds.toFixed(1)} s, ${this.#blocker.state})`
            : ''
        }: it is waited for, never skipped; end it, or set idle_in_transaction_session_timeout`,
      );
    }
  }

  async #findBlocker(): Promise<ReaderBlocker | undefined> {
    if (this.#sql.engine !== 'postgres') return undefined;
    const { rows } = await this.#sql.query<{
      pid: number;
      datname: string | null;
      state: string | null;
      age: number | null;
      query: string | null;
    }>(
      `SELECT pid, datname, state, extract(epoch FROM now() - xact_start)::float8 AS age, left(query, 200) AS query
         FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()
         ORDER BY age(backend_xid) DESC LIMIT 1`,
    );
    const r = rows[0];
    return r
      ? {
          pid: r.pid,
          database: r.datname,
          state: r.state,
          ageSeconds: Number(r.age ?? 0),
          query: r.query,
        }
      : undefined;
  }

  /** Whether global readers are held back now, and by whom. */
  status(): ReaderStatus {
    return {
      heldBack: this.#heldSince !== undefined,
      heldSince: this.#heldSince,
      blocker: this.#blocker,
    };
  }
}
