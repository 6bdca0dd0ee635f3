import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Clock } from '../core/clock.js';
import { systemClock } from '../core/clock.js';
import type { Queryable, SqlClient, SqlTransaction } from '../engines/sql/sql-client.js';
import {
  type RecordedEvent,
  type SqlEventStore,
  SqlSubscription,
  waitForSubscription,
} from '../events/index.js';

/**
 * A projection writes a read model (SQL tables) from events. The same projection runs
 * - inline: in the append's transaction (CommandHandler `inline`), consistent at commit;
 * - async: behind a durable subscription (`startAsyncProjection`), eventually consistent, with
 *   its checkpoint moved in the transaction of its writes (effects exactly once).
 * `apply` must only write through `tx`.
 */
export interface SqlProjection {
  name: string;
  /** Only these event types reach `apply`. */
  types?: readonly string[];
  apply(event: RecordedEvent, tx: SqlTransaction): Promise<void>;
}

export function startAsyncProjection(
  store: SqlEventStore,
  projection: SqlProjection,
  options: {
    pollIntervalMs?: number;
    batchSize?: number;
    clock?: Clock;
    logger?: Logger;
    registry?: Registry;
  } = {},
): Promise<SqlSubscription> {
  const sub = new SqlSubscription({
    name: `projection:${projection.name}`,
    store,
    handler: (e, tx) => projection.apply(e, tx),
    ...(projection.types ? { types: projection.types } : {}),
    ...options,
  });
  return sub.start().then(() => sub);
}

export interface QueryOptions {
  /** A consistency token (a command's `position`): wait until the read model has it. */
  after?: number;
  /** How long to wait for the token. Default 5000 ms; TimeoutError after. */
  timeoutMs?: number;
}

/**
 * Queries read only read models and return plain DTOs. With a token, an async read model is
 * first awaited up to that position (read your writes); inline read models are current at
 * commit and need no wait.
 */
export class ReadModelQueries {
  readonly #sql: SqlClient;
  readonly #clock: Clock;
  readonly #inline: Set<string>;

  constructor(sql: SqlClient, options: { clock?: Clock; inline?: readonly string[] } = {}) {
    this.#sql = sql;
    this.#clock = options.clock ?? systemClock;
    this.#inline = new Set(options.inline ?? []);
  }

  async query<T>(
    projection: string,
    run: (q: Queryable) => Promise<T>,
    options: QueryOptions = {},
  ): Promise<T> {
    if (options.after && options.after > 0 && !this.#inline.has(projection)) {
      await waitForSubscription(this.#sql, `projection:${projection}`, options.after, {
        timeoutMs: options.timeoutMs ?? 5000,
        clock: this.#clock,
      });
    }
    return run(this.#sql);
  }
}
