import { CdpError } from '../../core/errors.js';

/** Values a parameter may take; objects and arrays are sent as JSON by both adapters. */
export type SqlValue = string | number | bigint | boolean | null | Date | Uint8Array | object;

export interface QueryResult<R> {
  rows: R[];
  /** Rows affected by INSERT/UPDATE/DELETE, or returned by SELECT. */
  rowCount: number;
}

export type IsolationLevel = 'read committed' | 'repeatable read' | 'serializable';

export interface TransactionOptions {
  /** Default: the server's default (read committed). */
  isolation?: IsolationLevel;
  readOnly?: boolean;
}

/** What can run a query: the client itself or an open transaction. */
export interface Queryable {
  /** One parameterised statement (`$1`, `$2`, ... placeholders; PostgreSQL dialect). */
  query<R = Record<string, unknown>>(
    text: string,
    params?: readonly SqlValue[],
  ): Promise<QueryResult<R>>;
  /** Several statements without parameters, such as a migration script. */
  exec(script: string): Promise<void>;
}

export interface SqlTransaction extends Queryable {
  /** Queue a notification; PostgreSQL delivers it when the transaction commits. */
  notify(channel: string, payload?: string): Promise<void>;
}

export type NotificationHandler = (payload: string, channel: string) => void;

export interface ListenOptions {
  /**
   * Called after the listening connection was lost and re-established: notifications sent in
   * between are lost, so a consumer should poll once to catch up.
   */
  onReconnect?: () => void;
}

export interface SqlClient extends Queryable {
  /** 'pglite' (embedded) or 'postgres' (a server over the network). */
  readonly engine: 'pglite' | 'postgres';
  /**
   * Run `fn` in a transaction: committed when it resolves, rolled back when it throws (the error
   * is rethrown). Use the `tx` handle inside: on PGlite the client is busy until `fn` ends.
   */
  transaction<T>(fn: (tx: SqlTransaction) => Promise<T>, options?: TransactionOptions): Promise<T>;
  /** LISTEN on a channel; resolves once listening. The returned function stops listening. */
  listen(
    channel: string,
    handler: NotificationHandler,
    options?: ListenOptions,
  ): Promise<() => Promise<void>>;
  /** NOTIFY outside a transaction. */
  notify(channel: string, payload?: string): Promise<void>;
  /** Round trip to the engine; throws if it is unreachable. */
  ping(): Promise<void>;
  close(): Promise<void>;
  /**
   * Optional capability (the PostgreSQL adapter has it, PGlite's has not): runs a named
   * statement, autocommitted, and returns its rows as text in column order (SQL NULL as null),
   * without a row description: for hot statements whose result columns the caller knows and
   * parses itself. The server prepares the statement once per connection that runs it. A
   * failure closes the connection it ran on, with any session state the statement took.
   */
  preparedRows?(statement: PreparedStatement, values: readonly SqlValue[]): Promise<TextRows>;
  /**
   * Optional capability, with `preparedRows`: runs named statements back to back in one round
   * trip and one implicit transaction (committed at the end; the first error skips the rest,
   * rolls everything back and is thrown), and returns each one's rows as text. Each statement
   * starts after the one before has run: under read committed it sees what was committed
   * meanwhile, e.g. by a transaction whose lock the one before waited for.
   */
  preparedPipeline?(steps: readonly PipelineStep[]): Promise<TextRows[]>;
}

/** A statement the server prepares under a name on each connection that runs it. */
export interface PreparedStatement {
  /** Unique per text: a name reused for another text is refused. */
  name: string;
  text: string;
}

/** One statement of a pipeline and its parameters. */
export interface PipelineStep {
  statement: PreparedStatement;
  values: readonly SqlValue[];
}

/** Rows as text in column order (SQL NULL as null). */
export type TextRows = (string | null)[][];

/** A statement failed on the engine; `sqlState` is PostgreSQL's SQLSTATE code. */
export class SqlError extends CdpError {
  readonly sqlState: string | undefined;
  readonly detail: string | undefined;
  constructor(
    message: string,
    sqlState: string | undefined,
    detail?: string,
    options?: { cause?: unknown },
  ) {
    super(sqlStateCode(sqlState), message, options);
    this.sqlState = sqlState;
    this.detail = detail;
  }

  /** Serialization failure or deadlock: the whole transaction may be retried. */
  get retryable(): boolean {
    return this.sqlState === '40001' || this.sqlState === '40P01';
  }
}

function sqlStateCode(sqlState: string | undefined): string {
  switch (sqlState) {
    case '23505':
      return 'SQL_UNIQUE_VIOLATION';
    case '23503':
      return 'SQL_FOREIGN_KEY_VIOLATION';
    case '40001':
      return 'SQL_SERIALIZATION_FAILURE';
    case '40P01':
      return 'SQL_DEADLOCK';
    default:
      return 'SQL_ERROR';
  }
}
