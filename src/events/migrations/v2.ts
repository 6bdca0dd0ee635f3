import type { Migration } from '../../engines/sql/migrations.js';

/** Version 2: subscriptions' checkpoints with leases, and events parked by a failing handler. */
export const eventsMigration2: Migration = {
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
};
