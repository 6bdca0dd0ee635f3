/**
 * Replication across simulated regions: the standbys of CDP_REPLICA_TEST_URLS stream from the
 * primary through loopback proxies that add 20, 80 and 150 ms round trips (no netem here), and
 * a reader "in the standbys' region" reaches the primary through another such proxy. Measures
 * write latency with and without waiting for a standby, how long an asynchronous write takes to
 * appear on the standbys, and what a local read-your-writes read costs against reading the
 * remote primary. The standbys' primary_conninfo is restored afterwards.
 */
import { PgSqlClient } from '../../engines/sql/pg-sql-client.js';
import { measureStaleness } from '../../replication/index.js';
import { openReplicaRouter } from '../../replication/postgres.js';
import { type LatencyProxy, startLatencyProxy } from '../../testing/latency-proxy.js';
import { type BenchContext, type BenchResult, median, result } from '../harness.js';

const TABLE = 'cdp_bench_regions';
const RTTS = [20, 80, 150];

async function timed(op: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await op();
  return performance.now() - t;
}

const ms = (x: number) => Math.round(x * 100) / 100;

async function streaming(primary: PgSqlClient, count: number): Promise<void> {
  for (let i = 0; i < 300; i++) {
    const { rows } = await primary.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM pg_stat_replication WHERE state = 'streaming'",
    );
    if (rows[0]!.n >= count) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the standbys did not reconnect to the primary within 30 s');
}

export async function regionCases(ctx: BenchContext): Promise<BenchResult[]> {
  const urls = (ctx.env.CDP_REPLICA_TEST_URLS ?? '').split(',').filter((u) => u.length > 0);
  if (urls.length < 3) {
    ctx.progress('skipped region.*: set CDP_REPLICA_TEST_URLS (tooling/pg-replica-clusters.sh)');
    return [];
  }
  const [primaryUrl, ...replicaUrls] = urls as [string, ...string[]];
  const primaryPort = Number(new URL(primaryUrl).port);
  const primary = await PgSqlClient.open({ url: primaryUrl, max: 2 });
  const standbys = await Promise.all(replicaUrls.map((url) => PgSqlClient.open({ url, max: 2 })));
  const proxies: LatencyProxy[] = [];
  const original: string[] = [];
  try {
    // Standbys stream through one proxy each.
    for (const standby of standbys) {
      const { rows } = await standby.query<{ c: string }>(
        "SELECT current_setting('primary_conninfo') AS c",
      );
      original.push(rows[0]!.c);
      const proxy = await startLatencyProxy({ target: { port: primaryPort } });
      proxies.push(proxy);
      const conninfo = rows[0]!.c.replace(/port=\d+/, `port=${proxy.port}`);
      await standby.query(
        `ALTER SYSTEM SET primary_conninfo = '${conninfo.replaceAll("'", "''")}'`,
      );
      await standby.query('SELECT pg_reload_conf()');
    }
    await new Promise((r) => setTimeout(r, 500));
    await streaming(primary, standbys.length);
    // The reader in the standbys' region reaches the primary through its own proxy.
    const clientProxy = await startLatencyProxy({ target: { port: primaryPort } });
    proxies.push(clientProxy);
    const remote = new URL(primaryUrl);
    remote.port = String(clientProxy.port);
    const remotePrimary = await PgSqlClient.open({ url: remote.toString(), max: 2 });
    const out: BenchResult[] = [];
    const n = ctx.quick ? 8 : 25;
    try {
      await primary.query(`DROP TABLE IF EXISTS ${TABLE}`);
      await primary.query(`CREATE TABLE ${TABLE} (id int PRIMARY KEY, v int NOT NULL)`);
      await primary.query(`INSERT INTO ${TABLE} SELECT g, 0 FROM generate_series(1, 100) g`);
      for (const rtt of RTTS) {
        ctx.progress(`region round trip ${rtt} ms`);
        for (const p of proxies) p.setDelay(rtt / 2);
        await new Promise((r) => setTimeout(r, 3 * rtt + 200));
        const router = await openReplicaRouter({
          primaryUrl,
          replicaUrls,
          max: 2,
          waitForReplicaMs: 4 * rtt + 100,
        });
        try {
          const sync: number[] = [];
          const async_: number[] = [];
          const ryw: number[] = [];
          const remoteRead: number[] = [];
          const sql = `UPDATE ${TABLE} SET v = v + 1 WHERE id = $1`;
          const readSql = `SELECT v FROM ${TABLE} WHERE id = $1`;
          for (let i = 0; i < n; i++) {
            const id = (i % 100) + 1;
            sync.push(await timed(() => router.write(sql, [id], { commit: 'sync' })));
            async_.push(await timed(() => router.write(sql, [id], { commit: 'async' })));
            const { token } = await router.write(sql, [id]);
            ryw.push(await timed(() => router.read(readSql, [id], { kind: 'after', token })));
            remoteRead.push(await timed(() => remotePrimary.query(readSql, [id])));
          }
          const pbs = await measureStaleness(router, {
            table: `${TABLE}_pbs`,
            trials: n,
            commit: 'async',
            horizonMs: 2 * rtt,
            stepMs: rtt / 4,
          });
          out.push(
            result({
              id: `region.write.rtt${rtt}`,
              metric: `write latency p50, sync (ANY 1 remote_apply) vs async, standbys ${rtt} ms away`,
              unit: 'ms',
              ours: ms(median(sync)),
              peer: { name: 'async', value: ms(median(async_)) },
              higherIsBetter: false,
              params: { roundTripMs: rtt, writes: n },
            }),
            result({
              id: `region.visible.rtt${rtt}`,
              metric: `async write visible on the standbys after, p50 (p99 in params)`,
              unit: 'ms',
              ours: pbs.visibleAfterMs.p50,
              higherIsBetter: false,
              params: { roundTripMs: rtt, trials: n, visibleAfterMs: pbs.visibleAfterMs },
            }),
            result({
              id: `region.ryw.read.rtt${rtt}`,
              metric: 'read-your-writes read on a local standby right after the write, p50',
              unit: 'ms',
              ours: ms(median(ryw)),
              peer: { name: 'read on the remote primary', value: ms(median(remoteRead)) },
              higherIsBetter: false,
              params: { roundTripMs: rtt, pairs: n, waitForReplicaMs: 4 * rtt + 100 },
            }),
          );
        } finally {
          await router.close();
        }
      }
    } finally {
      await primary.query(`DROP TABLE IF EXISTS ${TABLE}, ${TABLE}_pbs`).catch(() => {});
      await remotePrimary.close();
    }
    return out;
  } finally {
    for (const [i, standby] of standbys.entries()) {
      if (original[i] === undefined) continue;
      await standby
        .query(`ALTER SYSTEM SET primary_conninfo = '${original[i]!.replaceAll("'", "''")}'`)
        .then(() => standby.query('SELECT pg_reload_conf()'))
        .catch(() => {});
    }
    await new Promise((r) => setTimeout(r, 500));
    await streaming(primary, standbys.length).catch(() => {});
    for (const p of proxies) await p.close();
    await Promise.all(standbys.map((s) => s.close()));
    await primary.close();
  }
}
