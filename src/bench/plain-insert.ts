import type pg from 'pg';

/**
 * The peer of single appends in the events benchmark and in the A/B scripts (`bench/ab`): the
 * same event as a one-row INSERT into a three-column table with one index, autocommitted
 * through a `pg` Pool, as code without an event store would write it.
 */
export const PLAIN_TABLE =
  'CREATE TABLE bench_plain (id bigserial PRIMARY KEY, stream_id text NOT NULL, type text NOT NULL, data jsonb NOT NULL)';

/** One rating event as a plain INSERT (see `PLAIN_TABLE`). */
export function plainInsert(
  pool: pg.Pool | pg.ClientBase,
  streamId: string,
  data: unknown,
): Promise<pg.QueryResult> {
  return pool.query('INSERT INTO bench_plain (stream_id, type, data) VALUES ($1, $2, $3)', [
    streamId,
    'Rated',
    JSON.stringify(data),
  ]);
}

/** The data of the rating event every contender writes; `seq` makes each one distinct. */
export function ratingData(seq: number) {
  return { courseId: 'c-42', studentId: `s-${seq}`, rating: 4 };
}
