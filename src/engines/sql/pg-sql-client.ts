import pg from 'pg';
import pgUtils from 'pg/lib/utils.js';
import type { Logger } from 'pino';
import { redactUrl } from '../../core/config.js';
import { ClosedError, EngineUnavailableError, errorMessage } from '../../core/errors.js';
import { backoffDelay } from '../../core/retry.js';
import { INT8_ARRAY_OID, INT8_OID, parseInt8, parseInt8Array } from './int8.js';
import {
  assertChannel,
  beginStatement,
  type ListenOptions,
  type NotificationHandler,
  type QueryResult,
  type SqlClient,
  SqlError,
  type SqlTransaction,
  type SqlValue,
  type TransactionOptions,
  toSqlError,
} from './sql-client.js';

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

/** How `pg` turns a parameter into its text form (arrays, dates, buffers, JSON). */
const prepareValue = (value: unknown): unknown => pgUtils.prepareValue(value);

/** A statement the server has prepared under a name on each connection that ran it. */
export interface PreparedStatement {
  name: string;
  text: string;
}

/** What `pg` hands a submittable: the connection's protocol writer and its statement maps. */
interface PgConnection {
  stream: { cork?: () => void; uncork?: () => void };
  parsedStatements: Record<string, string>;
  submittedNamedStatements: Record<string, string>;
  parse(config: { name: string; text: string; types: unknown[] }): void;
  bind(config: {
    statement: string;
    values: readonly unknown[];
    valueMapper: (value: unknown) => unknown;
  }): void;
  execute(config: Record<string, never>): void;
  sync(): void;
}

/** One statement of a pipeline and its parameters. */
export interface PipelineStep {
  statement: PreparedStatement;
  values: readonly SqlValue[];
}

/** Rows as text in column order (SQL NULL as null). */
export type TextRows = (string | null)[][];

/**
 * Named statements run back to back in one round trip: for each, Parse (only on the
 * connection's first use of the name) + Bind + Execute, then one Sync, with no Describe: the
 * server sends no row description and the rows arrive as text, in column order. The steps run
 * in one implicit transaction (it commits at the Sync; an error skips the rest and rolls it
 * back), and each step is bound after the one before has run, so under read committed each
 * sees what was committed before it started. `pg`'s own query describes the portal on every
 * execution, builds row objects through its type parsers and sends one statement per round
 * trip; for statements run thousands of times a second with columns the caller knows, that is
 * measurable (see `SqlEventStore`). Implements `pg`'s submittable protocol (`client.query` of
 * an object with `submit`), as pg-cursor does. It has no `name`, so `pg` leaves the
 * connection's statement maps alone: it records its statements as parsed when it sends them
 * (a failure closes the connection, see `preparedPipeline`).
 */
class RawPipeline {
  readonly #steps: readonly PipelineStep[];
  readonly #rows: TextRows[];
  #step = 0;
  readonly #resolve: (rows: TextRows[]) => void;
  readonly #reject: (err: unknown) => void;

  constructor(
    steps: readonly PipelineStep[],
    resolve: (rows: TextRows[]) => void,
    reject: (err: unknown) => void,
  ) {
    this.#steps = steps;
    this.#rows = steps.map(() => []);
    this.#resolve = resolve;
    this.#reject = reject;
  }

  submit(con: PgConnection): Error | null {
    for (const { statement } of this.#steps) {
      const known =
        con.parsedStatements[statement.name] ?? con.submittedNamedStatements[statement.name];
      if (known !== undefined && known !== statement.text) {
        return new Error(`prepared statement ${statement.name} is already used for another text`);
      }
    }
    con.stream.cork?.();
    try {
      for (const { statement, values } of this.#steps) {
        if (con.parsedStatements[statement.name] === undefined) {
          con.parse({ name: statement.name, text: statement.text, types: [] });
          con.parsedStatements[statement.name] = statement.text;
        }
        con.bind({ statement: statement.name, values, valueMapper: prepareValue });
        con.execute({});
      }
      con.sync();
    } finally {
      con.stream.uncork?.();
    }
    return null;
  }

  handleDataRow(msg: { fields: (string | null)[] }): void {
    this.#rows[this.#step]?.push(msg.fields);
  }

  handleCommandComplete(): void {
    this.#step++;
  }

  /** The end of a statement that failed, or of the connection: `pg` sends nothing after it. */
  handleError(err: unknown): void {
    this.#reject(err);
  }

  handleReadyForQuery(): void {
    this.#resolve(this.#rows);
  }

  handleRowDescription(): void {}
  handleEmptyQuery(): void {}
  handlePortalSuspended(): void {}
  handleCopyInResponse(): void {}
  handleCopyData(): void {}
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
  static async connect(options: PgSqlClientOptions): Promise<PgSqlClient> {
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
      const rows = await new Promise<TextRows[]>((resolve, reject) => {
        conn.query(new RawPipeline(steps, resolve, reject) as never);
      });
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
