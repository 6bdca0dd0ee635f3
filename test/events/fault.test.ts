import { expect, it } from 'vitest';
import { describeServer } from '../support/servers.js';
import { runFault } from './fault/fault-run.js';

/**
 * The fault run at a small size (CDP_FAULT_SCALE raises it; the full run is
 * `npx tsx test/events/fault/fault-run.ts`): writer processes with rollbacks, slow commits,
 * SIGKILLs and an idle open transaction; the catch-up reader must end with every committed
 * event exactly once, in position order.
 */
describeServer(
  'event store fault run (PostgreSQL, writer processes killed)',
  'CDP_DATABASE_URL',
  (url) => {
    it('a catch-up reader ends with every committed event exactly once and in order', {
      timeout: 120_000,
    }, async () => {
      const summary = await runFault({
        url,
        appends: Number(process.env.CDP_FAULT_SCALE ?? 1500),
        writers: 3,
        killEveryMs: 1200,
        idleMs: 1500,
      });
      console.log(
        `fault run: ${JSON.stringify({ ...summary, violations: summary.violations.length })}`,
      );
      expect(summary.violations).toEqual([]);
      expect(summary.kills).toBeGreaterThan(0);
      expect(summary.rollbacks).toBeGreaterThan(0);
      expect(summary.appendsAutocommitted).toBeGreaterThan(0);
      expect(summary.appendsAutocommitted).toBeLessThan(summary.appendsCommitted);
      expect(summary.idleTransactions).toBe(1);
      expect(summary.readerHeldBackObservations).toBeGreaterThan(0);
      expect(summary.eventsRead).toBeGreaterThanOrEqual(summary.eventsCommitted);
    });
  },
);
