/**
 * cloud-data-patterns: the root export carries the foundation (core and the SQL engine). Each
 * pattern module has its own subpath: `cloud-data-patterns/<module>`.
 */
export * from './core/index.js';
export * from './engines/sql/index.js';
