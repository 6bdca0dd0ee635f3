import type { Migration } from '../../engines/sql/migrations.js';

/** The sharding feature's own table in the catalog database. */
export const shardingAppMigrations: Migration[] = [
  {
    module: 'sharding-app',
    version: 1,
    name: 'routed transactions per slot, kept across restarts (hot-spot detection)',
    sql: `
CREATE TABLE app_shard_unit_counts (
  map text NOT NULL,
  unit text NOT NULL,
  transactions bigint NOT NULL,
  PRIMARY KEY (map, unit));
`,
  },
];
