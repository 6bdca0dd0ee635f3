import { defineConfig } from 'vitest/config';

/**
 * Tests that stop and restart shared engines, or kill processes under load, run in their own
 * project after every other suite, one file at a time: a restarted broker or database then never
 * disturbs another suite's test.
 */
const faultTests = [
  'test/events/fault.test.ts',
  'test/messaging/fault.test.ts',
  'test/messaging/broker-restart.test.ts',
  'test/storage/fs-blob-store.fault.test.ts',
  'test/app/shutdown.test.ts',
  'test/workflow/crash.test.ts',
  'test/workflow/saga-crash.test.ts',
  'test/app/purchase-fault.test.ts',
  'test/workflow/two-phase-commit/two-phase-commit.fault.test.ts',
  'test/sharding/fault.test.ts',
  'test/replication/quorum/quorum.fault.test.ts',
  'test/replication/failover.fault.test.ts',
];

export default defineConfig({
  test: {
    pool: 'forks',
    // The platform serves the built dashboard: build it when missing or stale.
    globalSetup: ['test/support/build-dashboard.ts'],
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Fault and multi-process tests spawn children; give them a clean environment to inherit.
    env: { CDP_LOG_LEVEL: 'silent' },
    projects: [
      {
        extends: true,
        test: { name: 'suites', include: ['test/**/*.test.ts'], exclude: faultTests },
      },
      {
        extends: true,
        test: {
          name: 'faults',
          include: faultTests,
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
