import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Fault and multi-process tests spawn children; give them a clean environment to inherit.
    env: { CDP_LOG_LEVEL: 'silent' },
  },
});
