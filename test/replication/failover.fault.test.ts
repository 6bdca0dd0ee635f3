import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, expect, it } from 'vitest';
import { PgSqlClient } from '../../src/engines/sql/pg-sql-client.js';
import type { ReplicaRouter } from '../../src/replication/index.js';
import { openReplicaRouter } from '../../src/replication/postgres.js';
import { describeServer } from '../support/servers.js';

const run = promisify(execFile);

// Its own primary and standbys on their own ports, made and dropped here: promoting a standby
// wrecks a topology, and the shared one (CDP_REPLICA_TEST_URLS) must stay as the tooling made it.
const SPECS = ['cdprepf0:5461', 'cdprepf1:5462', 'cdprepf2:5463'];
const NAMES = ['cdprepf0', 'cdprepf1', 'cdprepf2'];
const script = 'tooling/pg-replica-clusters.sh';

async function topology(): Promise<string[]> {
  const { stdout } = await run(script, SPECS, { timeout: 240_000 });
  return stdout.trim().split(',');
}

async function stopCluster(name: string): Promise<void> {
  await run('pg_ctlcluster', ['--skip-systemctl-redirect', '15', name, 'stop', '-m', 'immediate'], {
    timeout: 60_000,
  });
}

const conninfo = (standby: string, primaryPort: number) =>
  `host=127.0.0.1 port=${primaryPort} user=postgres application_name=${standby}`;
const port = (serverName: string) => Number(serverName.split(':')[1]);

interface Acked {
  id: number;
  token: string;
}

/** Writers that insert ids until the first failure; returns what was acknowledged. */
async function load(
  router: ReplicaRouter,
  commit: 'sync' | 'async',
  stop: () => boolean,
  firstId = 0,
): Promise<Acked[]> {
  const acked: Acked[] = [];
  let next = firstId;
  const writer = async () => {
    while (!stop()) {
      const id = next++;
      try {
        const { token } = await router.write('INSERT INTO replpg_failover (id) VALUES ($1)', [id], {
          commit,
        });
        acked.push({ id, token });
      } catch {
        return;
      }
    }
  };
  await Promise.all([writer(), writer(), writer(), writer()]);
  return acked;
}

async function present(url: string, ids: number[]): Promise<Set<number>> {
  const client = await PgSqlClient.open({ url, max: 1 });
  try {
    const { rows } = await client.query<{ id: number }>(
      'SELECT id FROM replpg_failover WHERE id = ANY($1::int[])',
      [ids],
    );
    return new Set(rows.map((r) => r.id));
  } finally {
    await client.close();
  }
}

describeServer('failover of a PostgreSQL primary', 'CDP_REPLICA_TEST_URLS', () => {
  afterAll(async () => {
    await run(script, ['teardown', ...SPECS], { timeout: 120_000 }).catch(() => {});
  }, 130_000);

  it('sync (ANY 1 remote_apply): promotion under load loses no acknowledged write', async () => {
    const [primaryUrl, s1, s2] = (await topology()) as [string, string, string];
    const setup = await PgSqlClient.open({ url: primaryUrl, max: 1 });
    await setup.query('DROP TABLE IF EXISTS replpg_failover');
    await setup.query('CREATE TABLE replpg_failover (id int PRIMARY KEY)');
    await setup.close();
    const router = await openReplicaRouter({ primaryUrl, replicaUrls: [s1, s2] });
    try {
      let failing = false;
      const writes = load(router, 'sync', () => failing);
      await new Promise((r) => setTimeout(r, 1500));
      const report = await router.failover({
        stopOldPrimary: () => stopCluster(NAMES[0]!),
        newPrimaryConninfo: (standby) =>
          conninfo(NAMES[port(standby) - 5461]!, port(router.primary.name)),
      });
      failing = true;
      const acked = await writes;
      const newUrl = report.promoted.endsWith('5462') ? s1 : s2;
      const found = await present(
        newUrl,
        acked.map((a) => a.id),
      );
      const lost = acked.filter((a) => !found.has(a.id));
      const reported = acked.filter((a) => router.mayBeLost(a.token));
      console.log(
        `sync failover: ${acked.length} acknowledged, ${lost.length} lost, ${reported.length} reported as possibly lost; promoted ${report.promoted} at ${report.forkLsn}`,
      );
      expect(acked.length).toBeGreaterThan(50);
      expect(lost).toEqual([]);
      expect(reported).toEqual([]);
      expect(router.status().fenced).toContain(report.previousPrimary);
      expect(router.status().primary).toBe(report.promoted);
      // Writes go to the new primary now.
      const after = await router.write('INSERT INTO replpg_failover (id) VALUES (-1)');
      expect(router.mayBeLost(after.token)).toBe(false);
      expect((await present(newUrl, [-1])).has(-1)).toBe(true);
    } finally {
      await router.close();
    }
  }, 300_000);

  it('async: the writes a promotion lost are among those it reports', async () => {
    // The tooling rebuilds the topology the last test wrecked.
    const [primaryUrl, s1, s2] = (await topology()) as [string, string, string];
    const setup = await PgSqlClient.open({ url: primaryUrl, max: 1 });
    await setup.query('DROP TABLE IF EXISTS replpg_failover');
    await setup.query('CREATE TABLE replpg_failover (id int PRIMARY KEY)');
    await setup.close();
    const router = await openReplicaRouter({ primaryUrl, replicaUrls: [s1, s2] });
    try {
      let n = 0;
      const before = await load(router, 'async', () => n++ >= 200);
      await new Promise((r) => setTimeout(r, 1000));
      // Cut both standbys off the primary: what follows is acknowledged on the primary alone.
      for (const url of [s1, s2]) {
        const c = await PgSqlClient.open({ url, max: 1 });
        await c.query("ALTER SYSTEM SET primary_conninfo = ''");
        await c.query('SELECT pg_reload_conf()');
        await c.close();
      }
      await new Promise((r) => setTimeout(r, 500));
      let m = 0;
      const cutOff = await load(router, 'async', () => m++ >= 200, 100_000);
      const report = await router.failover({ stopOldPrimary: () => stopCluster(NAMES[0]!) });
      const acked = [...before, ...cutOff];
      const newUrl = report.promoted.endsWith('5462') ? s1 : s2;
      const found = await present(
        newUrl,
        acked.map((a) => a.id),
      );
      const lost = acked.filter((a) => !found.has(a.id)).map((a) => a.id);
      const reported = new Set(acked.filter((a) => router.mayBeLost(a.token)).map((a) => a.id));
      console.log(
        `async failover: ${acked.length} acknowledged, ${lost.length} lost, ${reported.size} reported as possibly lost`,
      );
      expect(lost.length).toBeGreaterThan(0);
      for (const id of lost) expect(reported.has(id)).toBe(true);
      for (const a of before) expect(reported.has(a.id)).toBe(false);
    } finally {
      await router.close();
    }
  }, 300_000);
});
