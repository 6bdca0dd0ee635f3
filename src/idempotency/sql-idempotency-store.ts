import { randomUUID } from 'node:crypto';
import type { PreparedStatement, SqlClient, SqlValue } from '../engines/sql/index.js';
import type {
  BeginRequest,
  BeginResult,
  IdempotencyStore,
  StoredResponse,
} from './idempotency-store.js';

/**
 * Takes the key in one statement: inserts it, or takes over a row that expired (any request) or
 * whose lease ran out without a response (the same request only). `ON CONFLICT ... DO UPDATE
 * ... WHERE` decides on the row's latest version under its lock, so of two requests racing on
 * one key exactly one gets the row back. `xmax = 0` tells an insert from a take-over.
 * $1 scope, $2 key, $3 fingerprint, $4 token, $5 now, $6 lease end, $7 expiry.
 */
const BEGIN = `INSERT INTO cdp_idempotency_keys AS k
  (scope, key, fingerprint, token, locked_until, expires_at)
  VALUES ($1, $2, $3, $4, $6, $7)
  ON CONFLICT (scope, key) DO UPDATE
    SET fingerprint = EXCLUDED.fingerprint, token = EXCLUDED.token,
        locked_until = EXCLUDED.locked_until,
        expires_at = CASE WHEN k.expires_at <= $5 THEN EXCLUDED.expires_at ELSE k.expires_at END,
        status = NULL, headers = NULL, body = NULL
    WHERE k.expires_at <= $5
       OR (k.status IS NULL AND k.locked_until <= $5 AND k.fingerprint = EXCLUDED.fingerprint)
  RETURNING (xmax = 0) AS inserted, (k.expires_at = $7) AS fresh`;

/** `BEGIN` as a named statement, for engines that prepare statements (`preparedPipeline`). */
const BEGIN_PREPARED: PreparedStatement = { name: 'cdp_idempotency_begin_v1', text: BEGIN };

/**
 * Sent before `BEGIN_PREPARED` in the same pipeline (one implicit transaction): its commit
 * does not wait for the WAL flush (see `deferBeginFlush`). The setting ends with the transaction.
 */
const DEFER_FLUSH: PreparedStatement = {
  name: 'cdp_idempotency_defer_flush_v1',
  text: "SELECT set_config('synchronous_commit', 'off', true)",
};

const READ = `SELECT fingerprint, locked_until, expires_at, status, headers, body
  FROM cdp_idempotency_keys WHERE scope = $1 AND key = $2`;

const COMPLETE = `UPDATE cdp_idempotency_keys SET status = $4, headers = $5, body = $6
  WHERE scope = $1 AND key = $2 AND token = $3 AND status IS NULL`;

/** `COMPLETE` as a named statement; its row tells that the response was kept. */
const COMPLETE_PREPARED: PreparedStatement = {
  name: 'cdp_idempotency_complete_v1',
  text: `${COMPLETE} RETURNING 1`,
};

const RELEASE = `DELETE FROM cdp_idempotency_keys
  WHERE scope = $1 AND key = $2 AND token = $3 AND status IS NULL`;

interface Row {
  fingerprint: string;
  locked_until: number | bigint;
  expires_at: number | bigint;
  status: number | null;
  headers: Record<string, string> | null;
  body: Uint8Array | null;
}

export interface SqlIdempotencyStoreOptions {
  sql: SqlClient;
  /**
   * On PostgreSQL, commit the taking of a key without waiting for its WAL flush (`SET LOCAL
   * synchronous_commit TO OFF`), which saves one disk flush per keyed request. Safe when the
   * request's effects commit to the same PostgreSQL server: their (synchronous) commit flushes
   * the WAL up to and past the key's record, so a crash loses the key only with no effect
   * committed, and the retry then runs as the first request. Leave it off when the effects go
   * to another database server. Ignored on PGlite. Default false.
   */
  deferBeginFlush?: boolean;
}

/**
 * Idempotency keys in SQL (PGlite or PostgreSQL), table `cdp_idempotency_keys` keyed by
 * (scope, key): apply `idempotencyMigrations` first. Times are the caller's clock's
 * milliseconds, so expiry follows the clock the `Idempotency` was given. Expired rows stay
 * until `purgeExpired` (a new request with an expired key takes its row over).
 */
export class SqlIdempotencyStore implements IdempotencyStore {
  readonly #sql: SqlClient;
  readonly #deferBeginFlush: boolean;

  constructor(options: SqlIdempotencyStoreOptions) {
    this.#sql = options.sql;
    this.#deferBeginFlush = options.deferBeginFlush === true && options.sql.engine === 'postgres';
  }

  /**
   * The taking statement, committed without waiting for its flush when so configured. Where
   * the engine prepares statements (PostgreSQL), the statement is prepared once per connection
   * and sent with the flush setting in one round trip; otherwise as a query (PGlite), or as a
   * transaction of the setting and the query.
   */
  async #take(params: SqlValue[]): Promise<{ inserted: boolean; fresh: boolean } | undefined> {
    const sql = this.#sql;
    if (sql.preparedPipeline) {
      const steps = [{ statement: BEGIN_PREPARED, values: params }];
      if (this.#deferBeginFlush) steps.unshift({ statement: DEFER_FLUSH, values: [] });
      const row = (await sql.preparedPipeline(steps)).at(-1)?.[0];
      return row && { inserted: row[0] === 't', fresh: row[1] === 't' };
    }
    if (!this.#deferBeginFlush)
      return (await sql.query<{ inserted: boolean; fresh: boolean }>(BEGIN, params)).rows[0];
    return sql.transaction(async (tx) => {
      await tx.exec('SET LOCAL synchronous_commit TO OFF');
      return (await tx.query<{ inserted: boolean; fresh: boolean }>(BEGIN, params)).rows[0];
    });
  }

  async begin(r: BeginRequest): Promise<BeginResult> {
    for (;;) {
      const token = randomUUID();
      const expiresAt = r.now + r.ttlMs;
      const row = await this.#take([
        r.scope,
        r.key,
        r.fingerprint,
        token,
        r.now,
        r.now + r.leaseMs,
        expiresAt,
      ]);
      if (row) return { outcome: 'started', token, recovered: !row.inserted && !row.fresh };
      const { rows } = await this.#sql.query<Row>(READ, [r.scope, r.key]);
      const cur = rows[0];
      // Released or purged between the two statements: try to take it again.
      if (!cur || Number(cur.expires_at) <= r.now) continue;
      if (cur.fingerprint !== r.fingerprint) return { outcome: 'mismatch' };
      if (cur.status !== null)
        return {
          outcome: 'replay',
          response: {
            status: cur.status,
            headers: cur.headers ?? {},
            body: cur.body ?? new Uint8Array(),
          },
        };
      if (Number(cur.locked_until) <= r.now) continue;
      return { outcome: 'in-progress', lockedUntil: Number(cur.locked_until) };
    }
  }

  async complete(
    scope: string,
    key: string,
    token: string,
    response: StoredResponse,
  ): Promise<boolean> {
    const values = [scope, key, token, response.status, response.headers, response.body];
    if (this.#sql.preparedRows)
      return (await this.#sql.preparedRows(COMPLETE_PREPARED, values)).length === 1;
    const r = await this.#sql.query(COMPLETE, values);
    return r.rowCount === 1;
  }

  async release(scope: string, key: string, token: string): Promise<void> {
    await this.#sql.query(RELEASE, [scope, key, token]);
  }

  async purgeExpired(now: number): Promise<number> {
    const r = await this.#sql.query('DELETE FROM cdp_idempotency_keys WHERE expires_at <= $1', [
      now,
    ]);
    return r.rowCount;
  }
}
