import type { Logger } from 'pino';
import { CdpError, ValidationError } from '../core/errors.js';
import { silentLogger } from '../core/logger.js';
import type { SqlTransaction } from '../engines/sql/sql-client.js';
import type { SqlEventStore } from '../events/index.js';
import type { SqlProjection } from './projection.js';

/**
 * Rebuild without downtime: a projection that can write into copies of its tables.
 *
 * `rebuildProjection` creates empty copies of the live tables (`LIKE ... INCLUDING ALL`), replays
 * the global log from position 0 into them while the live tables keep serving reads (and the
 * live async projection keeps writing them), and when the copies have caught up swaps them in
 * with one transaction: lock the live tables, apply what arrived meanwhile, move the live
 * subscription's checkpoint to where the copies are, rename, recreate dependent views, drop
 * the old tables. Readers wait only for that transaction (milliseconds plus the recomputation of
 * dependent materialized views, if any), and never see a half-built table.
 *
 * The live writer is named by `writer`:
 * - 'async' (default): the async projection (`openAsyncProjection`, subscription
 *   `projection:<name>`) or nothing. Its checkpoint update is fenced by position, so a batch it
 *   was writing during the swap rolls back and it resumes from the moved checkpoint on the new
 *   tables.
 * - 'inline': the projection is written in the append transactions (CommandHandler `inline`).
 *   The swap first holds appends off (`store.lockAppends`: it waits for the appends in flight
 *   to commit, and new ones wait at their first step), so the log stands still; it then applies
 *   what was committed since the replay, with no reader horizon (`store.readCommitted`: complete
 *   because nothing is in flight), renames and commits. Appends wait for the swap only (they
 *   resume on the new tables); reads wait for it as in 'async'. Nothing has to catch up after.
 */
export interface RebuildableProjection extends SqlProjection {
  /** The tables it writes, by their live names (unqualified, in the search path). */
  readonly tables: readonly string[];
  /** The same projection writing into other tables: live name -> other name. */
  withTables(names: Readonly<Record<string, string>>): SqlProjection;
}

export interface RebuildOptions {
  /** Who writes the live tables: the async projection (default) or the append transactions. */
  writer?: 'async' | 'inline';
  /** Events per transaction while replaying. Default 500. */
  batchSize?: number;
  /** Suffix of the copies' names while they are built. Default '_rebuild'. */
  suffix?: string;
  /** Called after each replayed batch with the position reached. */
  onProgress?: (progress: { position: number; events: number }) => void;
  logger?: Logger;
  signal?: AbortSignal;
}

export interface RebuildResult {
  /** The position the new tables cover; the live subscription resumes after it. */
  position: number;
  /** Events applied to the new tables. */
  events: number;
  /** Checkpoint of the live subscription before the swap (undefined: none exists). */
  liveCheckpointBefore: number | undefined;
  /** Dependent views recreated on the new tables. */
  recreatedViews: string[];
}

export class RebuildError extends CdpError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PROJECTION_REBUILD_FAILED', message, options);
  }
}

const IDENT = /^[a-z_][a-z0-9_]{0,50}$/;

interface DependentView {
  name: string;
  materialized: boolean;
  definition: string;
  indexes: string[];
}

async function dependentViews(tx: SqlTransaction, tables: readonly string[]) {
  const { rows } = await tx.query<{ name: string; kind: string; def: string; indexes: string[] }>(
    `SELECT DISTINCT v.oid::regclass::text AS name, v.relkind AS kind, pg_get_viewdef(v.oid) AS def,
            ARRAY(SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i WHERE i.indrelid = v.oid ORDER BY i.indexrelid) AS indexes
       FROM pg_depend d
       JOIN pg_rewrite r ON r.oid = d.objid AND d.classid = 'pg_rewrite'::regclass
       JOIN pg_class v ON v.oid = r.ev_class
      WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = ANY ($1::regclass[])
        AND v.oid <> ALL ($1::regclass[]) AND v.relkind IN ('v', 'm')`,
    [[...tables]],
  );
  return rows.map(
    (r): DependentView => ({
      name: r.name,
      materialized: r.kind === 'm',
      definition: r.def,
      indexes: r.indexes,
    }),
  );
}

/** Index definitions without their own and their table's names, to pair copies with originals. */
function indexShape(def: string): string {
  return def.replace(/^CREATE (UNIQUE )?INDEX \S+ ON \S+ /, 'CREATE $1INDEX ON ');
}

async function indexesOf(tx: SqlTransaction, table: string) {
  const { rows } = await tx.query<{ name: string; def: string }>(
    `SELECT c.relname AS name, pg_get_indexdef(i.indexrelid) AS def
       FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = $1::regclass`,
    [table],
  );
  return rows.map((r) => ({ name: r.name, shape: indexShape(r.def) }));
}

/**
 * Build the projection's tables anew from position 0 and swap them in atomically; reads keep
 * working on the live tables meanwhile. Returns where the new tables stand.
 */
export async function rebuildProjection(
  store: SqlEventStore,
  projection: RebuildableProjection,
  options: RebuildOptions = {},
): Promise<RebuildResult> {
  const sql = store.sql;
  const logger = options.logger ?? silentLogger();
  const batchSize = options.batchSize ?? 500;
  const suffix = options.suffix ?? '_rebuild';
  for (const t of projection.tables) {
    if (!IDENT.test(t) || !IDENT.test(`${t}${suffix}`)) {
      throw new ValidationError(
        `projection "${projection.name}": table name ${JSON.stringify(t)} (with suffix ${suffix}) must be a plain lower-case identifier`,
      );
    }
  }
  const copies = Object.fromEntries(projection.tables.map((t) => [t, `${t}${suffix}`]));
  const shadow = projection.withTables(copies);
  const types = projection.types && projection.types.length > 0 ? projection.types : undefined;
  const subscription = `projection:${projection.name}`;
  const inline = options.writer === 'inline';
  if (options.writer !== undefined && options.writer !== 'async' && !inline) {
    throw new ValidationError(
      `projection "${projection.name}": writer must be 'async' or 'inline', got ${JSON.stringify(options.writer)}`,
    );
  }

  // 1. Empty copies with the same columns, defaults, constraints and indexes.
  await sql.transaction(async (tx) => {
    for (const t of projection.tables) {
      await tx.exec(
        `DROP TABLE IF EXISTS ${copies[t]}; CREATE TABLE ${copies[t]} (LIKE ${t} INCLUDING ALL);`,
      );
    }
  });

  // 2. Replay from 0 into the copies, one transaction per batch; the live tables are untouched.
  let position = 0;
  let events = 0;
  // One pass: up to the log's head as it stands when the pass starts, so that writers faster
  // than the replay cannot keep a pass going for ever. Returns the events applied.
  const replay = async (tx?: SqlTransaction, standingStill = false): Promise<number> => {
    const { rows } = await (tx ?? sql).query<{ top: string | number | null }>(
      'SELECT max(position) AS top FROM cdp_events',
    );
    const top = Number(rows[0]?.top ?? 0);
    let applied = 0;
    for (;;) {
      options.signal?.throwIfAborted();
      const read = { after: position, limit: batchSize, ...(types ? { types } : {}) };
      const batch =
        tx && standingStill ? await store.readCommitted(tx, read) : await store.readAll(read);
      if (batch.events.length > 0) {
        const apply = async (t: SqlTransaction) => {
          if (shadow.applyBatch && batch.events.length > 1)
            await shadow.applyBatch(batch.events, t);
          else for (const e of batch.events) await shadow.apply(e, t);
        };
        if (tx) await apply(tx);
        else await sql.transaction(apply);
        events += batch.events.length;
        applied += batch.events.length;
        options.onProgress?.({ position: batch.next, events });
      }
      position = batch.next;
      // A short batch: everything readers may read now is in. Past the pass's head: what came
      // since is for the next pass, the swap, or (async) the live projection, from the
      // checkpoint the swap sets.
      if (batch.events.length < batchSize || position >= top) return applied;
    }
  };
  try {
    // Passes until one finds little to do (what arrived during the previous one), at most 5: the
    // swap applies the rest while readers (and, inline, appenders) wait.
    for (let pass = 0, applied = Infinity; pass < 5 && applied > batchSize; pass++) {
      applied = await replay();
    }
    logger.info({ projection: projection.name, position, events }, 'rebuild caught up; swapping');

    // 3. Swap: one transaction; readers of the live tables wait only for it.
    return await sql.transaction(async (tx) => {
      // Inline: no append in flight from here to commit (their projection writes included).
      if (inline) await store.lockAppends(tx);
      // Tables first (waits for a live batch in flight to commit), then the checkpoint row:
      // the live projection takes them in that order too, so neither waits on the other.
      await tx.exec(
        `LOCK TABLE ${projection.tables.join(', ')} IN ACCESS EXCLUSIVE MODE; LOCK TABLE ${Object.values(copies).join(', ')} IN ACCESS EXCLUSIVE MODE;`,
      );
      const { rows } = await tx.query<{ position: number }>(
        'SELECT position FROM cdp_event_subscriptions WHERE name = $1 FOR UPDATE',
        [subscription],
      );
      const liveBefore = rows[0] ? Number(rows[0].position) : undefined;
      // What was committed since the replay ended. Readers stop below this transaction's own
      // id, so what commits from now on is the live projection's, after `position`. (PGlite has
      // one connection, busy with this transaction: the live projection redoes that part.)
      if (inline) await replay(tx, true);
      else if (sql.engine === 'postgres') await replay(tx);
      // The live projection resumes where the new tables stand; if it had gone further on the
      // old tables it applies that part again, to the new ones.
      if (liveBefore !== undefined) {
        await tx.query('UPDATE cdp_event_subscriptions SET position = $2 WHERE name = $1', [
          subscription,
          position,
        ]);
      }
      const views = await dependentViews(tx, projection.tables);
      for (const v of views) {
        await tx.exec(`DROP ${v.materialized ? 'MATERIALIZED VIEW' : 'VIEW'} ${v.name}`);
      }
      for (const t of projection.tables) {
        const old = await indexesOf(tx, t);
        const fresh = await indexesOf(tx, copies[t]!);
        await tx.exec(`DROP TABLE ${t}; ALTER TABLE ${copies[t]} RENAME TO ${t};`);
        // Give the new indexes (and their constraints) the names the old ones had.
        for (const o of old) {
          const i = fresh.findIndex((f) => f.shape === o.shape);
          if (i < 0) continue;
          const [f] = fresh.splice(i, 1);
          if (f!.name !== o.name) await tx.exec(`ALTER INDEX "${f!.name}" RENAME TO "${o.name}"`);
        }
      }
      for (const v of views) {
        await tx.exec(
          `CREATE ${v.materialized ? 'MATERIALIZED VIEW' : 'VIEW'} ${v.name} AS ${v.definition.trim().replace(/;$/, '')}`,
        );
        for (const idx of v.indexes) await tx.exec(idx);
      }
      logger.info(
        { projection: projection.name, position, events, liveBefore, views: views.length },
        'rebuilt tables swapped in',
      );
      return {
        position,
        events,
        liveCheckpointBefore: liveBefore,
        recreatedViews: views.map((v) => v.name),
      };
    });
  } catch (err) {
    // Leave the live tables as they were; drop the half-built copies.
    await sql
      .exec(
        Object.values(copies)
          .map((c) => `DROP TABLE IF EXISTS ${c};`)
          .join(' '),
      )
      .catch(() => {});
    throw err instanceof CdpError
      ? err
      : new RebuildError(
          `rebuild of projection "${projection.name}" failed; the live tables are unchanged: ${String(err)}`,
          { cause: err },
        );
  }
}
