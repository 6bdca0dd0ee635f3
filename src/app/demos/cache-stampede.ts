import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Cache } from '../../cache/index.js';
import type { Demo } from '../feature.js';
import type { Course } from '../features/catalog.js';

const READS = 1000;

/**
 * A cache stampede: 1,000 reads of one key that is in no tier start together; the loader (a
 * slow database read, 50 ms) runs once and every read gets its value. The key is the
 * demonstration's own and is deleted afterwards.
 */
export function cacheStampedeDemo(cache: Cache<Course>, sample: () => Promise<Course>): Demo {
  return {
    id: 'cache-stampede',
    title: 'Cache stampede: 1,000 concurrent misses, one load',
    description:
      'Starts 1,000 reads of one course that is in no cache tier at the same moment. Without protection each would go to the database; cache-aside with single-flight loads it once and hands the same value to every reader.',
    feature: 'cache',
    async run() {
      const key = `demo-stampede:${randomUUID()}`;
      const course = await sample();
      let calls = 0;
      const loader = async (): Promise<Course> => {
        calls++;
        await sleep(50);
        return course;
      };
      const before = cache.stats();
      const started = performance.now();
      const values = await Promise.all(
        Array.from({ length: READS }, () => cache.getOrLoad(key, loader)),
      );
      const elapsed = performance.now() - started;
      const after = cache.stats();
      await cache.delete(key);
      const same = values.every((v) => v?.id === course.id);
      return {
        ok: calls === 1 && same,
        summary:
          calls === 1
            ? `${READS.toLocaleString('en-US')} concurrent reads of one missing key ran the loader once; every read got the same course.`
            : `the loader ran ${calls} times for ${READS} concurrent reads of one key.`,
        figures: [
          { label: 'concurrent reads', value: READS },
          { label: 'loader calls', value: calls },
          { label: 'misses counted', value: after.misses - before.misses },
          { label: 'reads answered', value: values.length },
          { label: 'time for all reads', value: Math.round(elapsed), unit: 'ms' },
        ],
        steps: [
          `picked key ${key} (in no tier) and a loader that takes 50 ms`,
          `started ${READS} reads of it at once`,
          `the loader ran ${calls} time${calls === 1 ? '' : 's'}; the other reads waited for that load`,
          'deleted the key again',
        ],
      };
    },
  };
}
