import type { PreparedStatement } from '../../engines/sql/sql-client.js';
import { APPEND_GATE, LOCK_CLASS, POSITION_LOCK, STREAM_LOCK_CLASS } from './advisory-locks.js';

// The SQL event store's append statements: the append function's call, and the two
// statements of the autocommitted fast path on PostgreSQL.

/** The append function's call: one statement, one round trip (in a caller's transaction, on PGlite, and on conflicts). */
export const APPEND_SQL =
  'SELECT status, actual, stream_version, positions FROM cdp_events_append($1, $2, $3::uuid[], $4::text[], $5::jsonb[], $6::jsonb[], $7::int[], $8, $9, $10)';

export const APPEND_STATEMENT: PreparedStatement = {
  name: 'cdp_events_append_v3',
  text: APPEND_SQL,
};

export type ExpectedMode = 'any' | 'no_stream' | 'stream_exists' | 'exact';

/** A stream's version: its last event's, found on the unique index of stream and version. $1 stream. */
export const LAST_VERSION_SQL =
  'SELECT version FROM cdp_events WHERE stream_id = $1::text ORDER BY version DESC LIMIT 1';

/**
 * The first statement of an autocommitted append on PostgreSQL: the append gate (shared) and
 * the stream's lock, both held to commit. Parameter: $1 stream.
 */
export const LOCK_STREAM: PreparedStatement = {
  name: 'cdp_events_lock_stream_v5',
  text: `SELECT pg_advisory_xact_lock_shared(${LOCK_CLASS}, ${APPEND_GATE}), pg_advisory_xact_lock(${STREAM_LOCK_CLASS}, hashtext($1::text))`,
};

/**
 * The second statement of an autocommitted append on PostgreSQL, sent with `LOCK_STREAM` in
 * one round trip and one transaction (`SqlClient.preparedPipeline`): the same steps as
 * `cdp_events_append` in the same order, as plain SQL (no PL/pgSQL call). It starts after the
 * stream's lock was granted, so its snapshot holds every event of the stream committed before:
 * the stream's version is its last event's. When the expectation holds, the chain l -> p -> u
 * takes, under the position lock, the transaction id and the positions and releases the lock,
 * and the events are inserted after it. Otherwise the chain and the insert get no row: nothing
 * is written, and the statement returns the version it read with no positions; the store
 * then asks `cdp_events_append`, which answers a replay of a committed append (refused by its
 * own expectation) or reports the conflict.
 *
 * Parameters: $1 stream, $2 id(s), $3 type(s), $4 data, $5 metadata, $6 schema version(s),
 * $7 recorded at, $8 expected version (exact mode only). `single` takes scalars, else arrays,
 * and returns the event's position, else the array of positions.
 */
function fastAppendSql(mode: ExpectedMode, single: boolean): string {
  const positions = single
    ? "nextval('cdp_events_position_seq')"
    : "(SELECT array_agg(nextval('cdp_events_position_seq')) FROM generate_series(1, cardinality($2::uuid[])))";
  const holds = {
    any: 'true',
    no_stream: 'h.head = 0',
    stream_exists: 'h.head > 0',
    exact: 'h.head = $8::bigint',
  }[mode];
  const cols =
    'position, tx_id, stream_id, version, event_id, type, schema_version, data, metadata, recorded_at';
  const events = single
    ? `INSERT INTO cdp_events (${cols})
      SELECT u.pos, u.xid, $1, u.head + 1, $2::uuid, $3::text, $6::int, $4::jsonb, $5::jsonb, $7::timestamptz
        FROM u RETURNING position`
    : `INSERT INTO cdp_events (${cols})
      SELECT u.pos[i.ord], u.xid, $1, u.head + i.ord, i.id, i.type, i.schema, i.data, i.meta, $7::timestamptz
        FROM u, unnest($2::uuid[], $3::text[], $4::jsonb[], $5::jsonb[], $6::int[])
          WITH ORDINALITY AS i(id, type, data, meta, schema, ord)
      RETURNING position`;
  return `WITH h AS MATERIALIZED (
    SELECT coalesce((${LAST_VERSION_SQL}), 0) AS head
  ), l AS MATERIALIZED (
    SELECT h.head, pg_advisory_lock(${LOCK_CLASS}, ${POSITION_LOCK}) AS positions FROM h WHERE ${holds}
  ), p AS MATERIALIZED (
    SELECT l.head, pg_current_xact_id() AS xid, ${positions} AS pos FROM l
  ), u AS MATERIALIZED (
    SELECT p.head, p.xid, p.pos, pg_advisory_unlock(${LOCK_CLASS}, ${POSITION_LOCK}) AS unlocked FROM p
  ), e AS (
    ${events}
  )
  SELECT h.head, ${single ? '(SELECT e.position FROM e)' : '(SELECT array_agg(e.position ORDER BY e.position) FROM e)'} AS positions FROM h`;
}

/** Named statements for the fast path, per expectation kind: for one event and for several. */
export const FAST_APPEND = Object.fromEntries(
  (['any', 'no_stream', 'stream_exists', 'exact'] as const).map((mode) => {
    const statement = (single: boolean) => ({
      name: `cdp_events_fast5b_${mode}_${single ? 1 : 'n'}`,
      text: fastAppendSql(mode, single),
    });
    return [mode, { one: statement(true), many: statement(false) }];
  }),
) as Record<ExpectedMode, { one: PreparedStatement; many: PreparedStatement }>;

/** The columns of an event row, in the order the readers select them. */
export const EVENT_COLUMNS =
  'position, stream_id, version, event_id, type, schema_version, data, metadata, recorded_at';
