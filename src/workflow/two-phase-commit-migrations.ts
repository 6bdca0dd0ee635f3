import type { Migration } from '../engines/sql/migrations.js';

/**
 * The coordinator's decision log, module 'two-phase-commit': one row per distributed
 * transaction, written before any participant prepares ('preparing'), updated to the decision
 * ('committing' or 'aborting') before phase 2 starts, and to the outcome ('committed' or
 * 'aborted') when every participant acknowledged. Each version is one SQL literal, pinned in
 * test/engines/sql/migration-checksums.test.ts. Apply with `migrate(sql,
 * twoPhaseCommitMigrations)`; `TwoPhaseCommitCoordinator.open` does.
 */
export const twoPhaseCommitMigrations: readonly Migration[] = [
  {
    module: 'two-phase-commit',
    version: 1,
    name: 'create decision log',
    sql: `
CREATE TABLE cdp_2pc_transactions (
  coordinator text NOT NULL,
  id text NOT NULL,
  participants text[] NOT NULL,
  status text NOT NULL CHECK (status IN ('preparing', 'committing', 'aborting', 'committed', 'aborted')),
  owner text NOT NULL,
  started_at timestamptz NOT NULL,
  decided_at timestamptz,
  finished_at timestamptz,
  reason text,
  PRIMARY KEY (coordinator, id)
);
CREATE INDEX cdp_2pc_transactions_open ON cdp_2pc_transactions (coordinator, started_at)
  WHERE status IN ('preparing', 'committing', 'aborting');
`,
  },
];
