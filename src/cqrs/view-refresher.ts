import type { Logger } from 'pino';
import { type Clock, systemClock } from '../core/clock.js';
import { errorMessage, ValidationError } from '../core/errors.js';
import { silentLogger } from '../core/logger.js';
import type { Queryable, SqlClient } from '../engines/sql/sql-client.js';

/**
 * Read models kept as PostgreSQL materialized views, recomputed whole by
 * `REFRESH MATERIALIZED VIEW`: simpler than an incremental projection, stale between refreshes,
 * and each refresh reads every row of the tables under the view. The incremental alternative
 * is a `SqlProjection` (`projection.ts`).
 */

/** A view name: a plain lower-case identifier, optionally schema-qualified (`reports.daily_mv`). */
const VIEW_NAME = /^[a-z_][a-z0-9_]{0,62}(\.[a-z_][a-z0-9_]{0,62})?$/;

function checkViews(views: readonly string[]): void {
  if (views.length === 0) {
    throw new ValidationError('name at least one materialized view to refresh');
  }
  for (const v of views) {
    if (!VIEW_NAME.test(v)) {
      throw new ValidationError(
        `materialized view name ${JSON.stringify(v)}: use a plain lower-case identifier, optionally schema-qualified (e.g. "reports.daily_totals_mv")`,
      );
    }
  }
}

export interface RefreshViewsOptions {
  /**
   * REFRESH ... CONCURRENTLY: readers are not blocked while the view is recomputed. Needs a
   * unique index on the view and a populated view. Default false.
   */
  concurrently?: boolean;
}

/** Recompute the given materialized views whole, in order, in one script. */
export async function refreshMaterializedViews(
  sql: Queryable,
  views: readonly string[],
  options: RefreshViewsOptions = {},
): Promise<void> {
  checkViews(views);
  const c = options.concurrently ? ' CONCURRENTLY' : '';
  await sql.exec(views.map((v) => `REFRESH MATERIALIZED VIEW${c} ${v};`).join(' '));
}

export interface ViewRefresherOptions {
  /** The materialized views to refresh, in this order. */
  views: readonly string[];
  /** Time between the end of one refresh and the start of the next. Default 60 000 ms. */
  intervalMs?: number;
  /** Refresh CONCURRENTLY (readers not blocked; needs a unique index per view). Default true. */
  concurrently?: boolean;
  clock?: Clock;
  logger?: Logger;
}

/**
 * The scheduled-refresh side of materialized views: every `intervalMs` the views are refreshed
 * (by default CONCURRENTLY, so readers are not blocked); they are as stale as the interval. A
 * failed refresh is logged and tried again at the next interval.
 */
export class ViewRefresher {
  readonly #sql: SqlClient;
  readonly #views: readonly string[];
  readonly #concurrently: boolean;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #intervalMs: number;
  readonly #stop = new AbortController();
  readonly #running: Promise<void>;
  #refreshes = 0;
  #lastRefreshMs: number | undefined;

  private constructor(sql: SqlClient, options: ViewRefresherOptions) {
    checkViews(options.views);
    const intervalMs = options.intervalMs ?? 60_000;
    if (!Number.isFinite(intervalMs) || intervalMs <= 0) {
      throw new ValidationError(
        `intervalMs must be a positive number of milliseconds, got ${intervalMs}`,
      );
    }
    this.#sql = sql;
    this.#views = [...options.views];
    this.#concurrently = options.concurrently ?? true;
    this.#clock = options.clock ?? systemClock;
    this.#logger = options.logger ?? silentLogger();
    this.#intervalMs = intervalMs;
    this.#running = this.#loop();
  }

  /** Start refreshing `views` every `intervalMs` (the first refresh after one interval). */
  static open(sql: SqlClient, options: ViewRefresherOptions): ViewRefresher {
    return new ViewRefresher(sql, options);
  }

  /** Refreshes completed since the refresher opened. */
  get refreshes(): number {
    return this.#refreshes;
  }

  /** Duration of the last completed refresh, by the refresher's clock. */
  get lastRefreshMs(): number | undefined {
    return this.#lastRefreshMs;
  }

  async #loop(): Promise<void> {
    while (!this.#stop.signal.aborted) {
      try {
        await this.#clock.sleep(this.#intervalMs, this.#stop.signal);
      } catch {
        return;
      }
      const t0 = this.#clock.now();
      try {
        await refreshMaterializedViews(this.#sql, this.#views, {
          concurrently: this.#concurrently,
        });
        this.#refreshes++;
        this.#lastRefreshMs = this.#clock.now() - t0;
      } catch (err) {
        this.#logger.warn(
          { views: this.#views, err: errorMessage(err) },
          'materialized view refresh failed; next try at the next interval',
        );
      }
    }
  }

  /** Stop refreshing; waits for a refresh in progress to finish. */
  async close(): Promise<void> {
    this.#stop.abort();
    await this.#running;
  }
}
