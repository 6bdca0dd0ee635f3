import type { Migration } from '../engines/sql/migrations.js';

/**
 * Schema of the SQL side of messaging (outbox, relay cursor, parked rows, inbox), module
 * 'messaging'. Apply with migrate(sql, messagingMigrations).
 */
export const messagingMigrations: Migration[] = [
  {
    module: 'messaging',
    version: 1,
    name: 'outbox, relay cursor, parked rows and inbox',
    sql: `
CREATE TABLE cdp_outbox (
  id bigserial PRIMARY KEY,
  message_id text NOT NULL UNIQUE,
  topic text NOT NULL,
  key text,
  seq bigint,
  envelope text NOT NULL,
  headers jsonb,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  attempts integer NOT NULL DEFAULT 0,
  last_error text,
  CHECK ((key IS NULL) = (seq IS NULL))
);
CREATE UNIQUE INDEX cdp_outbox_key_seq ON cdp_outbox (key, seq);

-- One row per ordering key ever written: the last sequence handed out. Writers lock it for
-- the rest of their transaction, so a key's sequence order is its commit order.
CREATE TABLE cdp_outbox_keys (
  key text PRIMARY KEY,
  last_seq bigint NOT NULL
);

-- Written only by relays (while holding the key's head row): the last sequence published.
CREATE TABLE cdp_outbox_cursor (
  key text PRIMARY KEY,
  published_seq bigint NOT NULL
);

CREATE TABLE cdp_outbox_parked (
  id bigint PRIMARY KEY,
  message_id text NOT NULL,
  topic text NOT NULL,
  key text,
  seq bigint,
  envelope text NOT NULL,
  headers jsonb,
  created_at timestamptz NOT NULL,
  attempts integer NOT NULL,
  last_error text,
  parked_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE cdp_inbox (
  consumer text NOT NULL,
  message_id text NOT NULL,
  processed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (consumer, message_id)
);
CREATE INDEX cdp_inbox_processed_at ON cdp_inbox (processed_at);

CREATE TABLE cdp_inbox_keys (
  consumer text NOT NULL,
  key text NOT NULL,
  last_seq bigint NOT NULL,
  PRIMARY KEY (consumer, key)
);
`,
  },
  {
    module: 'messaging',
    version: 2,
    name: 'message log for flow traces',
    sql: `
CREATE TABLE cdp_message_log (
  message_id text PRIMARY KEY,
  correlation_id text NOT NULL,
  causation_id text,
  type text NOT NULL,
  source text NOT NULL,
  topic text NOT NULL,
  key text,
  recorded_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX cdp_message_log_correlation ON cdp_message_log (correlation_id, recorded_at);
`,
  },
];
