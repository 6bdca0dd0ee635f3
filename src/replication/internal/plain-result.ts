import type { QueryResult } from '../../engines/sql/sql-client.js';

/** A result without the router's extra fields (the server it came from, its token). */
export function plain<R>(res: QueryResult<R>): QueryResult<R> {
  return { rows: res.rows, rowCount: res.rowCount };
}
