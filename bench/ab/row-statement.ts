/**
 * Migration 4's autocommitted one-event append with expectation `any`, as the store sent it up
 * to that migration: the stream's version kept in a row of `cdp_event_streams` (dropped by
 * migration 5; `STREAM_TABLE` recreates it), one statement. For A/B scripts that compare it
 * with the store's pipeline. Parameters as the store's fast path: $1 stream, $2 id, $3 type,
 * $4 data, $5 metadata, $6 schema version, $7 recorded at.
 */
import {
  APPEND_GATE,
  LOCK_CLASS,
  POSITION_LOCK,
  STREAM_LOCK_CLASS,
} from '../../src/events/internal/advisory-locks.js';

export const STREAM_TABLE =
  'CREATE TABLE cdp_event_streams (stream_id text PRIMARY KEY, version bigint NOT NULL)';

export const ROW_STATEMENT = `WITH l AS MATERIALIZED (
    SELECT pg_advisory_xact_lock_shared(${LOCK_CLASS}, ${APPEND_GATE}) AS gate,
           pg_advisory_xact_lock(${STREAM_LOCK_CLASS}, hashtext($1::text)) AS stream,
           pg_advisory_lock(${LOCK_CLASS}, ${POSITION_LOCK}) AS positions
  ), p AS MATERIALIZED (
    SELECT pg_current_xact_id() AS xid, nextval('cdp_events_position_seq') AS pos FROM l
  ), u AS MATERIALIZED (
    SELECT p.xid, p.pos, pg_advisory_unlock(${LOCK_CLASS}, ${POSITION_LOCK}) AS unlocked FROM p
  ), s AS (
    INSERT INTO cdp_event_streams AS t (stream_id, version) SELECT $1, 1 FROM u
      ON CONFLICT (stream_id) DO UPDATE SET version = t.version + 1 RETURNING t.version
  ), e AS (
    INSERT INTO cdp_events (position, tx_id, stream_id, version, event_id, type, schema_version, data, metadata, recorded_at)
      SELECT u.pos, u.xid, $1, s.version, $2::uuid, $3::text, $6::int, $4::jsonb, $5::jsonb, $7::timestamptz
        FROM u, s RETURNING position
  )
  SELECT s.version AS stream_version, (SELECT array_agg(e.position ORDER BY e.position) FROM e) AS positions FROM s`;
