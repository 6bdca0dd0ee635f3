import { measureStaleness, type StalenessReport } from '../../replication/index.js';
import type { Demo, Panel, PlatformFeature } from '../feature.js';
import type { CatalogService } from './catalog.js';

const PROBE_TABLE = 'app_replication_probe';
const CURVE_POINTS = [0, 0.5, 1, 2, 5, 10];

const stale = (r: StalenessReport | undefined, t: number): number | string => {
  const p = r?.curve.find((c) => c.tMs === t)?.pStale;
  return p === undefined ? 'run the demo' : p;
};

/**
 * The replication page: how the catalog's replicas (CDP_REPLICA_URLS) keep up, and the
 * staleness curve measured on them, for asynchronous and synchronous (ANY 1 remote_apply)
 * commits.
 */
export const replicationFeature: PlatformFeature = {
  name: 'replication',
  description: 'Catalog replicas: replay lag, read routing and the measured staleness curve',
  docs: ['docs/patterns/replication.md'],
  migrations: [
    {
      module: 'replication-app',
      version: 1,
      name: 'staleness probe rows',
      sql: `CREATE TABLE ${PROBE_TABLE} (id bigint PRIMARY KEY, commit text NOT NULL)`,
    },
  ],
  async start(ctx) {
    const catalog = ctx.services.get('catalog') as CatalogService | undefined;
    const router = catalog?.replicas;
    const measured: { async?: StalenessReport; sync?: StalenessReport } = {};

    const demos: Demo[] = router
      ? [
          {
            id: 'replication-staleness',
            feature: 'replication',
            title: 'Measure how stale a replica read is',
            description:
              'Writes 60 rows asynchronously and 60 with a synchronous commit (one standby applies before the primary answers), reads each on every replica from the moment the write is acknowledged until it appears, and draws the probability that a read is stale against the time since the write.',
            async run() {
              measured.async = await measureStaleness(router, {
                table: PROBE_TABLE,
                trials: 60,
                commit: 'async',
              });
              measured.sync = await measureStaleness(router, {
                table: PROBE_TABLE,
                trials: 60,
                commit: 'sync',
              });
              await ctx.sql.query(`DELETE FROM ${PROBE_TABLE}`);
              const a = measured.async;
              const s = measured.sync;
              return {
                ok: s.visibleAfterMs.p50 <= a.visibleAfterMs.p50,
                summary: `a replica read right after the write was stale ${Math.round(a.curve[0]!.pStale * 100)}% of the time after an asynchronous commit and ${Math.round(s.curve[0]!.pStale * 100)}% after a synchronous one (one of the standbys applied it before the answer)`,
                figures: [
                  { label: 'P(stale) at 0 ms, async', value: a.curve[0]!.pStale },
                  { label: 'P(stale) at 0 ms, sync', value: s.curve[0]!.pStale },
                  { label: 'write p50, async', value: a.writeMs.p50, unit: 'ms' },
                  { label: 'write p50, sync', value: s.writeMs.p50, unit: 'ms' },
                ],
                steps: [
                  `async: ${a.trials} writes, visible on replicas after p50 ${a.visibleAfterMs.p50} ms, p99 ${a.visibleAfterMs.p99} ms`,
                  `sync: ${s.trials} writes, visible on replicas after p50 ${s.visibleAfterMs.p50} ms, p99 ${s.visibleAfterMs.p99} ms`,
                ],
              };
            },
          },
        ]
      : [];

    const panel = async (): Promise<Panel> => {
      if (!router) {
        return {
          id: 'replication',
          title: 'Replication (no replicas)',
          stats: [
            {
              label: 'replicas',
              value: 'none',
              hint: 'CDP_REPLICA_URLS is unset (the embedded default): every catalog read goes to the primary. Set it to streaming standbys of the CDP_DATABASE_URL server (tooling/pg-replica-clusters.sh makes some) to read from them',
            },
            {
              label: 'standbys in use',
              value: 0,
              hint: 'Standbys serving catalog reads: none without CDP_REPLICA_URLS',
            },
          ],
          charts: [
            {
              title: 'Standbys in use',
              stats: ['standbys in use'],
              hint: 'Nothing to plot without replicas: see docs/patterns/replication.md for the measured curve',
            },
          ],
          docs: 'docs/patterns/replication.md',
        };
      }
      const status = router.status();
      const lagLabels = status.replicas.map((r) => `lag ${r.name}`);
      const stats: Panel['stats'] = [
        {
          label: 'replicas',
          value: `${status.replicas.filter((r) => r.healthy && !r.excluded).length} of ${status.replicas.length} in use`,
          hint: 'Standbys the router reads from: healthy (it answered its last poll) and following the current primary',
        },
        ...status.replicas.map((r) => ({
          label: `lag ${r.name}`,
          value: r.lagBytes ?? 'unknown',
          unit: 'bytes',
          hint: `WAL the primary has written that ${r.name} has not replayed yet, at the last poll${r.lastError ? ` (last error: ${r.lastError})` : ''}`,
        })),
        ...status.replicas.map((r) => ({
          label: `staleness ${r.name}`,
          value: r.stalenessMs ?? 'unknown',
          unit: 'ms',
          hint: `At most this far behind the primary: ${r.name} has replayed everything the primary had written this long ago`,
        })),
        {
          label: 'reads on replicas',
          value: status.reads.replica,
          hint: 'Catalog reads a standby served: it had replayed the reader’s token, or was within 5 s of the primary for a read without one',
        },
        {
          label: 'reads on primary',
          value: status.reads.primary,
          hint: 'Catalog reads the primary served because no replica had the reader’s last write yet (read-your-writes) or none was fresh enough',
        },
      ];
      for (const mode of ['async', 'sync'] as const) {
        const r = measured[mode];
        for (const t of CURVE_POINTS) {
          stats.push({
            label: `P(stale) ${mode} ${t} ms`,
            value: stale(r, t),
            hint: `The probability that a replica read issued ${t} ms after a ${mode === 'sync' ? 'synchronous (ANY 1 remote_apply)' : 'asynchronous'} write was acknowledged misses it, measured by the demo`,
          });
        }
        stats.push({
          label: `write p50 ${mode}`,
          value: r?.writeMs.p50 ?? 'run the demo',
          unit: 'ms',
          hint: `Median time for the primary to acknowledge a ${mode === 'sync' ? 'write that one standby has applied' : 'write committed locally'}, from the demo`,
        });
      }
      return {
        id: 'replication',
        title: 'Replication',
        stats,
        charts: [
          {
            title: 'Replica lag',
            stats: lagLabels,
            unit: 'bytes',
            hint: 'WAL not yet replayed on each standby: near zero at rest, a spike under write bursts',
          },
          {
            title: 'Staleness curve (PBS), async',
            stats: CURVE_POINTS.map((t) => `P(stale) async ${t} ms`),
            hint: 'Each line is the probability a read that long after the write is stale: it falls to zero within a few ms',
          },
          {
            title: 'Staleness curve (PBS), sync',
            stats: CURVE_POINTS.map((t) => `P(stale) sync ${t} ms`),
            hint: 'With ANY 1 remote_apply one standby has the write before the answer; the other may still lag',
          },
          {
            title: 'Write latency',
            stats: ['write p50 async', 'write p50 sync'],
            unit: 'ms',
            hint: 'What waiting for a standby costs a write',
          },
        ],
        table: {
          columns: ['t since the write (ms)', 'P(stale) async', 'P(stale) sync'],
          rows: CURVE_POINTS.map((t) => [t, stale(measured.async, t), stale(measured.sync, t)]),
        },
        docs: 'docs/patterns/replication.md',
      };
    };
    return { panel, demos };
  },
};
