import { type SqlClient, SqlError, type SqlTransaction } from '../engines/sql/sql-client.js';
import { assertBranchId } from './internal/2pc-protocol/branch-id.js';
import {
  assertTwoPhaseName,
  PreparedTransactionsDisabledError,
  type PrepareOptions,
  type TwoPhaseParticipant,
} from './two-phase-commit.js';

/** The work of a PostgreSQL branch: statements on the branch's transaction. */
export type PgBranchWork = (tx: SqlTransaction) => Promise<void>;

export interface PgTwoPhaseParticipantOptions {
  /** Unique among the coordinator's participants (1 to 12 characters from [a-z0-9-]). */
  name: string;
  /**
   * The database the branches run in: a PostgreSQL server with `max_prepared_transactions` > 0,
   * or PGlite started with that setting. The participant borrows it; the caller closes it.
   */
  sql: SqlClient;
}

/** SQLSTATE 42704 (undefined_object): no prepared transaction has that id. */
const NOT_PREPARED = '42704';
/** SQLSTATE 55000 with this text: the server was started with max_prepared_transactions = 0. */
const DISABLED = /prepared transactions are disabled/i;

/**
 * A PostgreSQL participant of two-phase commit on the SqlClient port: the branch's work runs in
 * a transaction that ends with `PREPARE TRANSACTION 'gid'` instead of COMMIT. PostgreSQL then
 * detaches the transaction from the session (the connection goes back to the pool) and keeps it,
 * with its locks, across restarts until `COMMIT PREPARED` or `ROLLBACK PREPARED`, which any
 * session of the same database may send. `pg_prepared_xacts` lists what is in doubt.
 */
export class PgTwoPhaseParticipant implements TwoPhaseParticipant<PgBranchWork> {
  readonly name: string;
  readonly #sql: SqlClient;

  constructor(options: PgTwoPhaseParticipantOptions) {
    assertTwoPhaseName('participant name', options.name);
    this.name = options.name;
    this.#sql = options.sql;
  }

  /**
   * Throws `PreparedTransactionsDisabledError` when the server cannot prepare transactions (its
   * `max_prepared_transactions` is 0), before any transaction is tried.
   */
  async check(): Promise<void> {
    const { rows } = await this.#sql.query<{ max_prepared_transactions: string }>(
      'SHOW max_prepared_transactions',
    );
    if (Number(rows[0]?.max_prepared_transactions ?? 0) <= 0) throw this.#disabled();
  }

  #disabled(): PreparedTransactionsDisabledError {
    return new PreparedTransactionsDisabledError(
      this.name,
      `participant "${this.name}": the PostgreSQL server has max_prepared_transactions = 0, so it cannot take part in two-phase commit; ` +
        'set max_prepared_transactions (for example to max_connections) in postgresql.conf and restart the server',
    );
  }

  async prepare(gid: string, work: PgBranchWork, options?: PrepareOptions): Promise<void> {
    assertBranchId(gid);
    const timeout = options?.timeoutMs;
    try {
      await this.#sql.transaction(async (tx) => {
        if (timeout !== undefined && timeout > 0) {
          // Lock waits included: a branch the coordinator gave up on lets go of its connection.
          await tx.exec(`SET LOCAL statement_timeout = ${Math.ceil(timeout)}`);
        }
        await work(tx);
        // Ends the transaction: the session's closing COMMIT then finds none and does nothing.
        await tx.exec(`PREPARE TRANSACTION '${gid}'`);
      });
    } catch (err) {
      if (err instanceof SqlError && DISABLED.test(err.message)) throw this.#disabled();
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
    assertBranchId(gid);
    try {
      await this.#sql.exec(`${verb} PREPARED '${gid}'`);
    } catch (err) {
      if (err instanceof SqlError && err.sqlState === NOT_PREPARED) return;
      throw err;
    }
  }

  async listPrepared(prefix: string): Promise<string[]> {
    // COMMIT PREPARED must run in the database the branch was prepared in: list only this one's.
    const { rows } = await this.#sql.query<{ gid: string }>(
      `SELECT gid FROM pg_prepared_xacts
       WHERE database = current_database() AND left(gid, length($1)) = $1
       ORDER BY prepared`,
      [prefix],
    );
    return rows.map((r) => r.gid);
  }
}
