import { type IsolationLevel, SqlError, type TransactionOptions } from '../sql-client.js';

// What the adapters speaking PostgreSQL's protocol (pg, PGlite) share: engine errors into
// SqlError, channel names checked before they reach SQL, and the BEGIN statement. Not part of
// the public API.

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
