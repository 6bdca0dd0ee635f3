import type { Migration } from '../engines/sql/index.js';

/** The SQL store's table (`migrate(sql, idempotencyMigrations)` before opening the store). */
export const idempotencyMigrations: Migration[] = [
  {
    module: 'idempotency',
    version: 1,
    name: 'idempotency keys with their first response',
    sql: `CREATE TABLE cdp_idempotency_keys (
      scope text NOT NULL,
      key text NOT NULL,
      fingerprint text NOT NULL,
      token text NOT NULL,
      locked_until bigint NOT NULL,
      expires_at bigint NOT NULL,
      status integer,
      headers jsonb,
      body bytea,
      PRIMARY KEY (scope, key)
    );
    CREATE INDEX cdp_idempotency_keys_expires_at ON cdp_idempotency_keys (expires_at);`,
  },
];
