import type { RebuildableProjection } from '../../cqrs/index.js';
import { rebuildProjection } from '../../cqrs/index.js';
import type { SqlEventStore } from '../../events/index.js';
import type { Demo } from '../feature.js';

export interface ProjectionRebuildDemoOptions {
  store: SqlEventStore;
  projection: RebuildableProjection;
  /** The read that visitors keep doing during the rebuild (a course's rating). */
  read: () => Promise<unknown>;
  /** Figures of the read model: rows and reviews it counts. */
  count: () => Promise<{ rows: number; reviews: number }>;
  /** Make sure the log holds enough events for the rebuild to be worth watching. */
  seed: () => Promise<number>;
  /** Resolves once the live projection has applied every event written so far. */
  caughtUp: () => Promise<void>;
}

/**
 * A projection rebuilt while reads go on: the read model is rebuilt from the event log into
 * copies of its tables, then swapped in, while a reader keeps querying it; no read fails and
 * the figures after equal those before.
 */
export function projectionRebuildDemo(o: ProjectionRebuildDemoOptions): Demo {
  return {
    id: 'projection-rebuild',
    title: 'Projection rebuilt while reads go on',
    description:
      'Replays every review event from the log into fresh copies of the ratings tables and swaps them in, while a reader keeps asking for a course rating. Reads never fail or see a half-built table; the counts after the swap match those before.',
    feature: 'reviews',
    async run() {
      const seeded = await o.seed();
      await o.caughtUp();
      const before = await o.count();
      let reads = 0;
      let failed = 0;
      let done = false;
      const reader = (async () => {
        while (!done) {
          try {
            await o.read();
            reads++;
          } catch {
            failed++;
          }
        }
      })();
      let batches = 0;
      let result: Awaited<ReturnType<typeof rebuildProjection>>;
      try {
        result = await rebuildProjection(o.store, o.projection, {
          batchSize: 25,
          onProgress: () => {
            batches++;
          },
        });
      } finally {
        done = true;
        await reader;
      }
      const after = await o.count();
      const same = after.rows === before.rows && after.reviews === before.reviews;
      return {
        ok: failed === 0 && same && reads > 0,
        summary: `rebuilt from ${result.events.toLocaleString('en-US')} events while ${reads.toLocaleString('en-US')} reads ran (${failed} failed); ${same ? 'the counts after match those before' : 'the counts changed'}.`,
        figures: [
          { label: 'events replayed', value: result.events },
          { label: 'batches', value: batches },
          { label: 'reads during rebuild', value: reads },
          { label: 'failed reads', value: failed },
          { label: 'reviews before', value: before.reviews },
          { label: 'reviews after', value: after.reviews },
          { label: 'courses rated before', value: before.rows },
          { label: 'courses rated after', value: after.rows },
        ],
        steps: [
          ...(seeded > 0
            ? [`wrote ${seeded} review events first, so there is a log to replay`]
            : []),
          'a reader starts asking for a course rating in a loop',
          `replayed the log from position 0 into copies of ${o.projection.tables.join(', ')} in batches of 25`,
          `swapped the copies in at position ${result.position}; the live projection resumes from there`,
          'stopped the reader',
        ],
      };
    },
  };
}
