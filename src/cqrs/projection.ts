import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Clock } from '../core/clock.js';
import { systemClock } from '../core/clock.js';
import type {
  Queryable,
  QueryResult,
  SqlClient,
  SqlTransaction,
  SqlValue,
} from '../engines/sql/sql-client.js';
import {
  type RecordedEvent,
  type SqlEventStore,
  SqlSubscription,
  waitForSubscription,
} from '../events/index.js';

/**
 * A projection writes a read model (SQL tables) from events. The same projection runs
 * - inline: in the append's transaction (CommandHandler `inline`), consistent at commit;
 * - async: behind a durable subscription (`openAsyncProjection`), eventually consistent, with
 *   its checkpoint moved in the transaction of its writes (effects exactly once).
 * `apply` must only write through `tx`.
 */
export interface SqlProjection {
  name: string;
  /** Only these event types reach `apply`. */
  types?: readonly string[];
  apply(event: RecordedEvent, tx: SqlTransaction): Promise<void>;
  /**
   * Optional: apply several events at once (in log order, already filtered by `types`), with
   * exactly the effects of `apply` on each in turn, typically as one set-based statement per
   * table. The async projection uses it for each batch it reads, and a rebuild for each batch
   * it replays; without it they call `apply` per event. Only writes through `tx`.
   */
  applyBatch?(events: readonly RecordedEvent[], tx: SqlTransaction): Promise<void>;
}

/**
 * A transaction handle that collects the events handed to it and applies them as one batch
 * right before the next statement of the transaction, or at its end, so that the batch is
 * written in the same transaction as whatever follows (the subscription's checkpoint).
 */
class BatchingTransaction implements SqlTransaction {
  readonly #tx: SqlTransaction;
  readonly #projection: SqlProjection;
  #pending: RecordedEvent[] = [];

  constructor(tx: SqlTransaction, projection: SqlProjection) {
    this.#tx = tx;
    this.#projection = projection;
  }

  defer(event: RecordedEvent): void {
    this.#pending.push(event);
  }

  async flush(): Promise<void> {
    const events = this.#pending;
    if (events.length === 0) return;
    this.#pending = [];
    if (events.length === 1 || !this.#projection.applyBatch)
      for (const e of events) await this.#projection.apply(e, this.#tx);
    else await this.#projection.applyBatch(events, this.#tx);
  }

  async query<R = Record<string, unknown>>(
    text: string,
    params?: readonly SqlValue[],
  ): Promise<QueryResult<R>> {
    await this.flush();
    return this.#tx.query<R>(text, params);
  }

  async exec(script: string): Promise<void> {
    await this.flush();
    return this.#tx.exec(script);
  }

  async notify(channel: string, payload?: string): Promise<void> {
    await this.flush();
    return this.#tx.notify(channel, payload);
  }
}

/** The client the subscription sees: its transactions hand out BatchingTransactions. */
function batchingClient(sql: SqlClient, projection: SqlProjection): SqlClient {
  return {
    engine: sql.engine,
    query: (text, params) => sql.query(text, params),
    exec: (script) => sql.exec(script),
    transaction: (fn, options) =>
      sql.transaction(async (tx) => {
        const batching = new BatchingTransaction(tx, projection);
        const result = await fn(batching);
        await batching.flush();
        return result;
      }, options),
    listen: (channel, handler, options) => sql.listen(channel, handler, options),
    notify: (channel, payload) => sql.notify(channel, payload),
    ping: () => sql.ping(),
    // The subscription does not own the client.
    close: async () => {},
  };
}

/** The store as the subscription sees it: the same store, its `sql` the batching client. */
function withBatchingClient(store: SqlEventStore, projection: SqlProjection): SqlEventStore {
  const sql = batchingClient(store.sql, projection);
  return new Proxy(store, {
    get(target, key) {
      if (key === 'sql') return sql;
      const value: unknown = Reflect.get(target, key, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

export function openAsyncProjection(
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
  // With `applyBatch`, the subscription's per-event handler only collects each batch's events
  // in its transaction; they are applied set-based just before the checkpoint moves in that
  // same transaction (exactly-once effects as before). When a batch fails, the subscription
  // retries its events one per transaction, which takes `apply`.
  const batched = projection.applyBatch !== undefined;
  const sub = new SqlSubscription({
    name: `projection:${projection.name}`,
    store: batched ? withBatchingClient(store, projection) : store,
    handler: async (e, tx) => {
      if (tx instanceof BatchingTransaction) tx.defer(e);
      else await projection.apply(e, tx);
    },
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
