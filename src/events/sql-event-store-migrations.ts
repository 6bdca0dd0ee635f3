import type { Migration } from '../engines/sql/migrations.js';
import { eventsMigration1 } from './migrations/v1.js';
import { eventsMigration2 } from './migrations/v2.js';
import { eventsMigration3 } from './migrations/v3.js';
import { eventsMigration4 } from './migrations/v4.js';
import { eventsMigration5 } from './migrations/v5.js';

/**
 * The event store's schema, module 'events': one file per version under `migrations/`, each one
 * SQL literal that never changes once shipped (test/engines/sql/migration-checksums.test.ts
 * pins their checksums). A change is a new version. Apply with `migrate(sql,
 * eventStoreMigrations)`; `SqlEventStore.open` does.
 */
export const eventStoreMigrations: readonly Migration[] = [
  eventsMigration1,
  eventsMigration2,
  eventsMigration3,
  eventsMigration4,
  eventsMigration5,
];
