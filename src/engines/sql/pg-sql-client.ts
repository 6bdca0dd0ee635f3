import pg from 'pg';
import type { Logger } from 'pino';
import { redactUrl } from '../../core/config.js';
import { ClosedError, EngineUnavailableError, errorMessage } from '../../core/errors.js';
import { backoffDelay } from '../../core/retry.js';
import { INT8_ARRAY_OID, INT8_OID, parseInt8, parseInt8Array } from './internal/int8.js';
import { assertChannel, beginStatement, toSqlError } from './internal/pg-dialect.js';
import { runPipeline } from './internal/pg-protocol.js';
import type {
  ListenOptions,
  NotificationHandler,
  PipelineStep,
  PreparedStatement,
  QueryResult,
  SqlClient,
  SqlTransaction,
  SqlValue,
  TextRows,
  TransactionOptions,
} from './sql-client.js';
import { SqlError } from './sql-client.js';

export interface PgSqlClientOptions {
  /** postgres://... */
  url: string;
  /** Pool size. Default 10. */
  max?: number;
  /** Give up connecting after this many ms. Default 5000. */
  connectTimeoutMs?: number;
  /** Name shown in pg_stat_activity. Default 'cdp'. */
  applicationName?: string;
  logger?: Logger;
  /** The variable the URL came from, named in errors. Default CDP_DATABASE_URL. */
  variable?: string;
}

const types = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === INT8_OID) return parseInt8;
    if (oid === INT8_ARRAY_OID) return parseInt8Array;
    return pg.types.getTypeParser(oid, format);
  },
} as pg.CustomTypesConfig;

/** SQLSTATE 57014: the statement was cancelled (statement_timeout or a cancel request). */
function cancelled(err: unknown): boolean {
  const state =
    err instanceof SqlError ? err.sqlState : (err as { code?: unknown } | null | undefined)?.code;
  return state === '57014';
}

async function run<R>(client: pg.Pool | pg.PoolClient, text: string, params?: readonly SqlValue[]) {
  try {
    const res = await client.query(text, params as unknown[] | undefined);
    return {
      rows: res.rows as R[],
      rowCount: res.rowCount ?? res.rows.length,
    } satisfies QueryResult<R>;
  } catch (err) {
    throw toSqlError(err, text);
  }
}

async function runExec(client: pg.Pool | pg.PoolClient, script: string): Promise<void> {
  try {
    // No parameters: pg sends the simple-query protocol, which accepts several statements.
    await client.query(script);
  } catch (err) {
    throw toSqlError(err, script);
  }
}

interface ChannelState {
  handlers: Set<NotificationHandler>;
  reconnectHooks: Set<() => void>;
}

/**
 * SqlClient over a PostgreSQL server: a `pg` Pool for queries and transactions, and one
 * dedicated connection for LISTEN that reconnects with backoff and re-listens by itself.
 */
export class PgSqlClient implements SqlClient {
  readonly engine = 'postgres' as const;
  readonly #pool: pg.Pool;
  readonly #options: PgSqlClientOptions;
  readonly #channels = new Map<string, ChannelState>();
  #listener: pg.Client | undefined;
  #listenerConnecting: Promise<pg.Client> | undefined;
  #reconnectTimer: NodeJS.Timeout | undefined;
  #closed = false;

  private constructor(pool: pg.Pool, options: PgSqlClientOptions) {
    this.#pool = pool;
    this.#options = options;
  }

  /** Connect and check the server answers; a clear error names the variable otherwise. */
  static async open(options: PgSqlClientOptions): Promise<PgSqlClient> {
    const pool = new pg.Pool({
      connectionString: options.url,
      max: options.max ?? 10,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
      application_name: options.applicationName ?? 'cdp',
      types,
    });
    // An idle client's error (server restart) must not crash the process; the pool drops it.
    pool.on('error', (err) =>
      options.logger?.warn({ err: errorMessage(err) }, 'idle PostgreSQL connection lost'),
    );
    const client = new PgSqlClient(pool, options);
    try {
      await client.ping();
    } catch (err) {
      await pool.end().catch(() => {});
      throw client.#unavailable(err);
    }
    return client;
  }

  #unavailable(err: unknown): EngineUnavailableError {
    const variable = this.#options.variable ?? 'CDP_DATABASE_URL';
    return new EngineUnavailableError(
      'postgres',
      `cannot reach PostgreSQL at ${redactUrl(this.#options.url)}: ${errorMessage(err)}. ` +
        `Check that the server runs and that ${variable} is right, or unset it to use embedded PGlite.`,
      variable,
      { cause: err },
    );
  }

  #check(): void {
    if (this.#closed) throw new ClosedError('PostgreSQL SqlClient');
  }

  /** The underlying pool, for code that needs pg itself (benchmarks, peers). */
  get pool(): pg.Pool {
    return this.#pool;
  }

  query<R = Record<string, unknown>>(
    text: string,
    params?: readonly SqlValue[],
  ): Promise<QueryResult<R>> {
    this.#check();
    return run<R>(this.#pool, text, params);
  }

  exec(script: string): Promise<void> {
    this.#check();
    return runExec(this.#pool, script);
  }

  /**
   * Runs a named statement, autocommitted, and returns its rows as text in column order (SQL
   * NULL as null), without a row description: for hot statements whose result columns the
   * caller knows and parses itself. The statement is prepared on each pooled connection the
   * first time that connection runs it. A failed statement's connection is closed, as
   * `query`'s is by the pool, so no session state it took survives.
   */
  async preparedRows(statement: PreparedStatement, values: readonly SqlValue[]): Promise<TextRows> {
    return (await this.preparedPipeline([{ statement, values }]))[0]!;
  }

  /**
   * Runs named statements back to back in one round trip and one implicit transaction
   * (committed at the end; the first error skips the rest, rolls everything back and is
   * thrown), and returns each one's rows as text (see `preparedRows`). Each statement starts
   * after the one before has run: under read committed it sees what was committed meanwhile,
   * e.g. by a transaction whose lock the one before waited for. A failure closes the
   * connection, with any session state its statements took.
   */
  async preparedPipeline(steps: readonly PipelineStep[]): Promise<TextRows[]> {
    this.#check();
    if (steps.length === 0) return [];
    const conn = await this.#pool.connect();
    try {
      const rows = await runPipeline(conn, steps);
      conn.release();
      return rows;
    } catch (err) {
      conn.release(err instanceof Error ? err : new Error(String(err)));
      throw toSqlError(err, steps.map((s) => s.statement.text).join(';\n'));
    }
  }

  async transaction<T>(
    fn: (tx: SqlTransaction) => Promise<T>,
    options?: TransactionOptions,
  ): Promise<T> {
    this.#check();
    const conn = await this.#pool.connect();
    let broken = false;
    // The server may end the session while the transaction's code runs between statements (a
    // restart): the checked-out connection then emits 'error', which must not crash the process;
    // the next statement fails and the connection is destroyed.
    const onLost = () => {
      broken = true;
    };
    conn.on('error', onLost);
    try {
      try {
        await runExec(conn, beginStatement(options));
      } catch (err) {
        broken = true;
        throw err;
      }
      // A cancelled statement (statement_timeout, pg_cancel_backend) may have stopped between
      // taking session state and giving it back (a session-level advisory lock, such as the
      // event store's position lock); ROLLBACK does not undo that, so that session ends.
      const watch = async <V>(p: Promise<V>): Promise<V> => {
        try {
          return await p;
        } catch (err) {
          if (cancelled(err)) broken = true;
          throw err;
        }
      };
      const tx: SqlTransaction = {
        query: <R>(text: string, params?: readonly SqlValue[]) => watch(run<R>(conn, text, params)),
        exec: (script: string) => watch(runExec(conn, script)),
        notify: async (channel: string, payload?: string) => {
          assertChannel(channel);
          await run(conn, 'SELECT pg_notify($1, $2)', [channel, payload ?? '']);
        },
      };
      let result: T;
      try {
        result = await fn(tx);
      } catch (err) {
        try {
          await conn.query('ROLLBACK');
        } catch {
          broken = true;
        }
        throw err;
      }
      try {
        await conn.query('COMMIT');
      } catch (err) {
        broken = true;
        throw toSqlError(err, 'COMMIT');
      }
      return result;
    } catch (err) {
      throw toSqlError(err);
    } finally {
      conn.off('error', onLost);
      // A connection whose state is unknown is destroyed rather than reused.
      conn.release(broken ? true : undefined);
    }
  }

  async listen(
    channel: string,
    handler: NotificationHandler,
    options?: ListenOptions,
  ): Promise<() => Promise<void>> {
    this.#check();
    assertChannel(channel);
    let state = this.#channels.get(channel);
    const isNew = !state;
    if (!state) {
      state = { handlers: new Set(), reconnectHooks: new Set() };
      this.#channels.set(channel, state);
    }
    state.handlers.add(handler);
    const hook = options?.onReconnect;
    if (hook) state.reconnectHooks.add(hook);
    const listener = await this.#ensureListener();
    if (isNew) await listener.query(`LISTEN "${channel}"`);
    return async () => {
      const s = this.#channels.get(channel);
      if (!s) return;
      s.handlers.delete(handler);
      if (hook) s.reconnectHooks.delete(hook);
      if (s.handlers.size === 0) {
        this.#channels.delete(channel);
        if (this.#listener && !this.#closed)
          await this.#listener.query(`UNLISTEN "${channel}"`).catch(() => {});
      }
    };
  }

  #ensureListener(): Promise<pg.Client> {
    if (this.#listener) return Promise.resolve(this.#listener);
    this.#listenerConnecting ??= this.#connectListener().finally(() => {
      this.#listenerConnecting = undefined;
    });
    return this.#listenerConnecting;
  }

  async #connectListener(): Promise<pg.Client> {
    const client = new pg.Client({
      connectionString: this.#options.url,
      connectionTimeoutMillis: this.#options.connectTimeoutMs ?? 5000,
      application_name: `${this.#options.applicationName ?? 'cdp'}-listen`,
      keepAlive: true,
    });
    client.on('notification', (msg) => {
      const state = this.#channels.get(msg.channel);
      if (!state) return;
      for (const h of state.handlers) {
        try {
          h(msg.payload ?? '', msg.channel);
        } catch (err) {
          this.#options.logger?.error(
            { channel: msg.channel, err: errorMessage(err) },
            'notification handler threw',
          );
        }
      }
    });
    const onLost = (err?: Error) => {
      if (this.#listener !== client) return;
      this.#listener = undefined;
      client.removeAllListeners('error');
      client.on('error', () => {});
      if (this.#closed) return;
      this.#options.logger?.warn(
        { err: err && errorMessage(err) },
        'LISTEN connection lost; reconnecting',
      );
      this.#scheduleReconnect(1);
    };
    client.on('error', onLost);
    client.on('end', () => onLost());
    try {
      await client.connect();
    } catch (err) {
      client.removeAllListeners();
      throw this.#unavailable(err);
    }
    this.#listener = client;
    return client;
  }

  #scheduleReconnect(attempt: number): void {
    const delay = backoffDelay(attempt, { baseDelayMs: 100, maxDelayMs: 5000, jitter: 'equal' });
    this.#reconnectTimer = setTimeout(async () => {
      this.#reconnectTimer = undefined;
      if (this.#closed || this.#channels.size === 0) return;
      try {
        const client = await this.#ensureListener();
        for (const channel of this.#channels.keys()) await client.query(`LISTEN "${channel}"`);
        this.#options.logger?.info(
          { channels: [...this.#channels.keys()] },
          'LISTEN connection restored',
        );
        for (const state of this.#channels.values())
          for (const hook of state.reconnectHooks) hook();
      } catch (err) {
        this.#options.logger?.warn({ attempt, err: errorMessage(err) }, 'LISTEN reconnect failed');
        if (this.#listener) {
          const l = this.#listener;
          this.#listener = undefined;
          await l.end().catch(() => {});
        }
        this.#scheduleReconnect(attempt + 1);
      }
    }, delay);
  }

  async notify(channel: string, payload?: string): Promise<void> {
    assertChannel(channel);
    await this.query('SELECT pg_notify($1, $2)', [channel, payload ?? '']);
  }

  async ping(): Promise<void> {
    await this.query('SELECT 1');
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#reconnectTimer) clearTimeout(this.#reconnectTimer);
    const listener = this.#listener ?? (await this.#listenerConnecting?.catch(() => undefined));
    this.#listener = undefined;
    this.#channels.clear();
    await listener?.end().catch(() => {});
    await this.#pool.end();
  }
}
