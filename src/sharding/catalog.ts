import { migrate } from '../engines/sql/migrations.js';
import type { Queryable, SqlClient } from '../engines/sql/sql-client.js';
import { ShardMapError } from './errors.js';
import type {
  KeyRange,
  ShardInfo,
  ShardKeyType,
  ShardMapState,
  ShardStrategy,
} from './shard-map.js';
import { shardingMigrations, shardingShardMigrations } from './sql-migrations.js';

/** A table spread over the shards by one column, the shard key. */
export interface ShardedTable {
  name: string;
  keyColumn: string;
}

export interface ShardMapDefinition {
  name: string;
  strategy: ShardStrategy;
  keyType: ShardKeyType;
  /** Hash maps: virtual slots, fixed for the map's life. Default 4096. */
  slotCount?: number;
  /** The physical shards, in order; hash slots start in contiguous blocks over them. */
  shards: readonly ShardInfo[];
  /** Range maps: the initial ranges (lo null first). Default: one range on the first shard. */
  ranges?: readonly { lo: string | null; shard: string }[];
  /** Tables the map shards; they must exist on every shard. */
  tables: readonly ShardedTable[];
}

const IDENT = /^[a-z_][a-z0-9_]{0,62}$/;

export function checkIdentifier(what: string, name: string): string {
  if (!IDENT.test(name)) {
    throw new ShardMapError(`${what} ${JSON.stringify(name)} must be a lower-case SQL identifier`);
  }
  return name;
}

/**
 * The catalog: the versioned shard maps in one SQL database. Every change of ownership bumps the
 * map's version in the same transaction, which is what routers poll.
 */
export class ShardCatalog {
  readonly sql: SqlClient;
  constructor(sql: SqlClient) {
    this.sql = sql;
  }

  async version(map: string): Promise<number> {
    const r = await this.sql.query<{ version: string }>(
      'SELECT version::text AS version FROM cdp_shard_maps WHERE name = $1',
      [map],
    );
    if (r.rows.length === 0) throw new ShardMapError(`no shard map named "${map}" in the catalog`);
    return Number(r.rows[0]!.version);
  }

  /** The map as stored now, read in one snapshot. */
  async load(map: string): Promise<ShardMapState> {
    return this.sql.transaction(
      async (tx) => {
        const m = await tx.query<{
          strategy: ShardStrategy;
          key_type: ShardKeyType;
          slot_count: number;
          version: string;
        }>(
          'SELECT strategy, key_type, slot_count, version::text AS version FROM cdp_shard_maps WHERE name = $1',
          [map],
        );
        const row = m.rows[0];
        if (!row) throw new ShardMapError(`no shard map named "${map}" in the catalog`);
        const shards = await tx.query<ShardInfo>(
          'SELECT id, location FROM cdp_shards WHERE map = $1 ORDER BY id',
          [map],
        );
        const slots: string[] = [];
        if (row.strategy === 'hash') {
          const r = await tx.query<{ slot: number; shard: string }>(
            'SELECT slot, shard FROM cdp_shard_slots WHERE map = $1 ORDER BY slot',
            [map],
          );
          for (const s of r.rows) slots[s.slot] = s.shard;
        }
        let ranges: KeyRange[] = [];
        if (row.strategy === 'range') {
          const r = await tx.query<KeyRange>(
            'SELECT id, lo, shard FROM cdp_shard_ranges WHERE map = $1',
            [map],
          );
          ranges = sortRanges(r.rows, row.key_type);
        }
        const directory = new Map<string, string>();
        if (row.strategy === 'lookup') {
          const r = await tx.query<{ key: string; shard: string }>(
            'SELECT key, shard FROM cdp_shard_directory WHERE map = $1',
            [map],
          );
          for (const d of r.rows) directory.set(d.key, d.shard);
        }
        return {
          name: map,
          strategy: row.strategy,
          keyType: row.key_type,
          slotCount: row.slot_count,
          version: Number(row.version),
          shards: shards.rows,
          slots,
          ranges,
          directory,
        };
      },
      { isolation: 'repeatable read', readOnly: true },
    );
  }

  async tables(map: string): Promise<ShardedTable[]> {
    const r = await this.sql.query<{ name: string; key_column: string }>(
      'SELECT table_name AS name, key_column FROM cdp_shard_tables WHERE map = $1 ORDER BY table_name',
      [map],
    );
    return r.rows.map((t) => ({ name: t.name, keyColumn: t.key_column }));
  }

  async registerTable(map: string, table: ShardedTable, tx: Queryable = this.sql): Promise<void> {
    checkIdentifier('table', table.name);
    checkIdentifier('key column', table.keyColumn);
    await tx.query(
      `INSERT INTO cdp_shard_tables (map, table_name, key_column) VALUES ($1, $2, $3)
       ON CONFLICT (map, table_name) DO UPDATE SET key_column = EXCLUDED.key_column`,
      [map, table.name, table.keyColumn],
    );
  }

  /** Bumps the map's version inside `tx` and returns the new one. */
  async bump(tx: Queryable, map: string): Promise<number> {
    const r = await tx.query<{ version: string }>(
      'UPDATE cdp_shard_maps SET version = version + 1 WHERE name = $1 RETURNING version::text AS version',
      [map],
    );
    if (r.rows.length === 0) throw new ShardMapError(`no shard map named "${map}" in the catalog`);
    return Number(r.rows[0]!.version);
  }
}

function sortRanges(rows: KeyRange[], keyType: ShardKeyType): KeyRange[] {
  return [...rows].sort((a, b) => {
    if (a.lo === null) return -1;
    if (b.lo === null) return 1;
    if (keyType === 'bigint') {
      const x = BigInt(a.lo);
      const y = BigInt(b.lo);
      return x < y ? -1 : x > y ? 1 : 0;
    }
    return Buffer.compare(Buffer.from(a.lo, 'utf8'), Buffer.from(b.lo, 'utf8'));
  });
}

/** Creates the index a hash map's slot predicates use on one table of one shard. */
export async function ensureSlotIndex(
  shard: Queryable,
  table: ShardedTable,
  slotCount: number,
): Promise<void> {
  await shard.exec(
    `CREATE INDEX IF NOT EXISTS ${table.name}_cdp_slot ON ${table.name} (cdp_shard_slot((${table.keyColumn})::text, ${slotCount}))`,
  );
}

/**
 * Sets up a map: migrates the catalog and every shard, stores the map (version 1), registers its
 * tables, and records on each shard the units it owns. Idempotent for a map that exists with
 * the same name: it is left as stored.
 */
export async function installShardMap(
  catalogSql: SqlClient,
  shards: Readonly<Record<string, SqlClient>>,
  def: ShardMapDefinition,
): Promise<ShardCatalog> {
  const catalog = new ShardCatalog(catalogSql);
  if (def.shards.length === 0)
    throw new ShardMapError(`shard map "${def.name}" needs at least one shard`);
  for (const s of def.shards) {
    if (!shards[s.id])
      throw new ShardMapError(`shard "${s.id}" of map "${def.name}" has no client`);
  }
  for (const t of def.tables) {
    checkIdentifier('table', t.name);
    checkIdentifier('key column', t.keyColumn);
  }
  await migrate(catalogSql, shardingMigrations);
  for (const s of def.shards) await migrate(shards[s.id]!, shardingShardMigrations);
  const slotCount = def.strategy === 'hash' ? (def.slotCount ?? 4096) : 0;
  if (
    def.strategy === 'hash' &&
    (!Number.isInteger(slotCount) || slotCount < 1 || slotCount > 65_536)
  ) {
    throw new ShardMapError(
      `slotCount must be a whole number from 1 to 65536; got ${def.slotCount}`,
    );
  }
  const existing = await catalogSql.query('SELECT 1 FROM cdp_shard_maps WHERE name = $1', [
    def.name,
  ]);
  if (existing.rows.length > 0) return catalog;

  const owned = new Map<string, string[]>(def.shards.map((s) => [s.id, []]));
  const ranges = def.ranges ?? [{ lo: null, shard: def.shards[0]!.id }];
  await catalogSql.transaction(async (tx) => {
    await tx.query(
      'INSERT INTO cdp_shard_maps (name, strategy, key_type, slot_count, version) VALUES ($1, $2, $3, $4, 1)',
      [def.name, def.strategy, def.keyType, slotCount],
    );
    for (const s of def.shards) {
      await tx.query('INSERT INTO cdp_shards (map, id, location) VALUES ($1, $2, $3)', [
        def.name,
        s.id,
        s.location,
      ]);
    }
    if (def.strategy === 'hash') {
      const slots: number[] = [];
      const owners: string[] = [];
      for (let slot = 0; slot < slotCount; slot++) {
        const shard = def.shards[Math.floor((slot * def.shards.length) / slotCount)]!.id;
        slots.push(slot);
        owners.push(shard);
        owned.get(shard)!.push(`slot:${slot}`);
      }
      await tx.query(
        'INSERT INTO cdp_shard_slots (map, slot, shard) SELECT $1, s, o FROM unnest($2::int[], $3::text[]) AS u(s, o)',
        [def.name, slots, owners],
      );
    }
    if (def.strategy === 'range') {
      if (ranges[0]?.lo !== null)
        throw new ShardMapError('the first range of a range map must have lo null');
      let id = 1;
      for (const r of ranges) {
        if (!owned.has(r.shard)) throw new ShardMapError(`range on unknown shard "${r.shard}"`);
        await tx.query(
          'INSERT INTO cdp_shard_ranges (map, id, lo, shard) VALUES ($1, $2, $3, $4)',
          [def.name, id, r.lo, r.shard],
        );
        owned.get(r.shard)!.push(`range:${id}`);
        id++;
      }
    }
    for (const t of def.tables) await catalog.registerTable(def.name, t, tx);
  });
  for (const s of def.shards) {
    const client = shards[s.id]!;
    await client.query(
      `INSERT INTO cdp_shard_owned (map, unit, since_version) SELECT $1, u, 1 FROM unnest($2::text[]) AS u
       ON CONFLICT DO NOTHING`,
      [def.name, owned.get(s.id)!],
    );
    if (def.strategy === 'hash')
      for (const t of def.tables) await ensureSlotIndex(client, t, slotCount);
  }
  return catalog;
}
