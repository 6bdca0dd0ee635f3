export * from './migrations.js';
export * from './open.js';
export * from './pg-sql-client.js';
export * from './pglite-sql-client.js';
export * from './sql-client.js';
