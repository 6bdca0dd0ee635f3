import type { Migration } from '../../engines/sql/migrations.js';

/**
 * Version 3 of the append function: the same protocol in fewer steps. The idempotency lookup
 * runs before the append only inside a caller's transaction (`p_check_ids`, the default); an
 * autocommitted append skips it and lets the unique index on event_id find a replay (the
 * statement fails whole, the store answers from the stored rows), and a refused expectation
 * looks the ids up before it reports a conflict (a replay of a committed append is refused by
 * its own expected version otherwise). One event takes no generate_series, and both advisory
 * locks are taken by one statement.
 */
export const eventsMigration3: Migration = {
  module: 'events',
  version: 3,
  name: 'append function: idempotency lookup only when needed, one-event fast path',
  sql: `
DROP FUNCTION cdp_events_append(text, text, uuid[], text[], jsonb[], jsonb[], int[], timestamptz, boolean);

CREATE FUNCTION cdp_events_stored_ids(p_stream text, p_ids uuid[])
RETURNS TABLE (status text, actual bigint, stream_version bigint, positions bigint[])
LANGUAGE plpgsql STABLE AS $fn$
DECLARE
  found_count int;
  found_streams text[];
BEGIN
  SELECT count(*), array_agg(DISTINCT e.stream_id) INTO found_count, found_streams
    FROM cdp_events e WHERE e.event_id = ANY (p_ids);
  IF found_count = 0 THEN
    RETURN;
  ELSIF found_count = cardinality(p_ids) AND found_streams = ARRAY[p_stream] THEN
    RETURN QUERY SELECT 'idempotent'::text, NULL::bigint, max(e.version),
      array_agg(e.position ORDER BY u.ord)
      FROM unnest(p_ids) WITH ORDINALITY AS u(id, ord) JOIN cdp_events e ON e.event_id = u.id;
  ELSE
    RETURN QUERY SELECT 'id_reused'::text, found_count::bigint, NULL::bigint,
      (SELECT array_agg(e.position) FROM cdp_events e WHERE e.event_id = ANY (p_ids));
  END IF;
END
$fn$;

CREATE FUNCTION cdp_events_append(
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
  new_version bigint;
  cur bigint;
  xid xid8;
BEGIN
  IF p_check_ids THEN
    RETURN QUERY SELECT * FROM cdp_events_stored_ids(p_stream, p_ids);
    IF FOUND THEN
      RETURN;
    END IF;
  END IF;

  -- Positions in transaction-id order (readers rely on it): take both under one short lock.
  -- tx_id is the value readers compare with their snapshot's xmin; it never decreases with
  -- the position and is never below the appending transaction's own id.
  IF pg_current_xact_id_if_assigned() IS NULL THEN
    PERFORM pg_advisory_xact_lock_shared(1667526757, 2), pg_advisory_lock(1667526757, 1);
    xid := pg_current_xact_id();
    IF n = 1 THEN
      pos := ARRAY[nextval('cdp_events_position_seq')];
    ELSE
      SELECT array_agg(nextval('cdp_events_position_seq')) INTO pos FROM generate_series(1, n);
    END IF;
    PERFORM pg_advisory_unlock(1667526757, 1);
  ELSE
    -- The transaction wrote before and has an older id: wait until no other append is in
    -- flight and keep others out until commit, so that no position below ours is still open.
    -- Its rows carry, instead of its own older id, the first id not yet handed out: every
    -- position before ours has a lower one, and readers still wait for this transaction.
    IF current_setting('transaction_isolation') <> 'read committed' THEN
      RAISE EXCEPTION 'append inside a % transaction that already wrote: append first in the transaction, or use read committed', current_setting('transaction_isolation')
        USING ERRCODE = 'P0001';
    END IF;
    PERFORM pg_advisory_xact_lock(1667526757, 2);
    xid := pg_snapshot_xmax(pg_current_snapshot());
    SELECT array_agg(nextval('cdp_events_position_seq')) INTO pos FROM generate_series(1, n);
  END IF;

  -- A check that finds no row, or another version, rereads the stream: a creator that was
  -- still uncommitted when the UPDATE looked may have committed the expected state meanwhile.
  FOR attempt IN 1..3 LOOP
    IF p_expected = 'any' THEN
      INSERT INTO cdp_event_streams AS s (stream_id, version) VALUES (p_stream, n)
        ON CONFLICT (stream_id) DO UPDATE SET version = s.version + n
        RETURNING s.version INTO new_version;
    ELSIF p_expected = 'no_stream' THEN
      INSERT INTO cdp_event_streams (stream_id, version) VALUES (p_stream, n)
        ON CONFLICT (stream_id) DO NOTHING
        RETURNING version INTO new_version;
    ELSIF p_expected = 'stream_exists' THEN
      UPDATE cdp_event_streams SET version = version + n WHERE stream_id = p_stream
        RETURNING version INTO new_version;
    ELSE
      UPDATE cdp_event_streams SET version = version + n
        WHERE stream_id = p_stream AND version = p_expected::bigint
        RETURNING version INTO new_version;
    END IF;
    EXIT WHEN new_version IS NOT NULL;
    SELECT s.version INTO cur FROM cdp_event_streams s WHERE s.stream_id = p_stream;
    cur := coalesce(cur, 0);
    -- Still contradicting the expectation: a real conflict, reported with what was read.
    EXIT WHEN CASE p_expected WHEN 'any' THEN true WHEN 'no_stream' THEN true
      WHEN 'stream_exists' THEN cur = 0 ELSE cur <> p_expected::bigint END;
  END LOOP;
  IF new_version IS NULL THEN
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

  IF n = 1 THEN
    INSERT INTO cdp_events (position, tx_id, stream_id, version, event_id, type, schema_version, data, metadata, recorded_at)
      VALUES (pos[1], xid, p_stream, new_version, p_ids[1], p_types[1], p_schema[1], p_data[1], p_metadata[1], p_recorded_at);
  ELSE
    INSERT INTO cdp_events (position, tx_id, stream_id, version, event_id, type, schema_version, data, metadata, recorded_at)
      SELECT pos[i], xid, p_stream, new_version - n + i, p_ids[i], p_types[i], p_schema[i], p_data[i], p_metadata[i], p_recorded_at
        FROM generate_series(1, n) AS i;
  END IF;
  IF p_notify THEN
    PERFORM pg_notify('cdp_events', '');
  END IF;
  RETURN QUERY SELECT 'ok'::text, NULL::bigint, new_version, pos;
END
$fn$;
`,
};
