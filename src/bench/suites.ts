import type { BenchSuite } from './harness.js';

/**
 * Benchmark suites by name, loaded on demand: their peers are devDependencies, absent from a
 * production install. Add a line here for a new suite.
 */
export const suites: Record<string, () => Promise<BenchSuite>> = {
  sql: async () => (await import('./suites/sql.js')).default,
};
