import type { Migration } from '../../engines/sql/migrations.js';

/**
 * Version 5: a stream's version is its last event's (the unique index on stream id and version
 * finds it); the stream table goes. The stream's advisory lock (migration 4), held to commit,
 * already orders a stream's appenders, and a statement that starts after it was granted sees
 * every event of the stream committed before: under read committed each statement of the
 * function takes a new snapshot. So the function takes the append gate and the stream's lock,
 * answers replays (inside a caller's transaction), reads the stream's version, checks the
 * expectation, and only then takes its positions (a refused append uses none). A transaction
 * under repeatable read or serializable reads with its own, older snapshot: when another
 * append to the stream committed after it, the insert meets that event's version on the unique
 * index, and the function raises a serialization failure (40001: retry the transaction).
 */
export const eventsMigration5: Migration = {
  module: 'events',
  version: 5,
  name: 'stream version from its events (stream table dropped); positions only for accepted appends',
  sql: `
DROP TABLE cdp_event_streams;

CREATE OR REPLACE FUNCTION cdp_events_append(
  p_stream text,
  p_expected text,
  p_ids uuid[],
  p_types text[],
  p_data jsonb[],
  p_metadata jsonb[],
  p_schema int[],
  p_recorded_at timestamptz,
  p_notify boolean,
  p_check_ids boolean DEFAULT true
) RETURNS TABLE (status text, actual bigint, stream_version bigint, positions bigint[])
LANGUAGE plpgsql AS $fn$
DECLARE
  n int := cardinality(p_ids);
  pos bigint[];
  cur bigint;
  xid xid8;
  fresh boolean := pg_current_xact_id_if_assigned() IS NULL;
  refused boolean;
  violated text;
BEGIN
  IF fresh THEN
    PERFORM pg_advisory_xact_lock_shared(1667526757, 2), pg_advisory_xact_lock(1667526771, hashtext(p_stream));
  ELSE
    -- The transaction wrote before and has an older id: wait until no other append is in
    -- flight and keep others out until commit, so that no position below ours is still open.
    IF current_setting('transaction_isolation') <> 'read committed' THEN
      RAISE EXCEPTION 'append inside a % transaction that already wrote: append first in the transaction, or use read committed', current_setting('transaction_isolation')
        USING ERRCODE = 'P0001';
    END IF;
    PERFORM pg_advisory_xact_lock(1667526757, 2), pg_advisory_xact_lock(1667526771, hashtext(p_stream));
  END IF;

  IF p_check_ids THEN
    RETURN QUERY SELECT * FROM cdp_events_stored_ids(p_stream, p_ids);
    IF FOUND THEN
      RETURN;
    END IF;
  END IF;

  SELECT coalesce(max(e.version), 0) INTO cur FROM cdp_events e WHERE e.stream_id = p_stream;
  refused := CASE p_expected WHEN 'any' THEN false WHEN 'no_stream' THEN cur <> 0
    WHEN 'stream_exists' THEN cur = 0 ELSE cur <> p_expected::bigint END;
  IF refused THEN
    -- A replay of a committed append is refused by its own expectation: answer it as one.
    IF NOT p_check_ids THEN
      RETURN QUERY SELECT * FROM cdp_events_stored_ids(p_stream, p_ids);
      IF FOUND THEN
        RETURN;
      END IF;
    END IF;
    RETURN QUERY SELECT 'conflict'::text, cur, NULL::bigint, NULL::bigint[];
    RETURN;
  END IF;

  -- Positions in transaction-id order (readers rely on it): take both under one short lock.
  -- tx_id is the value readers compare with their snapshot's xmin; it never decreases with
  -- the position and is never below the appending transaction's own id. A transaction that
  -- had an id stores instead the first id not yet handed out: every position before ours has
  -- a lower one, and readers still wait for this transaction.
  IF fresh THEN
    PERFORM pg_advisory_lock(1667526757, 1);
    xid := pg_current_xact_id();
  ELSE
    xid := pg_snapshot_xmax(pg_current_snapshot());
  END IF;
  IF n = 1 THEN
    pos := ARRAY[nextval('cdp_events_position_seq')];
  ELSE
    SELECT array_agg(nextval('cdp_events_position_seq')) INTO pos FROM generate_series(1, n);
  END IF;
  IF fresh THEN
    PERFORM pg_advisory_unlock(1667526757, 1);
  END IF;

  IF current_setting('transaction_isolation') = 'read committed' THEN
    INSERT INTO cdp_events (position, tx_id, stream_id, version, event_id, type, schema_version, data, metadata, recorded_at)
      SELECT pos[i], xid, p_stream, cur + i, p_ids[i], p_types[i], p_schema[i], p_data[i], p_metadata[i], p_recorded_at
        FROM generate_series(1, n) AS i;
  ELSE
    BEGIN
      INSERT INTO cdp_events (position, tx_id, stream_id, version, event_id, type, schema_version, data, metadata, recorded_at)
      SELECT pos[i], xid, p_stream, cur + i, p_ids[i], p_types[i], p_schema[i], p_data[i], p_metadata[i], p_recorded_at
        FROM generate_series(1, n) AS i;
    EXCEPTION WHEN unique_violation THEN
      GET STACKED DIAGNOSTICS violated = CONSTRAINT_NAME;
      IF violated = 'cdp_events_stream_version_key' THEN
        RAISE EXCEPTION 'stream % was appended to after this % transaction took its snapshot: retry the transaction', p_stream, current_setting('transaction_isolation')
          USING ERRCODE = '40001';
      END IF;
      RAISE;
    END;
  END IF;
  IF p_notify THEN
    PERFORM pg_notify('cdp_events', '');
  END IF;
  RETURN QUERY SELECT 'ok'::text, NULL::bigint, cur + n, pos;
END
$fn$;
`,
};
