import { randomUUID } from 'node:crypto';
import { type Clock, systemClock } from '../core/clock.js';
import type { Queryable, SqlClient } from '../engines/sql/sql-client.js';
import { SqlError } from '../engines/sql/sql-client.js';
import { ShardCatalog, type ShardedTable } from './catalog.js';
import {
  MoveInProgressError,
  MoveVerificationError,
  ShardMapError,
  ShardUnavailableError,
} from './errors.js';
import { copyKeys, insertableColumns, unitChecksum } from './internal/unit-data.js';
import { createShardMap, type ShardMap } from './shard-map.js';

/**
 * A move's persisted phases, in order. planned -> copying (snapshot copy while a trigger logs
 * changes) -> catching-up (replays the log) -> fenced (the source gives up the unit: writes to
 * it wait) -> verifying (counts and checksums under the fence) -> switched (the catalog and the
 * target own the unit) -> cleaning (the source's rows go) -> done; or rolled-back.
 */
export type MovePhase =
  | 'planned'
  | 'copying'
  | 'catching-up'
  | 'fenced'
  | 'verifying'
  | 'switched'
  | 'cleaning'
  | 'done'
  | 'rolled-back';

export interface MoveRecord {
  id: string;
  map: string;
  unit: string;
  source: string;
  target: string;
  phase: MovePhase;
  rowsTotal: number;
  rowsCopied: number;
  /** How long the source refused writes to the unit, ms (set at the switch). */
  fenceMs: number | null;
  error: string | null;
}

export interface ShardMoverOptions {
  catalog: SqlClient;
  map: string;
  shards: Readonly<Record<string, SqlClient>>;
  clock?: Clock;
  /** Keys copied per batch. Default 500. */
  batchKeys?: number;
  /** Throttle: at most this many rows copied per second (0 = unthrottled). Default 0. */
  rowsPerSecond?: number;
  /** Catch-up stops and the fence starts once a round replays at most this many changes. Default 50. */
  fenceAtChanges?: number;
  /** Called after every persisted step: progress for a CLI or a dashboard. */
  onProgress?: (move: MoveRecord) => void;
}

interface MoveRow {
  id: string;
  map: string;
  unit: string;
  source: string;
  target: string;
  phase: MovePhase;
  rows_total: string | number;
  rows_copied: string | number;
  fence_ms: number | null;
  error: string | null;
}

const MOVE_COLUMNS =
  'id, map, unit, source, target, phase, rows_total, rows_copied, fence_ms, error';

function toRecord(r: MoveRow): MoveRecord {
  return {
    id: r.id,
    map: r.map,
    unit: r.unit,
    source: r.source,
    target: r.target,
    phase: r.phase,
    rowsTotal: Number(r.rows_total),
    rowsCopied: Number(r.rows_copied),
    fenceMs: r.fence_ms,
    error: r.error,
  };
}

/**
 * Moves one unit (a hash slot, a key range or a directory key) between shards while writers
 * write. Every step is persisted in the catalog before and after it acts, and every action is
 * idempotent, so a mover killed at any moment continues with `resume()`: the unit is owned on
 * the shards by the source until the fence, by nobody while fenced (writes wait, never land),
 * and by the target after the switch; the catalog names exactly one owner throughout.
 */
export class ShardMover {
  readonly catalog: ShardCatalog;
  readonly map: string;
  readonly #shards: Readonly<Record<string, SqlClient>>;
  readonly #clock: Clock;
  readonly #batchKeys: number;
  readonly #rowsPerSecond: number;
  readonly #fenceAt: number;
  readonly #onProgress: ((move: MoveRecord) => void) | undefined;

  constructor(options: ShardMoverOptions) {
    this.catalog = new ShardCatalog(options.catalog);
    this.map = options.map;
    this.#shards = options.shards;
    this.#clock = options.clock ?? systemClock;
    this.#batchKeys = options.batchKeys ?? 500;
    this.#rowsPerSecond = options.rowsPerSecond ?? 0;
    this.#fenceAt = options.fenceAtChanges ?? 50;
    this.#onProgress = options.onProgress;
  }

  #client(shard: string): SqlClient {
    const c = this.#shards[shard];
    if (!c)
      throw new ShardUnavailableError(
        shard,
        `the mover of map "${this.map}" has no client for shard "${shard}"`,
      );
    return c;
  }

  /** The running move of this map, if any. */
  async running(): Promise<MoveRecord | undefined> {
    const r = await this.catalog.sql.query<MoveRow>(
      `SELECT ${MOVE_COLUMNS} FROM cdp_shard_moves WHERE map = $1 AND phase NOT IN ('done', 'rolled-back')`,
      [this.map],
    );
    return r.rows[0] ? toRecord(r.rows[0]) : undefined;
  }

  async get(id: string): Promise<MoveRecord> {
    const r = await this.catalog.sql.query<MoveRow>(
      `SELECT ${MOVE_COLUMNS} FROM cdp_shard_moves WHERE id = $1`,
      [id],
    );
    if (!r.rows[0]) throw new ShardMapError(`no move with id "${id}"`);
    return toRecord(r.rows[0]);
  }

  async list(limit = 20): Promise<MoveRecord[]> {
    const r = await this.catalog.sql.query<MoveRow>(
      `SELECT ${MOVE_COLUMNS} FROM cdp_shard_moves WHERE map = $1 ORDER BY started_at DESC LIMIT $2`,
      [this.map, limit],
    );
    return r.rows.map(toRecord);
  }

  /**
   * Records a planned move of `unit` to `target` (no data moves yet). Refused while another
   * move of the map runs, naming it; refused when a shard does not answer, naming it.
   */
  async plan(unit: string, target: string): Promise<MoveRecord> {
    const map = createShardMap(await this.catalog.load(this.map));
    const source = ownerOf(map, unit);
    if (!map.state.shards.some((s) => s.id === target)) {
      throw new ShardMapError(
        `shard "${target}" is not a shard of map "${this.map}": add it first`,
      );
    }
    if (source === target) throw new ShardMapError(`${unit} is already on shard "${target}"`);
    for (const shard of [source, target]) {
      try {
        await this.#client(shard).ping();
      } catch (err) {
        if (err instanceof ShardUnavailableError) throw err;
        throw new ShardUnavailableError(
          shard,
          `shard "${shard}" does not answer; no move started`,
          { cause: err },
        );
      }
    }
    const running = await this.running();
    if (running) throw new MoveInProgressError(this.map, running);
    const id = randomUUID();
    try {
      await this.catalog.sql.query(
        `INSERT INTO cdp_shard_moves (id, map, unit, source, target, phase) VALUES ($1, $2, $3, $4, $5, 'planned')`,
        [id, this.map, unit, source, target],
      );
    } catch (err) {
      const again = await this.running();
      if (err instanceof SqlError && err.sqlState === '23505' && again)
        throw new MoveInProgressError(this.map, again);
      throw err;
    }
    return this.get(id);
  }

  /** Plans and runs a move to its end. */
  async move(unit: string, target: string): Promise<MoveRecord> {
    const planned = await this.plan(unit, target);
    return this.run(planned.id);
  }

  /** Continues the running move of this map after a crash, if there is one. */
  async resume(): Promise<MoveRecord | undefined> {
    const running = await this.running();
    return running ? this.run(running.id) : undefined;
  }

  async #setPhase(
    id: string,
    phase: MovePhase,
    extra: { fenceMs?: number; error?: string } = {},
  ): Promise<MoveRecord> {
    await this.catalog.sql.query(
      `UPDATE cdp_shard_moves SET phase = $2, updated_at = now(),
         fence_ms = coalesce($3, fence_ms), error = coalesce($4, error) WHERE id = $1`,
      [id, phase, extra.fenceMs ?? null, extra.error ?? null],
    );
    const m = await this.get(id);
    this.#onProgress?.(m);
    return m;
  }

  /** Drives a move from its persisted phase to done (or rolled back when verification fails). */
  async run(id: string): Promise<MoveRecord> {
    let m = await this.get(id);
    const tables = await this.catalog.tables(this.map);
    const src = this.#client(m.source);
    const tgt = this.#client(m.target);
    // A unit's rows are the same set whoever owns it: one load of the map serves every phase.
    const map = createShardMap(await this.catalog.load(this.map));
    for (;;) {
      switch (m.phase) {
        case 'planned':
        case 'copying':
        case 'catching-up': {
          m = await this.#setPhase(id, 'copying');
          await this.#copy(m, map, tables, src, tgt);
          m = await this.#setPhase(id, 'catching-up');
          for (let round = 0; round < 50; round++) {
            if ((await this.#catchUp(map, m.unit, tables, src, tgt)) <= this.#fenceAt) break;
          }
          m = await this.#setPhase(id, 'fenced');
          break;
        }
        case 'fenced': {
          await this.catalog.sql.query(
            'UPDATE cdp_shard_moves SET fence_started_at_ms = coalesce(fence_started_at_ms, $2) WHERE id = $1',
            [id, this.#clock.now()],
          );
          // Waits for every routed transaction holding the unit's share lock, then refuses new ones.
          await src.query('DELETE FROM cdp_shard_owned WHERE map = $1 AND unit = $2', [
            this.map,
            m.unit,
          ]);
          while ((await this.#catchUp(map, m.unit, tables, src, tgt)) > 0) {}
          m = await this.#setPhase(id, 'verifying');
          break;
        }
        case 'verifying': {
          const bad: string[] = [];
          for (const t of tables) {
            const pred = map.unitPredicate(m.unit, `t.${t.keyColumn}`);
            const [a, b] = await Promise.all([
              unitChecksum(src, t, pred),
              unitChecksum(tgt, t, pred),
            ]);
            if (a.rows !== b.rows || a.md5 !== b.md5)
              bad.push(`${t.name}: source ${a.rows} rows ${a.md5}, target ${b.rows} rows ${b.md5}`);
          }
          if (bad.length > 0) {
            const message = `move ${id} of ${m.unit}: the copy differs from the source (${bad.join('; ')}); rolled back`;
            await this.rollback(id, message);
            throw new MoveVerificationError(message);
          }
          const version = await this.catalog.sql.transaction(async (tx) => {
            await switchOwner(tx, map, m.unit, m.target);
            const v = await this.catalog.bump(tx, this.map);
            await tx.query(
              `UPDATE cdp_shard_moves SET phase = 'switched', updated_at = now() WHERE id = $1`,
              [id],
            );
            return v;
          });
          await tgt.query(
            'INSERT INTO cdp_shard_owned (map, unit, since_version) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING',
            [this.map, m.unit, version],
          );
          const started = await this.catalog.sql.query<{ c: string }>(
            'SELECT fence_started_at_ms::text AS c FROM cdp_shard_moves WHERE id = $1',
            [id],
          );
          m = await this.#setPhase(id, 'switched', {
            fenceMs: Math.max(0, Math.round(this.#clock.now() - Number(started.rows[0]!.c))),
          });
          break;
        }
        case 'switched': {
          const v = await this.catalog.version(this.map);
          await tgt.query(
            'INSERT INTO cdp_shard_owned (map, unit, since_version) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING',
            [this.map, m.unit, v],
          );
          m = await this.#setPhase(id, 'cleaning');
          break;
        }
        case 'cleaning': {
          for (const t of tables)
            await src.query(
              `DELETE FROM ${t.name} t WHERE ${map.unitPredicate(m.unit, `t.${t.keyColumn}`)}`,
            );
          await dropCapture(src, tables);
          m = await this.#setPhase(id, 'done');
          break;
        }
        case 'done':
        case 'rolled-back':
          return m;
      }
    }
  }

  /**
   * Abandons a move that has not switched: the source owns the unit again, the target's copy
   * is deleted. A switched move only goes forward (resume it).
   */
  async rollback(id: string, reason = 'rolled back on request'): Promise<MoveRecord> {
    const m = await this.get(id);
    if (m.phase === 'done' || m.phase === 'rolled-back') return m;
    if (m.phase === 'switched' || m.phase === 'cleaning') {
      throw new ShardMapError(
        `move ${id} has switched ${m.unit} to "${m.target}"; it can only finish: resume it`,
      );
    }
    const map = createShardMap(await this.catalog.load(this.map));
    const tables = await this.catalog.tables(this.map);
    const src = this.#client(m.source);
    const tgt = this.#client(m.target);
    const v = await this.catalog.version(this.map);
    await src.query(
      'INSERT INTO cdp_shard_owned (map, unit, since_version) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING',
      [this.map, m.unit, v],
    );
    for (const t of tables)
      await tgt.query(
        `DELETE FROM ${t.name} t WHERE ${map.unitPredicate(m.unit, `t.${t.keyColumn}`)}`,
      );
    await dropCapture(src, tables);
    return this.#setPhase(id, 'rolled-back', { error: reason });
  }

  async #copy(
    m: MoveRecord,
    map: ShardMap,
    tables: readonly ShardedTable[],
    src: SqlClient,
    tgt: SqlClient,
  ): Promise<void> {
    for (const t of tables) {
      await src.exec(
        `CREATE OR REPLACE TRIGGER cdp_capture_${t.name} AFTER INSERT OR UPDATE OR DELETE ON ${t.name}
         FOR EACH ROW EXECUTE FUNCTION cdp_shard_capture('${t.keyColumn}')`,
      );
    }
    // Changes logged before this point are reflected in the snapshot the copy reads next.
    await src.query('DELETE FROM cdp_shard_changes WHERE tbl = ANY($1::text[])', [
      tables.map((t) => t.name),
    ]);
    let total = 0;
    for (const t of tables) {
      const pred = map.unitPredicate(m.unit, `t.${t.keyColumn}`);
      await tgt.query(`DELETE FROM ${t.name} t WHERE ${pred}`);
      const n = await src.query<{ n: string | number }>(
        `SELECT count(*)::bigint AS n FROM ${t.name} t WHERE ${pred}`,
      );
      total += Number(n.rows[0]!.n);
    }
    await this.catalog.sql.query(
      'UPDATE cdp_shard_moves SET rows_total = $2, rows_copied = 0 WHERE id = $1',
      [m.id, total],
    );
    let copied = 0;
    const started = this.#clock.now();
    for (const t of tables) {
      const columns = await insertableColumns(src, t.name);
      let after: string | null = null;
      for (;;) {
        const pred = map.unitPredicate(m.unit, `t.${t.keyColumn}`);
        const keys: { rows: { k: string }[] } = await src.query<{ k: string }>(
          `SELECT DISTINCT (t.${t.keyColumn})::text COLLATE "C" AS k FROM ${t.name} t
           WHERE ${pred} AND ($1::text IS NULL OR (t.${t.keyColumn})::text COLLATE "C" > $1::text COLLATE "C")
           ORDER BY 1 LIMIT ${this.#batchKeys}`,
          [after],
        );
        if (keys.rows.length === 0) break;
        copied += await copyKeys(
          src,
          tgt,
          t,
          columns,
          keys.rows.map((r) => r.k),
        );
        after = keys.rows[keys.rows.length - 1]!.k;
        await this.catalog.sql.query(
          'UPDATE cdp_shard_moves SET rows_copied = $2, updated_at = now() WHERE id = $1',
          [m.id, copied],
        );
        this.#onProgress?.({ ...m, phase: 'copying', rowsTotal: total, rowsCopied: copied });
        if (this.#rowsPerSecond > 0) {
          const due = started + (copied / this.#rowsPerSecond) * 1000;
          const wait = due - this.#clock.now();
          if (wait > 0) await this.#clock.sleep(wait);
        }
      }
    }
  }

  /** Replays logged changes of the unit onto the target; returns how many it replayed. */
  async #catchUp(
    map: ShardMap,
    unit: string,
    tables: readonly ShardedTable[],
    src: SqlClient,
    tgt: SqlClient,
  ): Promise<number> {
    const changes = await src.query<{ seq: string | number; tbl: string; key: string }>(
      'SELECT seq, tbl, key FROM cdp_shard_changes WHERE tbl = ANY($1::text[]) ORDER BY seq LIMIT 5000',
      [tables.map((t) => t.name)],
    );
    if (changes.rows.length === 0) return 0;
    let replayed = 0;
    for (const t of tables) {
      const pred = map.unitPredicate(unit, 'k');
      const keys = [...new Set(changes.rows.filter((c) => c.tbl === t.name).map((c) => c.key))];
      if (keys.length === 0) continue;
      const inUnit = await src.query<{ k: string }>(
        `SELECT k FROM unnest($1::text[]) AS u(k) WHERE ${pred}`,
        [keys],
      );
      const columns = await insertableColumns(src, t.name);
      await copyKeys(
        src,
        tgt,
        t,
        columns,
        inUnit.rows.map((r) => r.k),
      );
      replayed += inUnit.rows.length;
    }
    await src.query('DELETE FROM cdp_shard_changes WHERE seq = ANY($1::bigint[])', [
      changes.rows.map((c) => String(c.seq)),
    ]);
    return changes.rows.length === 5000 ? Math.max(replayed, this.#fenceAt + 1) : replayed;
  }
}

function ownerOf(map: ShardMap, unit: string): string {
  for (const [shard, units] of map.unitsByShard()) if (units.includes(unit)) return shard;
  throw new ShardMapError(`map "${map.state.name}" has no unit "${unit}"`);
}

async function switchOwner(
  tx: Queryable,
  map: ShardMap,
  unit: string,
  target: string,
): Promise<void> {
  const name = map.state.name;
  const [kind, id] = [unit.slice(0, unit.indexOf(':')), unit.slice(unit.indexOf(':') + 1)];
  if (kind === 'slot')
    await tx.query('UPDATE cdp_shard_slots SET shard = $3 WHERE map = $1 AND slot = $2', [
      name,
      Number(id),
      target,
    ]);
  else if (kind === 'range')
    await tx.query('UPDATE cdp_shard_ranges SET shard = $3 WHERE map = $1 AND id = $2', [
      name,
      Number(id),
      target,
    ]);
  else
    await tx.query('UPDATE cdp_shard_directory SET shard = $3 WHERE map = $1 AND key = $2', [
      name,
      id,
      target,
    ]);
}

async function dropCapture(src: SqlClient, tables: readonly ShardedTable[]): Promise<void> {
  for (const t of tables)
    await src.exec(`DROP TRIGGER IF EXISTS cdp_capture_${t.name} ON ${t.name}`);
  await src.query('DELETE FROM cdp_shard_changes WHERE tbl = ANY($1::text[])', [
    tables.map((t) => t.name),
  ]);
}
