import { afterAll, beforeAll, expect, it } from 'vitest';
import { PgSqlClient } from '../../src/engines/sql/pg-sql-client.js';
import {
  ConsistencyTokenError,
  NotAStandbyError,
  type ReplicaRouter,
} from '../../src/replication/index.js';
import { openReplicaRouter } from '../../src/replication/postgres.js';
import { describeServer } from '../support/servers.js';

describeServer('replica router on streaming standbys', 'CDP_REPLICA_TEST_URLS', (urls) => {
  const [primaryUrl, standby1, standby2] = urls.split(',') as [string, string, string];
  const table = `replpg_ryw_${process.pid}`;
  let router: ReplicaRouter;
  let paused: PgSqlClient;
  let direct: PgSqlClient;

  beforeAll(async () => {
    router = await openReplicaRouter({
      primaryUrl,
      replicaUrls: [standby1, standby2],
      waitForReplicaMs: 20,
      pollIntervalMs: 50,
    });
    paused = await PgSqlClient.open({ url: standby1, max: 1 });
    direct = await PgSqlClient.open({ url: primaryUrl, max: 2 });
    await direct.query(`DROP TABLE IF EXISTS ${table}`);
    await direct.query(`CREATE TABLE ${table} (id int PRIMARY KEY, v text NOT NULL)`);
  });

  afterAll(async () => {
    await paused?.query('SELECT pg_wal_replay_resume()').catch(() => {});
    await direct?.query(`DROP TABLE IF EXISTS ${table}`).catch(() => {});
    await router?.close();
    await paused?.close();
    await direct?.close();
  });

  it('sees both standbys as healthy replicas of one cluster', async () => {
    await router.refresh();
    const status = router.status();
    expect(status.replicas.map((r) => r.healthy)).toEqual([true, true]);
    expect(status.systemIdentifier).toMatch(/^\d+$/);
  });

  it('refuses a replica URL that is not a standby', async () => {
    const err = await openReplicaRouter({ primaryUrl, replicaUrls: [primaryUrl] }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(NotAStandbyError);
    expect((err as NotAStandbyError).code).toBe('REPLICATION_NOT_A_STANDBY');
    expect((err as Error).message).toContain('pg_is_in_recovery() is false');
  });

  it('refuses malformed tokens and tokens of another cluster with coded errors', async () => {
    const bad = await router
      .read('SELECT 1', [], { kind: 'after', token: 'cdp1.12.1.zz' })
      .catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(ConsistencyTokenError);
    expect((bad as ConsistencyTokenError).code).toBe('REPLICATION_TOKEN_MALFORMED');
    const foreign = await router
      .read('SELECT 1', [], { kind: 'after', token: 'cdp1.42.1.0/16B3740' })
      .catch((e: unknown) => e);
    expect((foreign as ConsistencyTokenError).code).toBe('REPLICATION_TOKEN_FOREIGN');
  });

  it('routes writes to the primary and a write through query() lands there', async () => {
    await router.query(`INSERT INTO ${table} (id, v) VALUES (-1, 'x')`);
    const { rows } = await direct.query(`SELECT v FROM ${table} WHERE id = -1`);
    expect(rows).toEqual([{ v: 'x' }]);
  });

  it('10,000 write-then-read pairs with a paused standby: zero stale reads', async () => {
    await paused.query('SELECT pg_wal_replay_pause()');
    const pairs = 10_000;
    const workers = 8;
    let stale = 0;
    let fromReplica = 0;
    let next = 0;
    const worker = async () => {
      for (;;) {
        const id = next++;
        if (id >= pairs) return;
        const { token } = await router.write(`INSERT INTO ${table} (id, v) VALUES ($1, $2)`, [
          id,
          `v${id}`,
        ]);
        const res = await router.read<{ v: string }>(`SELECT v FROM ${table} WHERE id = $1`, [id], {
          kind: 'after',
          token,
        });
        if (res.rows[0]?.v !== `v${id}`) stale++;
        if (!res.primary) fromReplica++;
        expect(res.servedBy).not.toBe(router.status().replicas[0]!.name);
      }
    };
    await Promise.all(Array.from({ length: workers }, worker));
    // The paused standby really lags: read directly, it misses the rows written meanwhile.
    const behind = await paused.query<{ n: string }>(
      `SELECT count(*)::text AS n FROM ${table} WHERE id >= 0`,
    );
    console.log(
      `read-your-writes: ${pairs} pairs, ${stale} stale, ${fromReplica} served by a replica, paused standby holds ${behind.rows[0]!.n} of them`,
    );
    expect(Number(behind.rows[0]!.n)).toBeLessThan(pairs);
    expect(stale).toBe(0);
    expect(fromReplica).toBeGreaterThan(0);
    await paused.query('SELECT pg_wal_replay_resume()');
  }, 180_000);

  it('a session reads its own writes and sticks to one replica between them', async () => {
    const session = router.session();
    await session.write(`INSERT INTO ${table} (id, v) VALUES (-2, 'mine')`);
    const first = await session.read<{ v: string }>(`SELECT v FROM ${table} WHERE id = -2`);
    expect(first.rows).toEqual([{ v: 'mine' }]);
    const token = session.token!;
    const resumed = router.session({ token });
    const again = await resumed.read<{ v: string }>(`SELECT v FROM ${table} WHERE id = -2`);
    expect(again.rows).toEqual([{ v: 'mine' }]);
    const servers = new Set<string>();
    for (let i = 0; i < 20; i++) {
      servers.add((await resumed.read('SELECT 1')).servedBy);
    }
    expect(servers.size).toBe(1);
  });

  it('bounded staleness skips a replica whose replay is paused', async () => {
    await paused.query('SELECT pg_wal_replay_pause()');
    try {
      for (let i = 0; i < 20; i++) await direct.query(`UPDATE ${table} SET v = v WHERE id = -1`);
      await new Promise((r) => setTimeout(r, 400));
      await router.refresh();
      const pausedName = router.status().replicas[0]!.name;
      for (let i = 0; i < 50; i++) {
        const res = await router.read('SELECT 1', [], { kind: 'bounded', maxStalenessMs: 200 });
        expect(res.servedBy).not.toBe(pausedName);
      }
    } finally {
      await paused.query('SELECT pg_wal_replay_resume()');
    }
  });
});
