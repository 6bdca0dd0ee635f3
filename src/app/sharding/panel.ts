import type { z } from 'zod';
import type { Panel } from '../feature.js';
import type { statusSchema } from './docs.js';

export type ShardingStatus = z.infer<typeof statusSchema>;

/** The dashboard panel of the sharding feature, from its status. */
export function shardingPanel(s: ShardingStatus): Panel {
  const move = s.move;
  const running = move !== null && move.phase !== 'done' && move.phase !== 'rolled-back';
  const pct =
    move && move.rowsTotal > 0
      ? Math.round((move.rowsCopied / move.rowsTotal) * 100)
      : move?.phase === 'done'
        ? 100
        : 0;
  const lag = Math.max(0, ...s.indexes.map((i) => i.lagMs));
  const rowsOf = (sh: ShardingStatus['shards'][number]) =>
    Object.values(sh.rows).reduce((a, b) => a + b, 0);
  return {
    id: 'sharding',
    title: `Sharding: map "${s.map}" v${s.version} over ${s.shards.length} shards`,
    stats: [
      ...s.shards.map((sh) => ({
        label: `slots on ${sh.id}`,
        value: sh.slots,
        unit: `of ${s.slotCount}`,
        hint: `Hash slots shard ${sh.id} (${sh.location}) owns. A key's slot is a stable hash of it; moving a slot moves only its rows.`,
      })),
      ...s.shards.map((sh) => ({
        label: `rows on ${sh.id}`,
        value: rowsOf(sh),
        unit: 'rows',
        hint: `Rows of the sharded tables (enrollments, student profiles, course directory, index rows) on shard ${sh.id}.`,
      })),
      {
        label: 'move',
        value: move ? `${move.unit} ${move.source}→${move.target}: ${move.phase}` : 'none yet',
        hint: 'The move in progress, or the last one: copy, catch-up, fenced, verifying, switched, cleaning, done.',
      },
      {
        label: 'move progress',
        value: pct,
        unit: '%',
        hint: running
          ? 'Rows copied of the rows the slot held when the copy began.'
          : 'Progress of the last move (100 once done).',
      },
      {
        label: 'write fence',
        value: move?.fenceMs ?? 0,
        unit: 'ms',
        hint: "How long the last move's cut-over refused writes to its slot (writers waited, none failed).",
      },
      {
        label: 'index lag',
        value: Math.round(lag),
        unit: 'ms',
        hint: 'Age of the oldest index change the last drain applied: how far an index table can trail its base rows.',
      },
      {
        label: 'map version',
        value: s.version,
        hint: 'Bumped by every change of ownership; routers notice it and reload the map.',
      },
    ],
    charts: [
      {
        title: 'Rows per shard',
        stats: s.shards.map((sh) => `rows on ${sh.id}`),
        unit: 'rows',
        hint: 'Grows with enrollments; a slot move shifts rows from one line to the other.',
      },
      {
        title: 'Move progress and index lag',
        stats: ['move progress', 'index lag'],
        hint: 'Progress climbs to 100 during a move; the lag stays low while the drain keeps up.',
      },
    ],
    table: {
      columns: ['hot slot', 'transactions', 'x mean', 'suggestion'],
      rows: s.hotSlots.map((h) => [h.unit, h.count, h.ratio, h.suggestion]),
    },
    docs: 'docs/patterns/sharding.md',
  };
}
