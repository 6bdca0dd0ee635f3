/**
 * The replica router on a real primary and two streaming standbys (CDP_REPLICA_TEST_URLS,
 * tooling/pg-replica-clusters.sh): read scaling, the cost of read-your-writes, and the cost of
 * a synchronous (ANY 1 remote_apply) commit. Without the variable these cases are skipped with a
 * printed reason. Every server runs on this 2-core machine: replicas add no CPU, so read
 * scaling here measures routing overhead more than capacity.
 */
import { PgSqlClient } from '../../engines/sql/pg-sql-client.js';
import { measureStaleness, type ReplicaRouter } from '../../replication/index.js';
import { openReplicaRouter, withSynchronousCommit } from '../../replication/postgres.js';
import { type BenchContext, type BenchResult, median, opsPerSecond, result } from '../harness.js';

const TABLE = 'cdp_bench_replicas';

async function timed(op: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await op();
  return performance.now() - t;
}

async function concurrentOps(
  op: () => Promise<unknown>,
  workers: number,
  durationMs: number,
): Promise<number> {
  const rates = await Promise.all(
    Array.from({ length: workers }, () => opsPerSecond(op, durationMs)),
  );
  return rates.reduce((a, b) => a + b, 0);
}

export async function replicaCases(ctx: BenchContext): Promise<BenchResult[]> {
  const urls = (ctx.env.CDP_REPLICA_TEST_URLS ?? '').split(',').filter((u) => u.length > 0);
  if (urls.length < 3) {
    ctx.progress(
      'skipped replica.read.scale, ryw.overhead, sync.write.cost, staleness.pbs: set CDP_REPLICA_TEST_URLS (tooling/pg-replica-clusters.sh)',
    );
    return [];
  }
  const [primaryUrl, ...replicaUrls] = urls as [string, ...string[]];
  const primary = await PgSqlClient.open({
    url: withSynchronousCommit(primaryUrl, 'local'),
    max: 16,
  });
  let router: ReplicaRouter | undefined;
  try {
    router = await openReplicaRouter({ primaryUrl, replicaUrls, max: 16 });
    await primary.query(`DROP TABLE IF EXISTS ${TABLE}`);
    await primary.query(`CREATE TABLE ${TABLE} (id int PRIMARY KEY, v text NOT NULL)`);
    await primary.query(
      `INSERT INTO ${TABLE} SELECT g, md5(g::text) FROM generate_series(1, 10000) g`,
    );
    await new Promise((r) => setTimeout(r, 500));
    await router.refresh();
    const out: BenchResult[] = [];
    const duration = ctx.quick ? 1500 : 4000;
    const workers = 16;
    let k = 0;
    const readSql = `SELECT v FROM ${TABLE} WHERE id = $1`;
    const key = () => [(k++ % 10000) + 1];
    ctx.progress('replica.read.scale');
    const alone = await concurrentOps(() => primary.query(readSql, key()), workers, duration);
    const r = router;
    const routed = await concurrentOps(() => r.read(readSql, key()), workers, duration);
    out.push(
      result({
        id: 'replica.read.scale',
        metric: 'point reads per second, 16 concurrent clients',
        unit: 'reads/s',
        ours: Math.round(routed),
        peer: { name: 'primary alone', value: Math.round(alone) },
        higherIsBetter: true,
        params: {
          replicas: replicaUrls.length,
          durationMs: duration,
          note: 'primary and both standbys share this machine’s 2 cores: no added CPU',
        },
      }),
    );

    ctx.progress('ryw.overhead');
    const n = ctx.quick ? 300 : 1500;
    const ryw: number[] = [];
    const plain: number[] = [];
    for (let i = 0; i < n; i++) {
      const id = (i % 10000) + 1;
      const { token } = await r.write(`UPDATE ${TABLE} SET v = $2 WHERE id = $1`, [id, `w${i}`]);
      ryw.push(await timed(() => r.read(readSql, [id], { kind: 'after', token })));
      plain.push(await timed(() => primary.query(readSql, [id])));
    }
    out.push(
      result({
        id: 'ryw.overhead',
        metric: 'read-your-writes read latency right after the write, p50',
        unit: 'ms',
        ours: Math.round(median(ryw) * 1000) / 1000,
        peer: { name: 'read on the primary', value: Math.round(median(plain) * 1000) / 1000 },
        higherIsBetter: false,
        params: { pairs: n, waitForReplicaMs: 0, goal: '<= 1.2x the primary read' },
      }),
    );

    ctx.progress('sync.write.cost');
    const sync: number[] = [];
    const async_: number[] = [];
    for (let i = 0; i < n; i++) {
      const id = (i % 10000) + 1;
      sync.push(
        await timed(() =>
          r.write(`UPDATE ${TABLE} SET v = $2 WHERE id = $1`, [id, 's'], { commit: 'sync' }),
        ),
      );
      async_.push(
        await timed(() =>
          r.write(`UPDATE ${TABLE} SET v = $2 WHERE id = $1`, [id, 'a'], { commit: 'async' }),
        ),
      );
    }
    out.push(
      result({
        id: 'sync.write.cost',
        metric: 'write latency p50 (one UPDATE and its token), ANY 1 remote_apply',
        unit: 'ms',
        ours: Math.round(median(sync) * 1000) / 1000,
        peer: {
          name: 'async (synchronous_commit=local)',
          value: Math.round(median(async_) * 1000) / 1000,
        },
        higherIsBetter: false,
        params: { writes: n },
      }),
    );

    ctx.progress('staleness.pbs');
    const trials = ctx.quick ? 100 : 400;
    for (const commit of ['async', 'sync'] as const) {
      const pbs = await measureStaleness(r, { table: `${TABLE}_pbs`, trials, commit });
      const at = (t: number) => pbs.curve.find((p) => p.tMs === t)?.pStale ?? null;
      out.push(
        result({
          id: `staleness.pbs.${commit}`,
          metric: 'probability a replica read right after the acknowledgement is stale (t = 0)',
          unit: 'probability',
          ours: pbs.curve[0]?.pStale ?? 0,
          higherIsBetter: false,
          params: {
            trials,
            replicas: pbs.replicas.length,
            writeMs: pbs.writeMs,
            visibleAfterMs: pbs.visibleAfterMs,
            pStale: { '0.5ms': at(0.5), '1ms': at(1), '2ms': at(2), '5ms': at(5), '10ms': at(10) },
            curve: pbs.curve,
          },
        }),
      );
    }
    await primary.query(`DROP TABLE IF EXISTS ${TABLE}_pbs`);
    return out;
  } finally {
    await primary.query(`DROP TABLE IF EXISTS ${TABLE}`).catch(() => {});
    await router?.close();
    await primary.close();
  }
}
