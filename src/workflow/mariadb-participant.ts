import type { Pool, PoolConnection, ResultSetHeader } from 'mysql2/promise';
import { redactUrl } from '../core/config.js';
import { ClosedError, EngineUnavailableError, errorMessage } from '../core/errors.js';
import { importOptional } from '../core/optional-dependency.js';
import { assertBranchId } from './internal/2pc-protocol/branch-id.js';
import {
  assertTwoPhaseName,
  type PrepareOptions,
  type TwoPhaseParticipant,
} from './two-phase-commit.js';

/** What a MariaDB branch's work runs its statements on. */
export interface MariaDbQueryable {
  /**
   * One statement with `?` placeholders (values escaped by the client). Resolves to the rows of
   * a query that returns rows, and to the number of rows changed by one that does not.
   */
  query<R = Record<string, unknown>>(
    sql: string,
    params?: readonly unknown[],
  ): Promise<{ rows: R[]; affectedRows: number }>;
}

/** The work of a MariaDB branch. */
export type MariaDbBranchWork = (db: MariaDbQueryable) => Promise<void>;

export interface MariaDbTwoPhaseParticipantOptions {
  /** Unique among the coordinator's participants (1 to 12 characters from [a-z0-9-]). */
  name: string;
  /** mysql://user:password@host:port/database */
  url: string;
  /** Connections in the pool. Default 10. */
  connectionLimit?: number;
  /** The variable the URL came from, named in errors. Default CDP_MARIADB_URL. */
  variable?: string;
}

/** MariaDB's XAER_NOTA: no XA transaction has that id. */
const XAER_NOTA = 1397;

/**
 * A MariaDB (10.5 and later) participant of two-phase commit, on `mysql2` (an optional peer
 * dependency): `XA START 'gid'`, the work, `XA END`, `XA PREPARE`. A prepared XA transaction
 * stays attached to the connection that prepared it (which can run nothing else until it ends),
 * so that connection is kept for the decision; when the connection is gone (the coordinator's
 * process died, the server restarted) the transaction survives detached, `XA RECOVER` lists it
 * and any connection commits or rolls it back.
 */
export class MariaDbTwoPhaseParticipant
  implements TwoPhaseParticipant<MariaDbBranchWork>, MariaDbQueryable
{
  readonly name: string;
  readonly #pool: Pool;
  /** Connections that hold a prepared branch of this process, by branch id. */
  readonly #held = new Map<string, PoolConnection>();
  #closed = false;

  private constructor(name: string, pool: Pool) {
    this.name = name;
    this.#pool = pool;
  }

  /** Connects (a pool) and checks the server answers. */
  static async open(
    options: MariaDbTwoPhaseParticipantOptions,
  ): Promise<MariaDbTwoPhaseParticipant> {
    assertTwoPhaseName('participant name', options.name);
    const mysql = await importOptional(
      'mysql2',
      'the MariaDB participant of two-phase commit (cloud-data-patterns/workflow/mariadb)',
      () => import('mysql2/promise'),
    );
    const pool = mysql.createPool({
      uri: options.url,
      connectionLimit: options.connectionLimit ?? 10,
      connectTimeout: 5_000,
    });
    try {
      await pool.query('SELECT 1');
    } catch (err) {
      await pool.end().catch(() => {});
      throw new EngineUnavailableError(
        'mariadb',
        `cannot reach MariaDB at ${redactUrl(options.url)} (${options.variable ?? 'CDP_MARIADB_URL'}): ${errorMessage(err)}; start the server or fix the URL`,
        options.variable ?? 'CDP_MARIADB_URL',
        { cause: err },
      );
    }
    return new MariaDbTwoPhaseParticipant(options.name, pool);
  }

  #check(): void {
    if (this.#closed) throw new ClosedError(`MariaDB participant "${this.name}"`);
  }

  async prepare(gid: string, work: MariaDbBranchWork, options?: PrepareOptions): Promise<void> {
    this.#check();
    assertBranchId(gid);
    const conn = await this.#pool.getConnection();
    let state: 'none' | 'active' | 'idle' | 'prepared' = 'none';
    try {
      // Set on every branch, as a pooled connection keeps its session's values. A branch the
      // coordinator gave up on then lets go of its connection and locks.
      const ms = options?.timeoutMs;
      if (ms !== undefined && ms > 0) {
        await conn.query(
          'SET SESSION max_statement_time = ?, SESSION innodb_lock_wait_timeout = ?',
          [ms / 1000, Math.max(1, Math.ceil(ms / 1000))],
        );
      } else {
        await conn.query(
          'SET SESSION max_statement_time = DEFAULT, SESSION innodb_lock_wait_timeout = DEFAULT',
        );
      }
      await conn.query('XA START ?', [gid]);
      state = 'active';
      await work(queryable(conn));
      await conn.query('XA END ?', [gid]);
      state = 'idle';
      await conn.query('XA PREPARE ?', [gid]);
      state = 'prepared';
      this.#held.set(gid, conn);
    } catch (err) {
      if (state === 'prepared') throw err;
      // Undo the branch on its own connection; a connection in an unknown state is destroyed.
      try {
        if (state === 'active') await conn.query('XA END ?', [gid]);
        if (state !== 'none') await conn.query('XA ROLLBACK ?', [gid]);
        conn.release();
      } catch {
        conn.destroy();
      }
      throw err;
    }
  }

  async commitPrepared(gid: string): Promise<void> {
    await this.#finish('COMMIT', gid);
  }

  async rollbackPrepared(gid: string): Promise<void> {
    await this.#finish('ROLLBACK', gid);
  }

  async #finish(verb: 'COMMIT' | 'ROLLBACK', gid: string): Promise<void> {
    this.#check();
    assertBranchId(gid);
    const held = this.#held.get(gid);
    if (held) {
      this.#held.delete(gid);
      try {
        await held.query(`XA ${verb} ?`, [gid]);
        held.release();
        return;
      } catch (err) {
        // The connection broke (a server restart): the branch, detached, is finished below.
        held.destroy();
        if (xaErrno(err) === XAER_NOTA) return;
      }
    }
    try {
      await this.#pool.query(`XA ${verb} ?`, [gid]);
    } catch (err) {
      if (xaErrno(err) === XAER_NOTA) return;
      throw err;
    }
  }

  /**
   * One statement outside any branch, on a pooled connection in autocommit (schema setup, reads
   * of what the branches wrote, work that needs no atomicity with the other participants).
   */
  async query<R = Record<string, unknown>>(
    sql: string,
    params?: readonly unknown[],
  ): Promise<{ rows: R[]; affectedRows: number }> {
    this.#check();
    const [result] = await this.#pool.query(sql, params as unknown[] | undefined);
    return resultOf<R>(result);
  }

  async listPrepared(prefix: string): Promise<string[]> {
    this.#check();
    const [rows] = await this.#pool.query('XA RECOVER');
    const ids: string[] = [];
    for (const row of rows as { formatID: number; bqual_length: number; data: Buffer | string }[]) {
      if (Number(row.formatID) !== 1 || Number(row.bqual_length) !== 0) continue;
      const gid = Buffer.isBuffer(row.data) ? row.data.toString('latin1') : String(row.data);
      if (gid.startsWith(prefix)) ids.push(gid);
    }
    return ids;
  }

  /**
   * Closes the pool. Branches still prepared on held connections are detached by the
   * disconnect and stay prepared for recovery, as when the process dies.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const conn of this.#held.values()) conn.destroy();
    this.#held.clear();
    await this.#pool.end();
  }
}

function xaErrno(err: unknown): number | undefined {
  const errno = (err as { errno?: unknown } | null)?.errno;
  return typeof errno === 'number' ? errno : undefined;
}

function resultOf<R>(result: unknown): { rows: R[]; affectedRows: number } {
  if (Array.isArray(result)) return { rows: result as R[], affectedRows: 0 };
  return { rows: [], affectedRows: (result as ResultSetHeader).affectedRows ?? 0 };
}

function queryable(conn: PoolConnection): MariaDbQueryable {
  return {
    async query<R>(sql: string, params?: readonly unknown[]) {
      const [result] = await conn.query(sql, params as unknown[] | undefined);
      return resultOf<R>(result);
    },
  };
}
