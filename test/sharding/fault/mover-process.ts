/**
 * A mover process for the fault run: moves random slots to random shards, one after another,
 * resuming whatever move a killed predecessor left running. With `finish` it only resumes the
 * running move (if any) and exits; with `one` it resumes it, then makes one move and exits.
 *
 *   CDP_SHARD_FAULT='{"catalog":"postgres://...","map":"items","shards":{"s0":"postgres://..."}}' \
 *     node --import tsx test/sharding/fault/mover-process.ts [finish|one]
 */
import { PgSqlClient } from '../../../src/engines/sql/pg-sql-client.js';
import { ShardMover } from '../../../src/sharding/index.js';

const config = JSON.parse(process.env.CDP_SHARD_FAULT ?? '{}') as {
  catalog: string;
  map: string;
  shards: Record<string, string>;
};
const finish = process.argv[2] === 'finish';
const one = process.argv[2] === 'one';
const catalog = await PgSqlClient.open({ url: config.catalog, max: 2 });
const shards: Record<string, PgSqlClient> = {};
for (const [id, url] of Object.entries(config.shards))
  shards[id] = await PgSqlClient.open({ url, max: 2 });
const mover = new ShardMover({
  catalog,
  map: config.map,
  shards,
  onProgress: (m) =>
    process.stdout.write(`${JSON.stringify({ phase: m.phase, unit: m.unit, id: m.id })}\n`),
});
process.stdout.write('ready\n');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
for (;;) {
  try {
    await mover.resume();
    if (finish) break;
    const state = await mover.catalog.load(config.map);
    const slot = Math.floor(Math.random() * state.slotCount);
    const source = state.slots[slot]!;
    const others = state.shards.map((s) => s.id).filter((s) => s !== source);
    await mover.move(`slot:${slot}`, others[Math.floor(Math.random() * others.length)]!);
    if (one) break;
  } catch (err) {
    process.stderr.write(`mover: ${err instanceof Error ? err.message : String(err)}\n`);
    await sleep(200);
  }
}
for (const c of Object.values(shards)) await c.close();
await catalog.close();
process.stdout.write('finished\n');
