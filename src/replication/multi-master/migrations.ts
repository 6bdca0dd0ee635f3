import type { Migration } from '../../engines/sql/migrations.js';

/**
 * Schema of a multi-master region replica (module 'multi-master'): one row per replicated
 * object, its CRDT state, a digest of the state (anti-entropy compares digests), and the
 * version vector of the updates it has seen (to count concurrent updates merged). The
 * messaging tables (outbox, inbox) come from `messagingMigrations`; apply both to every
 * region's database.
 */
export const multiMasterMigrations: Migration[] = [
  {
    module: 'multi-master',
    version: 1,
    name: 'replicated CRDT objects',
    sql: `
CREATE TABLE cdp_mm_objects (
  grp text NOT NULL,
  key text NOT NULL,
  type text NOT NULL,
  state jsonb NOT NULL,
  digest text NOT NULL,
  vv jsonb NOT NULL DEFAULT '{}'::jsonb,
  updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (grp, key)
);
`,
  },
];
