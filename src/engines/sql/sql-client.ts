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
}

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

/** Wrap an engine error (pg's DatabaseError, PGlite's) into a SqlError; others pass through. */
export function toSqlError(err: unknown, text?: string): unknown {
  if (err instanceof SqlError || !(err instanceof Error)) return err;
  const e = err as Error & { code?: unknown; detail?: unknown; severity?: unknown };
  if (typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) && e.severity !== undefined) {
    const where = text ? ` (in: ${text.replace(/\s+/g, ' ').slice(0, 120)})` : '';
    return new SqlError(
      `${e.message}${where}`,
      e.code,
      typeof e.detail === 'string' ? e.detail : undefined,
      {
        cause: err,
      },
    );
  }
  return err;
}

const CHANNEL_RE = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/** Channel names are identifiers; reject anything else before it reaches SQL. */
export function assertChannel(channel: string): void {
  if (!CHANNEL_RE.test(channel)) {
    throw new SqlError(
      `invalid channel name ${JSON.stringify(channel)}: use letters, digits and _ (at most 63, not starting with a digit)`,
      undefined,
    );
  }
}

export function beginStatement(options?: TransactionOptions): string {
  let sql = 'BEGIN';
  if (options?.isolation) sql += ` ISOLATION LEVEL ${isolationSql(options.isolation)}`;
  if (options?.readOnly) sql += ' READ ONLY';
  return sql;
}

function isolationSql(level: IsolationLevel): string {
  switch (level) {
    case 'read committed':
      return 'READ COMMITTED';
    case 'repeatable read':
      return 'REPEATABLE READ';
    case 'serializable':
      return 'SERIALIZABLE';
    default:
      throw new SqlError(`unknown isolation level ${JSON.stringify(level)}`, undefined);
  }
}
