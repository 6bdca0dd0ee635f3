// Event sourcing: the EventStore port, its adapters (in memory; SQL on the SqlClient port, for
// PGlite and PostgreSQL), subscriptions, upcasters and the store's migrations. Imports no
// engine client: a PostgreSQL SqlClient comes from `cloud-data-patterns/sql/pg` or `openSql`.
export type {
  AppendOptions,
  AppendResult,
  EventMetadata,
  EventStore,
  ExpectedVersion,
  NewEvent,
  ReadAllOptions,
  ReadAllResult,
  ReadStreamOptions,
  RecordedEvent,
  Snapshot,
} from './event-store.js';
export { EventIdReusedError, EventStoreError, UnknownEventError } from './event-store.js';
export type { MemoryEventStoreOptions } from './memory-event-store.js';
export { MemoryEventStore } from './memory-event-store.js';
export type { ReaderBlocker, ReaderStatus, SqlEventStoreOptions } from './sql-event-store.js';
export { SqlEventStore } from './sql-event-store.js';
export { eventStoreMigrations } from './sql-event-store-migrations.js';
export type {
  SqlSubscriptionOptions,
  SubscriptionHandler,
  SubscriptionStatus,
} from './sql-subscription.js';
export {
  CheckpointMovedError,
  LeaseLostError,
  parkedEvents,
  SqlSubscription,
  subscriptionPositions,
  waitForSubscription,
} from './sql-subscription.js';
export type { EventTypeDefinition, UpcastResult } from './upcasters.js';
export { Upcasters } from './upcasters.js';
