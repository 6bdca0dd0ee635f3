import { expect, it } from 'vitest';
import { describeServer } from '../support/servers.js';
import { runShardFault } from './fault/fault-run.js';

/**
 * 8 writers over 100,000 rows on 4 shards (two PostgreSQL servers) while a mover process moves
 * slots continuously and is SIGKILLed at random moments, and one shard server restarts once;
 * writers keep a unique index table, and the index checker runs after the run.
 */
describeServer(
  'sharding fault run: mover SIGKILLed, a shard server restarted',
  'CDP_SHARD_TEST_URLS',
  (urls) => {
    it('loses no acknowledged write, duplicates no row, leaves every slot with exactly one owner', async () => {
      const report = await runShardFault({
        urls: urls.split(','),
        rows: Number(process.env.CDP_SHARD_FAULT_ROWS ?? 100_000),
        writers: 8,
        durationMs: Number(process.env.CDP_SHARD_FAULT_MS ?? 30_000),
        killEveryMs: [1000, 4000],
        restartServer: true,
      });
      console.log(`sharding fault run: ${JSON.stringify(report)}`);
      expect(report.kills).toBeGreaterThan(2);
      expect(report.serverRestarts).toBe(1);
      expect(report.movesDone).toBeGreaterThan(0);
      expect(report.ackedWrites).toBeGreaterThan(0);
      expect(report.lostWrites).toBe(0);
      expect(report.missingRows).toBe(0);
      expect(report.duplicateRows).toBe(0);
      expect(report.slotsWithTwoOwners).toBe(0);
      expect(report.slotsWithNoOwner).toBe(0);
      expect(report.slotsOwnerDiffersFromCatalog).toBe(0);
      expect(report.runningMoves).toBe(0);
      expect(report.indexApplied).toBeGreaterThan(0);
      expect(report.index).toEqual({
        baseRows: report.rows,
        indexRows: report.rows,
        missing: 0,
        extra: 0,
        stale: 0,
      });
    }, 300_000);
  },
);
