import { PgSqlClient } from '../../src/engines/sql/pg-sql-client.js';
import { PgliteSqlClient } from '../../src/engines/sql/pglite-sql-client.js';
import type { SqlClient } from '../../src/engines/sql/sql-client.js';
import { createTempDatabase, type TempDatabase } from '../../src/testing/index.js';

/** A catalog and N shards, each its own database; `close()` drops what it made. */
export interface ShardBed {
  catalog: SqlClient;
  shards: Record<string, SqlClient>;
  /** Where each shard is (a URL, or a label for PGlite). */
  locations: Record<string, string>;
  close(): Promise<void>;
}

export type BedFactory = (shardCount: number) => Promise<ShardBed>;

/** Embedded: a separate in-memory PGlite per shard and one for the catalog. */
export const pgliteBed: BedFactory = async (n) => {
  const catalog = await PgliteSqlClient.open({});
  const shards: Record<string, SqlClient> = {};
  const locations: Record<string, string> = {};
  for (let i = 0; i < n; i++) {
    shards[`s${i}`] = await PgliteSqlClient.open({});
    locations[`s${i}`] = `pglite:memory:${i}`;
  }
  return {
    catalog,
    shards,
    locations,
    async close() {
      for (const c of Object.values(shards)) await c.close();
      await catalog.close();
    },
  };
};

/**
 * PostgreSQL: the catalog on the first server, shard i in a fresh database on server
 * i mod (number of servers), so shards sit on at least two different servers.
 */
export function postgresBed(urls: readonly string[]): BedFactory {
  for (const url of urls) {
    if (!/^postgres(ql)?:\/\/\S+$/.test(url)) {
      throw new Error(
        `CDP_SHARD_TEST_URLS holds ${JSON.stringify(url)}, not a postgres:// URL: set it to the comma-separated output of tooling/pg-shard-clusters.sh`,
      );
    }
  }
  return async (n) => {
    const dbs: TempDatabase[] = [];
    const clients: SqlClient[] = [];
    const open = async (url: string, prefix: string) => {
      const db = await createTempDatabase(url, { prefix });
      dbs.push(db);
      const c = await PgSqlClient.open({ url: db.url, max: 6 });
      clients.push(c);
      return { c, url: db.url };
    };
    const catalog = (await open(urls[0]!, 'cdp_shcat')).c;
    const shards: Record<string, SqlClient> = {};
    const locations: Record<string, string> = {};
    for (let i = 0; i < n; i++) {
      const s = await open(urls[i % urls.length]!, `cdp_sh${i}`);
      shards[`s${i}`] = s.c;
      locations[`s${i}`] = s.url;
    }
    return {
      catalog,
      shards,
      locations,
      async close() {
        for (const c of clients) await c.close();
        for (const db of dbs) await db.drop();
      },
    };
  };
}

export function shardTestUrls(): string[] {
  return (process.env.CDP_SHARD_TEST_URLS ?? '').split(',').filter((u) => u.length > 0);
}
