import type { Queryable } from '../../engines/sql/sql-client.js';
import type { ShardedTable } from '../catalog.js';

/** Columns of a table as the shard stores them, in order (generated columns left out). */
export async function insertableColumns(shard: Queryable, table: string): Promise<string[]> {
  const r = await shard.query<{ column_name: string }>(
    `SELECT column_name FROM information_schema.columns
     WHERE table_schema = current_schema() AND table_name = $1 AND is_generated = 'NEVER'
     ORDER BY ordinal_position`,
    [table],
  );
  return r.rows.map((c) => c.column_name);
}

/**
 * Replaces on `target` every row of `table` whose key is in `keys` with the rows `source` holds
 * for them now (none when deleted). Idempotent: running it twice leaves the same rows.
 * Rows travel as JSON and are rebuilt by jsonb_populate_recordset, so every column type survives.
 */
export async function copyKeys(
  source: Queryable,
  target: Queryable,
  table: ShardedTable,
  columns: readonly string[],
  keys: readonly string[],
): Promise<number> {
  if (keys.length === 0) return 0;
  const rows = await source.query<{ r: unknown }>(
    `SELECT to_jsonb(t) AS r FROM ${table.name} t WHERE (t.${table.keyColumn})::text = ANY($1::text[])`,
    [keys],
  );
  const cols = columns.join(', ');
  await target.query(
    `DELETE FROM ${table.name} WHERE (${table.keyColumn})::text = ANY($1::text[])`,
    [keys],
  );
  if (rows.rows.length > 0) {
    await target.query(
      `INSERT INTO ${table.name} (${cols}) SELECT ${cols} FROM jsonb_populate_recordset(NULL::${table.name}, $1::jsonb)`,
      [JSON.stringify(rows.rows.map((x) => x.r))],
    );
  }
  return rows.rows.length;
}

/** Row count and an MD5 over the ordered row texts of the rows matching `predicate`. */
export async function unitChecksum(
  shard: Queryable,
  table: ShardedTable,
  predicate: string,
): Promise<{ rows: number; md5: string }> {
  const r = await shard.query<{ n: string | number; h: string }>(
    `SELECT count(*)::bigint AS n, coalesce(md5(string_agg(r, ',' ORDER BY r COLLATE "C")), '') AS h
     FROM (SELECT (to_jsonb(t))::text AS r FROM ${table.name} t WHERE ${predicate}) x`,
  );
  return { rows: Number(r.rows[0]!.n), md5: r.rows[0]!.h };
}
