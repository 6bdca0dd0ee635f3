import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '../../core/config.js';
import { redactUrl } from '../../core/config.js';
import { ConfigError, errorMessage } from '../../core/errors.js';
import { migrate } from '../../engines/sql/migrations.js';
import { openSql } from '../../engines/sql/open.js';
import type { SqlClient } from '../../engines/sql/sql-client.js';
import { installShardMap, type ShardInfo } from '../../sharding/index.js';
import { marketplaceShardMigrations } from '../enrollment/schema.js';

/** The platform's shard map: hash slots over student ids (and course ids for the directory). */
export const MARKETPLACE_MAP = 'marketplace';
/** Slots of the map: fixed for its life; moves carry whole slots. */
export const MARKETPLACE_SLOTS = 256;

export interface OpenedShards {
  shards: Record<string, SqlClient>;
  infos: ShardInfo[];
  close(): Promise<void>;
}

/**
 * Opens the platform's shards: one PostgreSQL database per URL of CDP_SHARD_URLS (each pinged
 * at once: one that does not answer stops the start, naming it), or two embedded PGlite shards
 * in `CDP_DATA_DIR/shards/s1|s2` (in memory when the platform is).
 */
export async function openShards(config: Config, logger: Logger): Promise<OpenedShards> {
  const shards: Record<string, SqlClient> = {};
  const infos: ShardInfo[] = [];
  const close = async () => {
    for (const c of Object.values(shards)) await c.close().catch(() => {});
  };
  try {
    if (config.shards.kind === 'postgres') {
      let i = 1;
      for (const url of config.shards.urls) {
        const id = `s${i++}`;
        let client: SqlClient | undefined;
        try {
          client = await openSql({ kind: 'postgres', url }, { logger, max: 4 });
          await client.ping();
        } catch (err) {
          await client?.close().catch(() => {});
          throw new ConfigError(
            `CDP_SHARD_URLS: shard ${id} at ${redactUrl(url)} does not answer (${errorMessage(err)}); start that server or remove the URL from CDP_SHARD_URLS`,
            'CDP_SHARD_URLS',
            { cause: err },
          );
        }
        shards[id] = client;
        infos.push({ id, location: redactUrl(url) });
      }
    } else {
      const base = config.shards.dataDir;
      // Opened together: an embedded database's first start (initdb) takes seconds.
      const ids = ['s1', 's2'];
      const opened = await Promise.allSettled(
        ids.map((id) =>
          openSql({ kind: 'pglite', dataDir: base ? join(base, 'shards', id) : undefined }),
        ),
      );
      opened.forEach((r, i) => {
        if (r.status === 'fulfilled') shards[ids[i]!] = r.value;
      });
      const failed = opened.find((r) => r.status === 'rejected');
      if (failed) throw failed.reason;
      for (const id of ids)
        infos.push({
          id,
          location: base ? `pglite:${join(base, 'shards', id)}` : `pglite:memory:${id}`,
        });
    }
    await Promise.all(Object.values(shards).map((c) => migrate(c, marketplaceShardMigrations)));
    return { shards, infos, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** Stores the map (once) with the platform's sharded tables, on the catalog database. */
export async function installMarketplaceMap(
  catalog: SqlClient,
  opened: OpenedShards,
): Promise<void> {
  await installShardMap(catalog, opened.shards, {
    name: MARKETPLACE_MAP,
    strategy: 'hash',
    keyType: 'text',
    slotCount: MARKETPLACE_SLOTS,
    shards: opened.infos,
    tables: [
      { name: 'app_enrollments', keyColumn: 'student' },
      { name: 'app_students', keyColumn: 'id' },
      { name: 'app_course_directory', keyColumn: 'id' },
    ],
  });
}
