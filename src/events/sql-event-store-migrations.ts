import type { Migration } from '../engines/sql/migrations.js';

/**
 * Advisory lock keys (two-int form, first int 'cdpe'): POSITION_LOCK is held for microseconds
 * while a transaction takes its transaction id and its positions, so that position order equals
 * transaction-id order; APPEND_GATE is held shared by every appender until it commits, and
 * exclusively by an append inside a transaction that already had an id (see the function).
 */
export const LOCK_CLASS = 1667526757;
export const POSITION_LOCK = 1;
export const APPEND_GATE = 2;
/**
 * Per-stream lock (two-int form, first int 'cdps', second the stream id's hashtext): held by an
 * appender until it commits, taken before its positions, so that a stream's events get their
 * positions in version order (see migration 4).
 */
export const STREAM_LOCK_CLASS = 1667526771;
export const NOTIFY_CHANNEL = 'cdp_events';

/**
 * The append function's parameters and result (migrations 3 to 5), after
 * `CREATE [OR REPLACE] FUNCTION `.
 */
const APPEND_SIGNATURE = `cdp_events_append(
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
LANGUAGE plpgsql AS $fn$`;

/**
 * An append inside a transaction that already wrote must run under read committed: it waits for
 * the appends in flight, and only a new snapshot per statement sees what they committed.
 */
const REFUSE_AFTER_WRITE = `    IF current_setting('transaction_isolation') <> 'read committed' THEN
      RAISE EXCEPTION 'append inside a % transaction that already wrote: append first in the transaction, or use read committed', current_setting('transaction_isolation')
        USING ERRCODE = 'P0001';
    END IF;`;

/**
 * A refused append (migrations 3 to 5): a replay of a committed append is refused by its own
 * expectation and answered as one; anything else is a conflict, reported with the version read.
 */
const REPLAY_OR_CONFLICT = `    -- A replay of a committed append is refused by its own expectation: answer it as one.
    IF NOT p_check_ids THEN
      RETURN QUERY SELECT * FROM cdp_events_stored_ids(p_stream, p_ids);
      IF FOUND THEN
        RETURN;
      END IF;
    END IF;
    RETURN QUERY SELECT 'conflict'::text, cur, NULL::bigint, NULL::bigint[];
    RETURN;`;

const appendFunction = `
CREATE FUNCTION cdp_events_append(
  p_stream text,
  p_expected text,
  p_ids uuid[],
  p_types text[],
  p_data jsonb[],
  p_metadata jsonb[],
  p_schema int[],
  p_recorded_at timestamptz,
  p_notify boolean
) RETURNS TABLE (status text, actual bigint, stream_version bigint, positions bigint[])
LANGUAGE plpgsql AS $fn$
DECLARE
  n int := cardinality(p_ids);
  found_count int;
  found_streams text[];
  pos bigint[];
  new_version bigint;
  cur bigint;
  xid xid8;
  refused boolean;
BEGIN
  -- Idempotent retry: every id already stored in this stream returns the original positions.
  SELECT count(*), array_agg(DISTINCT e.stream_id) INTO found_count, found_streams
    FROM cdp_events e WHERE e.event_id = ANY (p_ids);
  IF found_count > 0 THEN
    IF found_count = n AND found_streams = ARRAY[p_stream] THEN
      RETURN QUERY SELECT 'idempotent'::text, NULL::bigint, max(e.version),
        array_agg(e.position ORDER BY u.ord)
        FROM unnest(p_ids) WITH ORDINALITY AS u(id, ord) JOIN cdp_events e ON e.event_id = u.id;
    ELSE
      RETURN QUERY SELECT 'id_reused'::text, found_count::bigint, NULL::bigint,
        (SELECT array_agg(e.position) FROM cdp_events e WHERE e.event_id = ANY (p_ids));
    END IF;
    RETURN;
  END IF;

  -- Positions in transaction-id order (readers rely on it): take both under one short lock.
  -- tx_id is the value readers compare with their snapshot's xmin; it never decreases with
  -- the position and is never below the appending transaction's own id.
  IF pg_current_xact_id_if_assigned() IS NULL THEN
    PERFORM pg_advisory_xact_lock_shared(${LOCK_CLASS}, ${APPEND_GATE});
    PERFORM pg_advisory_lock(${LOCK_CLASS}, ${POSITION_LOCK});
    xid := pg_current_xact_id();
    SELECT array_agg(nextval('cdp_events_position_seq')) INTO pos FROM generate_series(1, n);
    PERFORM pg_advisory_unlock(${LOCK_CLASS}, ${POSITION_LOCK});
  ELSE
    -- The transaction wrote before and has an older id: wait until no other append is in
    -- flight and keep others out until commit, so that no position below ours is still open.
    -- Its rows carry, instead of its own older id, the first id not yet handed out: every
    -- position before ours has a lower one, and readers still wait for this transaction.
${REFUSE_AFTER_WRITE}
    PERFORM pg_advisory_xact_lock(${LOCK_CLASS}, ${APPEND_GATE});
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
    refused := CASE p_expected WHEN 'any' THEN true WHEN 'no_stream' THEN true
      WHEN 'stream_exists' THEN cur = 0 ELSE cur <> p_expected::bigint END;
    IF refused THEN
      RETURN QUERY SELECT 'conflict'::text, cur, NULL::bigint, NULL::bigint[];
      RETURN;
    END IF;
  END LOOP;
  IF new_version IS NULL THEN
    RETURN QUERY SELECT 'conflict'::text, cur, NULL::bigint, NULL::bigint[];
    RETURN;
  END IF;

  INSERT INTO cdp_events (position, tx_id, stream_id, version, event_id, type, schema_version, data, metadata, recorded_at)
    SELECT pos[i], xid, p_stream, new_version - n + i, p_ids[i], p_types[i], p_schema[i], p_data[i], p_metadata[i], p_recorded_at
      FROM generate_series(1, n) AS i;
  IF p_notify THEN
    PERFORM pg_notify('${NOTIFY_CHANNEL}', '');
  END IF;
  RETURN QUERY SELECT 'ok'::text, NULL::bigint, new_version, pos;
END
$fn$;
`;

/**
 * Version 3 of the append function: the same protocol in fewer steps. The idempotency lookup
 * runs before the append only inside a caller's transaction (`p_check_ids`, the default); an
 * autocommitted append skips it and lets the unique index on event_id find a replay (the
 * statement fails whole, the store answers from the stored rows), and a refused expectation
 * looks the ids up before it reports a conflict (a replay of a committed append is refused by
 * its own expected version otherwise). One event takes no generate_series, and both advisory
 * locks are taken by one statement.
 */
const appendFunctionV3 = `
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

CREATE FUNCTION ${APPEND_SIGNATURE}
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
    PERFORM pg_advisory_xact_lock_shared(${LOCK_CLASS}, ${APPEND_GATE}), pg_advisory_lock(${LOCK_CLASS}, ${POSITION_LOCK});
    xid := pg_current_xact_id();
    IF n = 1 THEN
      pos := ARRAY[nextval('cdp_events_position_seq')];
    ELSE
      SELECT array_agg(nextval('cdp_events_position_seq')) INTO pos FROM generate_series(1, n);
    END IF;
    PERFORM pg_advisory_unlock(${LOCK_CLASS}, ${POSITION_LOCK});
  ELSE
    -- The transaction wrote before and has an older id: wait until no other append is in
    -- flight and keep others out until commit, so that no position below ours is still open.
    -- Its rows carry, instead of its own older id, the first id not yet handed out: every
    -- position before ours has a lower one, and readers still wait for this transaction.
${REFUSE_AFTER_WRITE}
    PERFORM pg_advisory_xact_lock(${LOCK_CLASS}, ${APPEND_GATE});
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
${REPLAY_OR_CONFLICT}
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
    PERFORM pg_notify('${NOTIFY_CHANNEL}', '');
  END IF;
  RETURN QUERY SELECT 'ok'::text, NULL::bigint, new_version, pos;
END
$fn$;
`;

/**
 * Version 4 of the append function: a stream's events take their positions in version order.
 * Before, an appender took its positions and then waited for the stream's row: two appenders of
 * one stream could take positions 10 and 11 and commit versions 7 and 6, so a reader of the
 * global log met version 7 before version 6 (measured: 4,067 of 28,000 events inverted with 8
 * concurrent appenders on 5 streams). Now each appender first takes a transaction-scoped
 * advisory lock on the stream (STREAM_LOCK_CLASS, hashtext of the id: no transaction id is
 * assigned by it, so position order still equals transaction-id order), after the append gate
 * and before the position lock. Two streams whose ids share a hash only wait for each other.
 */
const appendFunctionV4 = appendFunctionV3
  .slice(appendFunctionV3.indexOf('CREATE FUNCTION cdp_events_append('))
  .replace('CREATE FUNCTION cdp_events_append(', 'CREATE OR REPLACE FUNCTION cdp_events_append(')
  .replace(
    `PERFORM pg_advisory_xact_lock_shared(${LOCK_CLASS}, ${APPEND_GATE}), pg_advisory_lock(${LOCK_CLASS}, ${POSITION_LOCK});`,
    `PERFORM pg_advisory_xact_lock_shared(${LOCK_CLASS}, ${APPEND_GATE}), pg_advisory_xact_lock(${STREAM_LOCK_CLASS}, hashtext(p_stream)), pg_advisory_lock(${LOCK_CLASS}, ${POSITION_LOCK});`,
  )
  .replace(
    `PERFORM pg_advisory_xact_lock(${LOCK_CLASS}, ${APPEND_GATE});`,
    `PERFORM pg_advisory_xact_lock(${LOCK_CLASS}, ${APPEND_GATE}), pg_advisory_xact_lock(${STREAM_LOCK_CLASS}, hashtext(p_stream));`,
  );
if (
  !appendFunctionV4.includes('hashtext(p_stream)), pg_advisory_lock') ||
  (appendFunctionV4.match(/hashtext\(p_stream\)/g) ?? []).length !== 2
) {
  throw new Error('event store migration 4: the append function text did not match');
}

/** Migration 5's insert of an accepted append's events, versions after the stream's last (`cur`). */
const insertV5 = `INSERT INTO cdp_events (position, tx_id, stream_id, version, event_id, type, schema_version, data, metadata, recorded_at)
      SELECT pos[i], xid, p_stream, cur + i, p_ids[i], p_types[i], p_schema[i], p_data[i], p_metadata[i], p_recorded_at
        FROM generate_series(1, n) AS i;`;

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
const appendFunctionV5 = `
DROP TABLE cdp_event_streams;

CREATE OR REPLACE FUNCTION ${APPEND_SIGNATURE}
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
    PERFORM pg_advisory_xact_lock_shared(${LOCK_CLASS}, ${APPEND_GATE}), pg_advisory_xact_lock(${STREAM_LOCK_CLASS}, hashtext(p_stream));
  ELSE
    -- The transaction wrote before and has an older id: wait until no other append is in
    -- flight and keep others out until commit, so that no position below ours is still open.
${REFUSE_AFTER_WRITE}
    PERFORM pg_advisory_xact_lock(${LOCK_CLASS}, ${APPEND_GATE}), pg_advisory_xact_lock(${STREAM_LOCK_CLASS}, hashtext(p_stream));
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
${REPLAY_OR_CONFLICT}
  END IF;

  -- Positions in transaction-id order (readers rely on it): take both under one short lock.
  -- tx_id is the value readers compare with their snapshot's xmin; it never decreases with
  -- the position and is never below the appending transaction's own id. A transaction that
  -- had an id stores instead the first id not yet handed out: every position before ours has
  -- a lower one, and readers still wait for this transaction.
  IF fresh THEN
    PERFORM pg_advisory_lock(${LOCK_CLASS}, ${POSITION_LOCK});
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
    PERFORM pg_advisory_unlock(${LOCK_CLASS}, ${POSITION_LOCK});
  END IF;

  IF current_setting('transaction_isolation') = 'read committed' THEN
    ${insertV5}
  ELSE
    BEGIN
      ${insertV5}
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
    PERFORM pg_notify('${NOTIFY_CHANNEL}', '');
  END IF;
  RETURN QUERY SELECT 'ok'::text, NULL::bigint, cur + n, pos;
END
$fn$;
`;

export const eventStoreMigrations: Migration[] = [
  {
    module: 'events',
    version: 1,
    name: 'event store: streams, events, snapshots, append function',
    sql: `
CREATE SEQUENCE cdp_events_position_seq AS bigint CACHE 1;

CREATE TABLE cdp_event_streams (
  stream_id text PRIMARY KEY,
  version bigint NOT NULL
);

CREATE TABLE cdp_events (
  position bigint PRIMARY KEY,
  tx_id xid8 NOT NULL,
  stream_id text NOT NULL,
  version bigint NOT NULL,
  event_id uuid NOT NULL,
  type text NOT NULL,
  schema_version integer NOT NULL,
  data jsonb NOT NULL,
  metadata jsonb NOT NULL,
  recorded_at timestamptz NOT NULL,
  CONSTRAINT cdp_events_event_id_key UNIQUE (event_id),
  CONSTRAINT cdp_events_stream_version_key UNIQUE (stream_id, version)
);
CREATE INDEX cdp_events_type_position ON cdp_events (type, position);

CREATE FUNCTION cdp_events_immutable() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  RAISE EXCEPTION 'events are immutable: append a compensating event instead of % on cdp_events', TG_OP
    USING ERRCODE = 'P0001';
END
$fn$;
CREATE TRIGGER cdp_events_no_change BEFORE UPDATE OR DELETE ON cdp_events
  FOR EACH STATEMENT EXECUTE FUNCTION cdp_events_immutable();

CREATE TABLE cdp_event_snapshots (
  stream_id text NOT NULL,
  key text NOT NULL,
  version bigint NOT NULL,
  state jsonb NOT NULL,
  taken_at timestamptz NOT NULL,
  PRIMARY KEY (stream_id, key)
);
${appendFunction}`,
  },
  {
    module: 'events',
    version: 2,
    name: 'subscriptions: checkpoints with leases, parked events',
    sql: `
CREATE TABLE cdp_event_subscriptions (
  name text PRIMARY KEY,
  position bigint NOT NULL DEFAULT 0,
  owner text,
  lease_until bigint,
  updated_at bigint
);
CREATE TABLE cdp_event_parked (
  name text NOT NULL,
  position bigint NOT NULL,
  event_id uuid NOT NULL,
  stream_id text NOT NULL,
  type text NOT NULL,
  error text NOT NULL,
  attempts integer NOT NULL,
  parked_at bigint NOT NULL,
  PRIMARY KEY (name, position)
);`,
  },
  {
    module: 'events',
    version: 3,
    name: 'append function: idempotency lookup only when needed, one-event fast path',
    sql: appendFunctionV3,
  },
  {
    module: 'events',
    version: 4,
    name: 'append function: per-stream lock before positions (stream order = global order)',
    sql: appendFunctionV4,
  },
  {
    module: 'events',
    version: 5,
    name: 'stream version from its events (stream table dropped); positions only for accepted appends',
    sql: appendFunctionV5,
  },
];
