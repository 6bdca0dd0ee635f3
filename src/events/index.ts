export * from './event-store.js';
export * from './memory-event-store.js';
export * from './sql-event-store.js';
export * from './sql-event-store-migrations.js';
export * from './sql-subscription.js';
export * from './upcasters.js';
