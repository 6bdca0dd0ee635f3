import { randomUUID } from 'node:crypto';
import type { Clock } from '../../core/clock.js';
import { errorMessage } from '../../core/errors.js';
import type { ShardMover, ShardRouter } from '../../sharding/index.js';
import type { Demo, DemoResult } from '../feature.js';

const KEYS = 20;
const WRITERS = 4;

/**
 * Moves one slot to the other shard while four writers keep updating student profiles in it,
 * then reads every profile back: each must hold the last value a writer was told was written.
 * It writes only its own profiles (`demo-move-<run>-<n>`) and deletes them afterwards.
 */
export function openMoveDemo(o: {
  router: ShardRouter;
  mover: ShardMover;
  clock: Clock;
  busy: () => boolean;
}): Demo {
  const { router, mover, clock } = o;
  return {
    id: 'sharding-move-under-writes',
    title: 'Move a slot while writers write',
    description:
      'Four writers update 20 student profiles that share one hash slot while the slot moves to the other shard (copy, catch-up, a short write fence, verify, switch). Afterwards every profile is read back: each must hold the last value its writer was told was written. Shows the write pause the fence caused.',
    feature: 'sharding',
    async run(): Promise<DemoResult> {
      const steps: string[] = [];
      const running = await mover.running();
      if (running || o.busy())
        return {
          ok: false,
          summary: `a move is already running (${running?.unit ?? 'starting'}); run the demonstration when it is done`,
          figures: [],
          steps,
        };
      const run = randomUUID().slice(0, 8);
      const first = `demo-move-${run}-0`;
      const { unit, shard } = router.route(first);
      const keys = [first];
      for (let i = 1; keys.length < KEYS && i < 200_000; i++) {
        const k = `demo-move-${run}-${i}`;
        if (router.route(k).unit === unit) keys.push(k);
      }
      const target = router.shardIds().find((s) => s !== shard);
      if (!target)
        return {
          ok: false,
          summary: 'the map has one shard: nothing to move to',
          figures: [],
          steps,
        };
      steps.push(`${keys.length} profiles in ${unit}, on shard ${shard}; moving it to ${target}`);
      const acked = new Map<string, number>();
      let writes = 0;
      let failures = 0;
      let longest = 0;
      let stop = false;
      const write = async (key: string, n: number) => {
        const t0 = clock.now();
        await router.query(
          key,
          `INSERT INTO app_students (id, email, name) VALUES ($1, NULL, $2)
           ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name`,
          [key, String(n)],
        );
        longest = Math.max(longest, clock.now() - t0);
      };
      for (const k of keys) {
        await write(k, 0);
        acked.set(k, 0);
      }
      const writers = Array.from({ length: WRITERS }, async (_, w) => {
        let n = 0;
        while (!stop) {
          // Writer w owns keys w, w+4, ...: one writer per key, so "last acknowledged" is exact.
          for (let i = w; i < keys.length && !stop; i += WRITERS) {
            n++;
            try {
              await write(keys[i]!, n);
              acked.set(keys[i]!, n);
              writes++;
            } catch {
              failures++;
            }
          }
          await clock.sleep(2);
        }
      });
      let move: Awaited<ReturnType<ShardMover['get']>> | undefined;
      let error: string | undefined;
      try {
        await clock.sleep(100);
        const planned = await mover.plan(unit, target);
        steps.push(`move ${planned.id.slice(0, 8)} planned while ${WRITERS} writers write`);
        move = await mover.run(planned.id);
        steps.push(
          `move ${move.phase}: ${move.rowsCopied} rows copied, writes to the slot fenced for ${move.fenceMs ?? 0} ms`,
        );
        await clock.sleep(100);
      } catch (err) {
        error = errorMessage(err);
        steps.push(`the move failed: ${error}`);
      } finally {
        stop = true;
        await Promise.all(writers);
      }
      let lost = 0;
      for (const k of keys) {
        const [row] = await router.query<{ name: string }>(
          k,
          'SELECT name FROM app_students WHERE id = $1',
          [k],
        );
        if (row?.name !== String(acked.get(k))) lost++;
      }
      const nowOn = router.route(first).shard;
      steps.push(
        `${writes} writes acknowledged, ${failures} refused; read back: ${lost} lost; ${unit} now on ${nowOn}`,
      );
      for (const k of keys)
        await router.query(k, 'DELETE FROM app_students WHERE id = $1', [k]).catch(() => {});
      steps.push('the demonstration profiles were deleted');
      const ok = !error && move?.phase === 'done' && lost === 0 && nowOn === target;
      return {
        ok,
        summary: ok
          ? `${unit} moved from ${shard} to ${target} under ${writes} writes: none lost, the longest write waited ${Math.round(longest)} ms`
          : `the move did not hold: ${error ?? `${lost} writes lost`}`,
        figures: [
          { label: 'writes acknowledged', value: writes },
          { label: 'lost writes', value: lost },
          { label: 'write fence', value: move?.fenceMs ?? 0, unit: 'ms' },
          { label: 'longest write', value: Math.round(longest), unit: 'ms' },
          { label: 'rows copied', value: move?.rowsCopied ?? 0 },
        ],
        steps,
      };
    },
  };
}
