import type { Queryable } from '../../../engines/sql/sql-client.js';
import type { TwoPhaseStatus } from '../../two-phase-commit.js';

/** One transaction of the decision log. */
export interface LoggedTransaction {
  id: string;
  participants: string[];
  status: TwoPhaseStatus;
  owner: string;
  startedAt: number;
}

const UNFINISHED = `status IN ('preparing', 'committing', 'aborting')`;

interface Row {
  id: string;
  participants: string[];
  status: TwoPhaseStatus;
  owner: string;
  started_at: Date | string;
}

function toLogged(row: Row): LoggedTransaction {
  return {
    id: row.id,
    participants: row.participants,
    status: row.status,
    owner: row.owner,
    startedAt: new Date(row.started_at).getTime(),
  };
}

/**
 * The statements of the decision log for one coordinator. Every change of status is conditional
 * on the status before it, so that of two processes deciding one transaction (a live coordinator
 * and a recovery pass) exactly one wins and the other reads and follows its decision.
 */
export class DecisionLog {
  readonly #sql: Queryable;
  readonly #coordinator: string;

  constructor(sql: Queryable, coordinator: string) {
    this.#sql = sql;
    this.#coordinator = coordinator;
  }

  async begin(id: string, participants: string[], owner: string, now: number): Promise<void> {
    await this.#sql.query(
      `INSERT INTO cdp_2pc_transactions (coordinator, id, participants, status, owner, started_at)
       VALUES ($1, $2, $3, 'preparing', $4, $5)`,
      [this.#coordinator, id, participants, owner, new Date(now)],
    );
  }

  /**
   * Moves `id` from `from` to `to`; returns the status after the call: `to` when this call moved
   * it, otherwise the status another process left it in (undefined: no such row).
   */
  async transition(
    id: string,
    from: TwoPhaseStatus,
    to: TwoPhaseStatus,
    now: number,
    reason?: string,
  ): Promise<TwoPhaseStatus | undefined> {
    const column = to === 'committing' || to === 'aborting' ? 'decided_at' : 'finished_at';
    const { rowCount } = await this.#sql.query(
      `UPDATE cdp_2pc_transactions SET status = $4, ${column} = $5, reason = COALESCE($6, reason)
       WHERE coordinator = $1 AND id = $2 AND status = $3`,
      [this.#coordinator, id, from, to, new Date(now), reason ?? null],
    );
    if (rowCount === 1) return to;
    return (await this.get(id))?.status;
  }

  async get(id: string): Promise<LoggedTransaction | undefined> {
    const { rows } = await this.#sql.query<Row>(
      `SELECT id, participants, status, owner, started_at FROM cdp_2pc_transactions
       WHERE coordinator = $1 AND id = $2`,
      [this.#coordinator, id],
    );
    return rows[0] ? toLogged(rows[0]) : undefined;
  }

  /** Unfinished transactions, and the transactions `ids` whatever their status. */
  async unfinishedOr(ids: readonly string[]): Promise<LoggedTransaction[]> {
    const { rows } = await this.#sql.query<Row>(
      `SELECT id, participants, status, owner, started_at FROM cdp_2pc_transactions
       WHERE coordinator = $1 AND (${UNFINISHED} OR id = ANY($2::text[]))
       ORDER BY started_at`,
      [this.#coordinator, ids],
    );
    return rows.map(toLogged);
  }

  /** Number of transactions per status. */
  async counts(): Promise<Record<TwoPhaseStatus, number>> {
    const { rows } = await this.#sql.query<{ status: TwoPhaseStatus; n: number | string }>(
      `SELECT status, count(*) AS n FROM cdp_2pc_transactions WHERE coordinator = $1 GROUP BY status`,
      [this.#coordinator],
    );
    const counts = { preparing: 0, committing: 0, aborting: 0, committed: 0, aborted: 0 };
    for (const r of rows) counts[r.status] = Number(r.n);
    return counts;
  }
}
