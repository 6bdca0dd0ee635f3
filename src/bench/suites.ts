import type { BenchSuite } from './harness.js';

/**
 * Benchmark suites by name, loaded on demand: their peers are devDependencies, absent from a
 * production install. Add a line here for a new suite.
 */
export const suites: Record<string, () => Promise<BenchSuite>> = {
  sql: async () => (await import('./suites/sql.js')).default,
  messaging: async () => (await import('./suites/messaging.js')).default,
  events: async () => (await import('./suites/events.js')).default,
  cache: async () => (await import('./suites/cache.js')).default,
  storage: async () => (await import('./suites/storage.js')).default,
  workflow: async () => (await import('./suites/workflow.js')).default,
  idempotency: async () => (await import('./suites/idempotency.js')).default,
  '2pc': async () => (await import('./suites/two-phase-commit.js')).default,
  sharding: async () => (await import('./suites/sharding.js')).default,
  replication: async () => (await import('./suites/replication.js')).default,
};
