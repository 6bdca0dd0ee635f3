import { type Clock, systemClock } from '../core/clock.js';
import { gauge, type Registry } from '../core/metrics.js';
import type { Queryable, SqlTransaction, SqlValue } from '../engines/sql/sql-client.js';
import { SqlError } from '../engines/sql/sql-client.js';
import { checkIdentifier, ensureSlotIndex } from './catalog.js';
import { ShardFencedError, ShardingError, ShardMapError } from './errors.js';
import type { ShardRouter } from './router.js';

/**
 * What an index row carries: the whole base row (denormalized), only the base key, read back
 * by a routed lookup (normalized), or chosen columns (partial).
 */
export type IndexMode = 'denormalized' | 'normalized' | 'partial';

export interface IndexTableDefinition {
  /** The index table's name on every shard. */
  name: string;
  /** The sharded base table and its shard key column (one base row per key). */
  baseTable: string;
  baseKey: string;
  /** The indexed column: index rows are sharded by its value. */
  column: string;
  mode: IndexMode;
  /** Partial mode: the columns the index row carries. */
  columns?: readonly string[];
  /** One base row per value across all shards. */
  unique?: boolean;
}

/** A value already taken in a unique index table, by another base row. */
export class UniqueIndexViolationError extends ShardingError {
  constructor(index: string, value: string) {
    super(
      'SHARD_INDEX_UNIQUE_VIOLATION',
      `value ${JSON.stringify(value)} is already taken in unique index "${index}" by another row; nothing was written`,
    );
  }
}

export interface IndexDivergence {
  value: string;
  key: string;
  shard: string;
  kind: 'missing' | 'extra' | 'stale';
}

export interface IndexCheckReport {
  index: string;
  baseRows: number;
  indexRows: number;
  missing: number;
  extra: number;
  stale: number;
  /** The first divergences found (at most 20). */
  samples: IndexDivergence[];
}

export interface IndexTablesOptions {
  clock?: Clock;
  registry?: Registry;
}

interface Entry {
  value: string;
  key: string;
  data: string | null;
}

/**
 * Global secondary indexes over a hash-sharded map: each index row lives on the shard of its
 * value's slot, so a lookup by value is one routed read. Writes through `put`/`remove` keep the
 * indexes: in the base row's transaction when the index row is on the same shard (co-located),
 * otherwise through a queue written in that transaction and applied by `drain()` (a transactional
 * outbox; its lag is measured). Unique indexes reserve the value on its shard before the base
 * write, so two shards can never both take it.
 */
export class IndexTables {
  readonly router: ShardRouter;
  readonly #defs: Map<string, IndexTableDefinition>;
  readonly #clock: Clock;
  readonly #lag;
  #lastLagMs = 0;

  constructor(
    router: ShardRouter,
    definitions: readonly IndexTableDefinition[],
    options: IndexTablesOptions = {},
  ) {
    this.router = router;
    this.#defs = new Map();
    for (const d of definitions) {
      for (const id of [d.name, d.baseTable, d.baseKey, d.column, ...(d.columns ?? [])])
        checkIdentifier('index table name or column', id);
      if (d.mode === 'partial' && (d.columns ?? []).length === 0)
        throw new ShardMapError(`partial index "${d.name}" needs columns`);
      this.#defs.set(d.name, d);
    }
    this.#clock = options.clock ?? systemClock;
    this.#lag = options.registry
      ? gauge(
          options.registry,
          'cdp_sharding_index_lag_ms',
          'Age of the oldest index change applied by the last drain',
          ['index'],
        )
      : undefined;
  }

  /**
   * Creates the index tables on every shard of the map, registers them as sharded by value (so
   * moves carry them) and records their definitions in the catalog.
   */
  async install(): Promise<void> {
    const state = this.router.map.state;
    if (state.strategy !== 'hash')
      throw new ShardMapError(`index tables need a hash map; "${state.name}" is ${state.strategy}`);
    for (const d of this.#defs.values()) {
      for (const shard of this.router.shardIds()) {
        const c = this.router.client(shard);
        await c.exec(
          `CREATE TABLE IF NOT EXISTS ${d.name} (value text NOT NULL, key text NOT NULL, data jsonb, PRIMARY KEY (value, key))`,
        );
        if (d.unique)
          await c.exec(`CREATE UNIQUE INDEX IF NOT EXISTS ${d.name}_unique ON ${d.name} (value)`);
        await c.exec(`CREATE INDEX IF NOT EXISTS ${d.name}_key ON ${d.name} (key)`);
        await ensureSlotIndex(c, { name: d.name, keyColumn: 'value' }, state.slotCount);
      }
      await this.router.catalog.registerTable(state.name, { name: d.name, keyColumn: 'value' });
      await this.router.catalog.sql.query(
        `INSERT INTO cdp_shard_indexes (map, name, definition) VALUES ($1, $2, $3)
         ON CONFLICT (map, name) DO UPDATE SET definition = EXCLUDED.definition`,
        [state.name, d.name, JSON.stringify(d)],
      );
    }
  }

  #def(name: string): IndexTableDefinition {
    const d = this.#defs.get(name);
    if (!d)
      throw new ShardMapError(
        `no index table named "${name}"; known: ${[...this.#defs.keys()].join(', ')}`,
      );
    return d;
  }

  #on(table: string): IndexTableDefinition[] {
    return [...this.#defs.values()].filter((d) => d.baseTable === table);
  }

  #dataExpr(d: IndexTableDefinition, alias: string): string {
    if (d.mode === 'normalized') return 'NULL::jsonb';
    if (d.mode === 'denormalized') return `to_jsonb(${alias})`;
    return `jsonb_build_object(${d.columns!.map((c) => `'${c}', ${alias}.${c}`).join(', ')})`;
  }

  /** Inserts or updates one base row (by its key) and keeps every index of its table. */
  async put(table: string, row: Readonly<Record<string, SqlValue>>): Promise<void> {
    checkIdentifier('table', table);
    const defs = this.#on(table);
    const keyColumn = defs[0]?.baseKey ?? (await this.#keyColumn(table));
    const key = row[keyColumn];
    if (key === null || key === undefined)
      throw new ShardMapError(`row of "${table}" has no ${keyColumn}`);
    const keyText = String(key);
    const reserved: IndexTableDefinition[] = [];
    for (const d of defs.filter((x) => x.unique)) {
      const v = row[d.column];
      if (v === null || v === undefined) continue;
      await this.#reserve(d, String(v), keyText);
      reserved.push(d);
    }
    const cols = Object.keys(row).map((c) => checkIdentifier('column', c));
    try {
      await this.router.transaction(keyText, async (tx, route) => {
        const old = await tx.query<{ r: Record<string, unknown> }>(
          `SELECT to_jsonb(t) AS r FROM ${table} t WHERE (t.${keyColumn})::text = $1 FOR UPDATE`,
          [keyText],
        );
        await tx.query(
          `INSERT INTO ${table} (${cols.join(', ')}) SELECT ${cols.join(', ')} FROM jsonb_populate_record(NULL::${table}, $1::jsonb)
           ON CONFLICT (${keyColumn}) DO UPDATE SET ${cols.map((c) => `${c} = EXCLUDED.${c}`).join(', ')}`,
          [JSON.stringify(row)],
        );
        await this.#maintain(tx, route.shard, defs, keyText, old.rows[0]?.r);
      });
    } catch (err) {
      for (const d of reserved)
        await this.#release(d, String(row[d.column]), keyText).catch(() => {});
      throw err;
    }
  }

  /** Deletes one base row and its index rows. */
  async remove(table: string, key: SqlValue): Promise<void> {
    checkIdentifier('table', table);
    const defs = this.#on(table);
    const keyColumn = defs[0]?.baseKey ?? (await this.#keyColumn(table));
    const keyText = String(key);
    await this.router.transaction(keyText, async (tx, route) => {
      const old = await tx.query<{ r: Record<string, unknown> }>(
        `DELETE FROM ${table} t WHERE (t.${keyColumn})::text = $1 RETURNING to_jsonb(t) AS r`,
        [keyText],
      );
      if (old.rows[0]) await this.#maintain(tx, route.shard, defs, keyText, old.rows[0].r);
    });
  }

  async #keyColumn(table: string): Promise<string> {
    const t = (await this.router.catalog.tables(this.router.mapName)).find((x) => x.name === table);
    if (!t)
      throw new ShardMapError(`"${table}" is not a sharded table of map "${this.router.mapName}"`);
    return t.keyColumn;
  }

  async #maintain(
    tx: SqlTransaction,
    shard: string,
    defs: readonly IndexTableDefinition[],
    key: string,
    old: Record<string, unknown> | undefined,
  ): Promise<void> {
    const map = this.router.map;
    for (const d of defs) {
      const oldValue =
        old?.[d.column] === null || old?.[d.column] === undefined ? null : String(old[d.column]);
      const cur = await tx.query<{ value: string | null; data: string | null }>(
        `SELECT (t.${d.column})::text AS value, (${this.#dataExpr(d, 't')})::text AS data FROM ${d.baseTable} t WHERE (t.${d.baseKey})::text = $1`,
        [key],
      );
      const newValue = cur.rows[0]?.value ?? null;
      const touched = [oldValue, newValue].filter((v): v is string => v !== null);
      const colocated = touched.every((v) => map.routeHashed(v).shard === shard);
      let owned = colocated;
      for (const v of colocated ? touched : []) {
        const o = await tx.query(
          'SELECT 1 FROM cdp_shard_owned WHERE map = $1 AND unit = $2 FOR SHARE',
          [map.state.name, map.routeHashed(v).unit],
        );
        if (o.rows.length === 0) owned = false;
      }
      if (owned) {
        if (oldValue !== null && oldValue !== newValue)
          await tx.query(`DELETE FROM ${d.name} WHERE value = $1 AND key = $2`, [oldValue, key]);
        if (newValue !== null)
          await upsertEntry(tx, d.name, { value: newValue, key, data: cur.rows[0]!.data });
      } else {
        await tx.query(
          'INSERT INTO cdp_shard_index_queue (index_name, key, old_value, enqueued_at_ms) VALUES ($1, $2, $3, $4)',
          [d.name, key, oldValue, this.#clock.now()],
        );
      }
    }
  }

  async #reserve(d: IndexTableDefinition, value: string, key: string): Promise<void> {
    try {
      await this.router.transactionByHash(value, (tx) =>
        tx.query(
          `INSERT INTO ${d.name} (value, key, data) VALUES ($1, $2, NULL) ON CONFLICT (value, key) DO NOTHING`,
          [value, key],
        ),
      );
    } catch (err) {
      if (err instanceof SqlError && err.sqlState === '23505')
        throw new UniqueIndexViolationError(d.name, value);
      throw err;
    }
  }

  async #release(d: IndexTableDefinition, value: string, key: string): Promise<void> {
    const [row] = await this.router.query<{ v: string | null }>(
      key,
      `SELECT (${d.column})::text AS v FROM ${d.baseTable} WHERE (${d.baseKey})::text = $1`,
      [key],
    );
    if (row?.v === value) return;
    await this.router.transactionByHash(value, (tx) =>
      tx.query(`DELETE FROM ${d.name} WHERE value = $1 AND key = $2`, [value, key]),
    );
  }

  /**
   * Base rows whose indexed column equals `value`: from the index row itself (denormalized:
   * the whole row; partial: its columns), or by a routed read of each base row (normalized).
   */
  async lookup(index: string, value: string): Promise<Record<string, unknown>[]> {
    const d = this.#def(index);
    const entries = await this.router.transactionByHash(
      value,
      async (tx) =>
        (
          await tx.query<{ key: string; data: Record<string, unknown> | null }>(
            `SELECT key, data FROM ${d.name} WHERE value = $1 ORDER BY key`,
            [value],
          )
        ).rows,
    );
    if (d.mode !== 'normalized') return entries.flatMap((e) => (e.data ? [e.data] : []));
    const out: Record<string, unknown>[] = [];
    for (const e of entries) {
      const [r] = await this.router.query<{ r: Record<string, unknown> }>(
        e.key,
        `SELECT to_jsonb(t) AS r FROM ${d.baseTable} t WHERE (t.${d.baseKey})::text = $1 AND (t.${d.column})::text = $2`,
        [e.key, value],
      );
      if (r) out.push(r.r);
    }
    return out;
  }

  /**
   * Applies queued index changes from every shard (up to `limit` per shard), each from the base
   * row's current state; returns how many it applied and the age of the oldest, ms (the lag).
   */
  async drain(limit = 1000): Promise<{ applied: number; lagMs: number }> {
    let applied = 0;
    let lagMs = 0;
    for (const shard of this.router.shardIds()) {
      const c = this.router.client(shard);
      const q = await c.query<{
        seq: string | number;
        index_name: string;
        key: string;
        old_value: string | null;
        enqueued_at_ms: string | number;
      }>(
        'SELECT seq, index_name, key, old_value, enqueued_at_ms FROM cdp_shard_index_queue ORDER BY seq LIMIT $1',
        [limit],
      );
      for (const item of q.rows) {
        const d = this.#defs.get(item.index_name);
        if (d) await this.#apply(d, item.key, item.old_value);
        await c.query('DELETE FROM cdp_shard_index_queue WHERE seq = $1', [item.seq]);
        lagMs = Math.max(lagMs, this.#clock.now() - Number(item.enqueued_at_ms));
        applied++;
      }
    }
    this.#lastLagMs = lagMs;
    for (const d of this.#defs.values()) this.#lag?.set({ index: d.name }, lagMs);
    return { applied, lagMs };
  }

  /** The lag the last drain measured, ms. */
  get lagMs(): number {
    return this.#lastLagMs;
  }

  /**
   * Brings the index rows of one base key up to date. The base row is read FOR SHARE and held
   * until the index rows are written: a writer changing it meanwhile waits, so the index never
   * receives a value the base row has already left (which would stay behind as an extra row when
   * the writer maintained the index in its own transaction).
   */
  async #apply(d: IndexTableDefinition, key: string, oldValue: string | null): Promise<void> {
    await this.router.transaction(key, async (btx, route) => {
      const { rows } = await btx.query<{ value: string | null; data: string | null }>(
        `SELECT (t.${d.column})::text AS value, (${this.#dataExpr(d, 't')})::text AS data FROM ${d.baseTable} t WHERE (t.${d.baseKey})::text = $1 FOR SHARE`,
        [key],
      );
      const cur = rows[0];
      const value = cur?.value ?? null;
      // The index row's shard: the base row's own transaction when it is the same shard (after
      // the same ownership check the writers make), else a transaction of its own there.
      const onValueShard = async (v: string, work: (tx: Queryable) => Promise<unknown>) => {
        const target = this.router.map.routeHashed(v);
        if (target.shard !== route.shard) {
          await this.router.transactionByHash(v, (tx) => work(tx));
          return;
        }
        const owned = await btx.query(
          'SELECT 1 FROM cdp_shard_owned WHERE map = $1 AND unit = $2 FOR SHARE',
          [this.router.map.state.name, target.unit],
        );
        if (owned.rows.length === 0) throw new ShardFencedError(route.shard, target.unit);
        await work(btx);
      };
      if (oldValue !== null && oldValue !== value) {
        await onValueShard(oldValue, (tx) =>
          tx.query(`DELETE FROM ${d.name} WHERE value = $1 AND key = $2`, [oldValue, key]),
        );
      }
      if (value !== null) {
        await onValueShard(value, (tx) => upsertEntry(tx, d.name, { value, key, data: cur!.data }));
      }
    });
  }

  /**
   * Online backfill of an index added to a table that already has rows: queues every base row
   * (one statement per shard) for `drain()`, while writers keep maintaining it.
   */
  async backfill(index: string): Promise<number> {
    const d = this.#def(index);
    let queued = 0;
    for (const shard of this.router.shardIds()) {
      const r = await this.router.client(shard).query(
        `INSERT INTO cdp_shard_index_queue (index_name, key, old_value, enqueued_at_ms)
         SELECT $1, (t.${d.baseKey})::text, NULL, $2 FROM ${d.baseTable} t`,
        [d.name, this.#clock.now()],
      );
      queued += r.rowCount;
    }
    return queued;
  }

  /** Compares base rows with index rows on every shard: missing, extra (or misplaced) and stale rows. */
  async check(index: string): Promise<IndexCheckReport> {
    return (await this.#diff(index)).report;
  }

  /** Checks, then fixes every divergence it found; returns what it found. */
  async repair(index: string): Promise<IndexCheckReport> {
    const d = this.#def(index);
    const { report, fixes } = await this.#diff(index);
    for (const f of fixes) {
      if (f.kind === 'extra') {
        await this.router
          .client(f.shard)
          .query(`DELETE FROM ${d.name} WHERE value = $1 AND key = $2`, [f.value, f.key]);
      } else {
        await this.router.transactionByHash(f.value, (tx) => upsertEntry(tx, d.name, f.entry!));
      }
    }
    return report;
  }

  async #diff(
    index: string,
  ): Promise<{ report: IndexCheckReport; fixes: (IndexDivergence & { entry?: Entry })[] }> {
    const d = this.#def(index);
    const map = this.router.map;
    const expected = new Map<string, Entry>();
    const actual = new Map<string, Entry & { shard: string }>();
    const fixes: (IndexDivergence & { entry?: Entry })[] = [];
    const report: IndexCheckReport = {
      index,
      baseRows: 0,
      indexRows: 0,
      missing: 0,
      extra: 0,
      stale: 0,
      samples: [],
    };
    const note = (x: IndexDivergence & { entry?: Entry }) => {
      report[x.kind]++;
      if (report.samples.length < 20)
        report.samples.push({ value: x.value, key: x.key, shard: x.shard, kind: x.kind });
      fixes.push(x);
    };
    for (const shard of this.router.shardIds()) {
      const c: Queryable = this.router.client(shard);
      const base = await c.query<Entry>(
        `SELECT (t.${d.column})::text AS value, (t.${d.baseKey})::text AS key, (${this.#dataExpr(d, 't')})::text AS data
         FROM ${d.baseTable} t WHERE t.${d.column} IS NOT NULL`,
      );
      report.baseRows += base.rows.length;
      for (const e of base.rows) expected.set(`${e.value}\u0000${e.key}`, e);
      const ix = await c.query<Entry>(`SELECT value, key, data::text AS data FROM ${d.name}`);
      report.indexRows += ix.rows.length;
      for (const e of ix.rows) {
        const id = `${e.value}\u0000${e.key}`;
        if (map.routeHashed(e.value).shard !== shard || actual.has(id))
          note({ ...e, shard, kind: 'extra' });
        else actual.set(id, { ...e, shard });
      }
    }
    for (const [id, e] of expected) {
      const a = actual.get(id);
      const shard = map.routeHashed(e.value).shard;
      if (!a) note({ value: e.value, key: e.key, shard, kind: 'missing', entry: e });
      else if (a.data !== e.data)
        note({ value: e.value, key: e.key, shard, kind: 'stale', entry: e });
    }
    for (const [id, a] of actual)
      if (!expected.has(id)) note({ value: a.value, key: a.key, shard: a.shard, kind: 'extra' });
    return { report, fixes };
  }
}

async function upsertEntry(tx: Queryable, table: string, e: Entry): Promise<void> {
  await tx.query(
    `INSERT INTO ${table} (value, key, data) VALUES ($1, $2, $3::jsonb)
     ON CONFLICT (value, key) DO UPDATE SET data = EXCLUDED.data`,
    [e.value, e.key, e.data],
  );
}
