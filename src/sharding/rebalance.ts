import { migrate } from '../engines/sql/migrations.js';
import type { SqlClient } from '../engines/sql/sql-client.js';
import { ensureSlotIndex, ShardCatalog } from './catalog.js';
import { ShardMapError, ShardUnavailableError } from './errors.js';
import { createShardMap, type ShardInfo, type ShardMapState } from './shard-map.js';
import { shardingShardMigrations } from './sql-migrations.js';

/** Checks that a shard URL parses as a PostgreSQL URL; the error names it. */
export function parseShardUrl(url: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ShardUnavailableError(
      url,
      `shard URL ${JSON.stringify(url)} does not parse; expected postgres://user@host:port/database`,
    );
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') {
    throw new ShardUnavailableError(
      url,
      `shard URL ${JSON.stringify(url)} is not a postgres:// URL`,
    );
  }
  return u;
}

/**
 * Adds a physical shard to a map, owning nothing yet (moves give it units): checks that it
 * answers and has every sharded table, migrates it, and bumps the map's version.
 */
export async function addShard(
  catalogSql: SqlClient,
  map: string,
  shard: ShardInfo,
  client: SqlClient,
): Promise<void> {
  const catalog = new ShardCatalog(catalogSql);
  const state = await catalog.load(map);
  if (state.shards.some((s) => s.id === shard.id))
    throw new ShardMapError(`map "${map}" already has a shard "${shard.id}"`);
  try {
    await client.ping();
  } catch (err) {
    throw new ShardUnavailableError(
      shard.id,
      `shard "${shard.id}" (${shard.location}) does not answer; nothing was changed`,
      { cause: err },
    );
  }
  const tables = await catalog.tables(map);
  for (const t of tables) {
    const r = await client.query(
      'SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1',
      [t.name],
    );
    if (r.rows.length === 0) {
      throw new ShardMapError(
        `shard "${shard.id}" has no table "${t.name}": create the sharded tables on it first; nothing was changed`,
      );
    }
  }
  await migrate(client, shardingShardMigrations);
  if (state.strategy === 'hash')
    for (const t of tables) await ensureSlotIndex(client, t, state.slotCount);
  await catalogSql.transaction(async (tx) => {
    await tx.query('INSERT INTO cdp_shards (map, id, location) VALUES ($1, $2, $3)', [
      map,
      shard.id,
      shard.location,
    ]);
    await catalog.bump(tx, map);
  });
}

/** Removes a shard that owns nothing (move its units away first). */
export async function removeShard(
  catalogSql: SqlClient,
  map: string,
  shard: string,
): Promise<void> {
  const catalog = new ShardCatalog(catalogSql);
  const units = createShardMap(await catalog.load(map))
    .unitsByShard()
    .get(shard);
  if (units === undefined) throw new ShardMapError(`map "${map}" has no shard "${shard}"`);
  if (units.length > 0)
    throw new ShardMapError(
      `shard "${shard}" still owns ${units.length} unit(s) (${units.slice(0, 3).join(', ')}...): move them away first`,
    );
  await catalogSql.transaction(async (tx) => {
    await tx.query('DELETE FROM cdp_shards WHERE map = $1 AND id = $2', [map, shard]);
    await catalog.bump(tx, map);
  });
}

export interface PlannedMove {
  unit: string;
  source: string;
  target: string;
  /** Rows the move copies (0 when row counts were not given). */
  rows: number;
}

export interface RebalancePlan {
  moves: PlannedMove[];
  rowsMoved: number;
  rowsTotal: number;
  /** Units per shard after the plan. */
  unitsAfter: Record<string, number>;
}

/**
 * What would move to spread a hash map's slots evenly over its shards (e.g. after addShard):
 * each over-full shard gives its highest slots to the emptiest shard. Nothing moves.
 */
export function planRebalance(
  state: ShardMapState,
  rowsByUnit: ReadonlyMap<string, number> = new Map(),
): RebalancePlan {
  if (state.strategy !== 'hash')
    throw new ShardMapError(
      `planRebalance spreads hash slots; map "${state.name}" is a ${state.strategy} map`,
    );
  const units = createShardMap(state).unitsByShard();
  const n = units.size;
  const ids = [...units.keys()].sort();
  const quota = new Map(
    ids.map((id, i) => [id, Math.floor(state.slotCount / n) + (i < state.slotCount % n ? 1 : 0)]),
  );
  const give: { unit: string; source: string }[] = [];
  for (const id of ids) {
    const own = units.get(id)!;
    const excess = own.length - quota.get(id)!;
    for (const unit of own.slice(own.length - Math.max(0, excess))) give.push({ unit, source: id });
  }
  const moves: PlannedMove[] = [];
  const count = new Map(ids.map((id) => [id, units.get(id)!.length]));
  for (const g of give) {
    const target = ids
      .filter((id) => count.get(id)! < quota.get(id)!)
      .sort((a, b) => count.get(a)! - count.get(b)!)[0];
    if (!target) break;
    count.set(target, count.get(target)! + 1);
    count.set(g.source, count.get(g.source)! - 1);
    moves.push({ unit: g.unit, source: g.source, target, rows: rowsByUnit.get(g.unit) ?? 0 });
  }
  let rowsTotal = 0;
  for (const v of rowsByUnit.values()) rowsTotal += v;
  return {
    moves,
    rowsMoved: moves.reduce((s, m) => s + m.rows, 0),
    rowsTotal,
    unitsAfter: Object.fromEntries(count),
  };
}

/** Rows per unit of a map's tables, counted on every shard. */
export async function countRowsByUnit(
  catalogSql: SqlClient,
  map: string,
  shards: Readonly<Record<string, SqlClient>>,
): Promise<Map<string, number>> {
  const catalog = new ShardCatalog(catalogSql);
  const shardMap = createShardMap(await catalog.load(map));
  const tables = await catalog.tables(map);
  const out = new Map<string, number>();
  for (const [shard, units] of shardMap.unitsByShard()) {
    const client = shards[shard];
    if (!client) throw new ShardUnavailableError(shard, `no client for shard "${shard}"`);
    for (const t of tables) {
      if (shardMap.state.strategy === 'hash') {
        const r = await client.query<{ s: number; n: string | number }>(
          `SELECT cdp_shard_slot((${t.keyColumn})::text, ${shardMap.state.slotCount}) AS s, count(*)::bigint AS n FROM ${t.name} GROUP BY 1`,
        );
        for (const row of r.rows)
          out.set(`slot:${row.s}`, (out.get(`slot:${row.s}`) ?? 0) + Number(row.n));
      } else {
        for (const unit of units) {
          const r = await client.query<{ n: string | number }>(
            `SELECT count(*)::bigint AS n FROM ${t.name} t WHERE ${shardMap.unitPredicate(unit, `t.${t.keyColumn}`)}`,
          );
          out.set(unit, (out.get(unit) ?? 0) + Number(r.rows[0]!.n));
        }
      }
    }
  }
  return out;
}

export interface HotUnit {
  unit: string;
  count: number;
  /** count / mean count over units with traffic. */
  ratio: number;
  /** What to do: split a range at its median key, or move a slot or key to the least busy shard. */
  suggestion: string;
}

/**
 * Units whose counter (routed transactions, or rows) is at least `factor` times the mean:
 * hot spots, each with a suggested split or move.
 */
export function findHotUnits(counts: ReadonlyMap<string, number>, factor = 3): HotUnit[] {
  if (counts.size === 0) return [];
  let sum = 0;
  for (const v of counts.values()) sum += v;
  const mean = sum / counts.size;
  const hot: HotUnit[] = [];
  for (const [unit, count] of counts) {
    if (count < factor * mean) continue;
    hot.push({
      unit,
      count,
      ratio: Math.round((count / mean) * 100) / 100,
      suggestion: unit.startsWith('range:')
        ? `split ${unit} at its median key (splitRange), then move one half`
        : `move ${unit} to the least busy shard (${unit.startsWith('key:') ? 'a single hot key cannot split' : 'slots do not split'})`,
    });
  }
  return hot.sort((a, b) => b.count - a.count);
}

/**
 * Splits a range at `at`: keys >= at form a new range on the same shard. The shard records the
 * new unit and re-dates the old one (so routers with the old map are fenced and refresh) before
 * the catalog changes.
 */
export async function splitRange(
  catalogSql: SqlClient,
  map: string,
  shards: Readonly<Record<string, SqlClient>>,
  unit: string,
  at: string,
): Promise<string> {
  const catalog = new ShardCatalog(catalogSql);
  const state = await catalog.load(map);
  const shardMap = createShardMap(state);
  if (state.strategy !== 'range')
    throw new ShardMapError(`map "${map}" is a ${state.strategy} map; only range maps split`);
  const atKey = shardMap.canonical(state.keyType === 'bigint' ? BigInt(at) : at);
  const i = state.ranges.findIndex((r) => `range:${r.id}` === unit);
  if (i < 0) throw new ShardMapError(`map "${map}" has no ${unit}`);
  const range = state.ranges[i]!;
  if (
    shardMap.route(state.keyType === 'bigint' ? BigInt(atKey) : atKey).unit !== unit ||
    range.lo === atKey
  ) {
    throw new ShardMapError(`split point ${atKey} is not strictly inside ${unit}`);
  }
  const client = shards[range.shard];
  if (!client) throw new ShardUnavailableError(range.shard, `no client for shard "${range.shard}"`);
  const newId = Math.max(...state.ranges.map((r) => r.id)) + 1;
  const next = state.version + 1;
  await client.transaction(async (tx) => {
    await tx.query('UPDATE cdp_shard_owned SET since_version = $3 WHERE map = $1 AND unit = $2', [
      map,
      unit,
      next,
    ]);
    await tx.query(
      'INSERT INTO cdp_shard_owned (map, unit, since_version) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING',
      [map, `range:${newId}`, next],
    );
  });
  await catalogSql.transaction(async (tx) => {
    await tx.query('INSERT INTO cdp_shard_ranges (map, id, lo, shard) VALUES ($1, $2, $3, $4)', [
      map,
      newId,
      atKey,
      range.shard,
    ]);
    const v = await catalog.bump(tx, map);
    if (v !== next)
      throw new ShardMapError(
        `map "${map}" changed during the split (version ${v}, expected ${next}); retry`,
      );
  });
  return `range:${newId}`;
}

/** Merges a range with the next one when both are on the same shard. */
export async function mergeRanges(
  catalogSql: SqlClient,
  map: string,
  shards: Readonly<Record<string, SqlClient>>,
  unit: string,
): Promise<void> {
  const catalog = new ShardCatalog(catalogSql);
  const state = await catalog.load(map);
  const i = state.ranges.findIndex((r) => `range:${r.id}` === unit);
  const a = state.ranges[i];
  const b = state.ranges[i + 1];
  if (!a || !b) throw new ShardMapError(`${unit} of map "${map}" has no next range to merge with`);
  if (a.shard !== b.shard)
    throw new ShardMapError(`${unit} and range:${b.id} are on different shards: move one first`);
  const client = shards[a.shard];
  if (!client) throw new ShardUnavailableError(a.shard, `no client for shard "${a.shard}"`);
  const next = state.version + 1;
  await client.query('UPDATE cdp_shard_owned SET since_version = $3 WHERE map = $1 AND unit = $2', [
    map,
    unit,
    next,
  ]);
  await catalogSql.transaction(async (tx) => {
    await tx.query('DELETE FROM cdp_shard_ranges WHERE map = $1 AND id = $2', [map, b.id]);
    await catalog.bump(tx, map);
  });
  await client.query('DELETE FROM cdp_shard_owned WHERE map = $1 AND unit = $2', [
    map,
    `range:${b.id}`,
  ]);
}

/** Puts a key of a lookup map on a shard (a new tenant, say). */
export async function assignKey(
  catalogSql: SqlClient,
  map: string,
  shards: Readonly<Record<string, SqlClient>>,
  key: string | number | bigint,
  shard: string,
): Promise<void> {
  const catalog = new ShardCatalog(catalogSql);
  const state = await catalog.load(map);
  if (state.strategy !== 'lookup')
    throw new ShardMapError(
      `map "${map}" is a ${state.strategy} map; only lookup maps assign keys`,
    );
  const k = createShardMap(state).canonical(key);
  if (state.directory.has(k))
    throw new ShardMapError(
      `key ${JSON.stringify(k)} is already on shard "${state.directory.get(k)}": move it instead`,
    );
  const client = shards[shard];
  if (!client || !state.shards.some((s) => s.id === shard))
    throw new ShardMapError(`map "${map}" has no shard "${shard}"`);
  await client.query(
    'INSERT INTO cdp_shard_owned (map, unit, since_version) VALUES ($1, $2, 1) ON CONFLICT DO NOTHING',
    [map, `key:${k}`],
  );
  await catalogSql.transaction(async (tx) => {
    await tx.query('INSERT INTO cdp_shard_directory (map, key, shard) VALUES ($1, $2, $3)', [
      map,
      k,
      shard,
    ]);
    await catalog.bump(tx, map);
  });
}
