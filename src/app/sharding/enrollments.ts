import type { Logger } from 'pino';
import type { Clock } from '../../core/clock.js';
import { errorMessage } from '../../core/errors.js';
import type { SqlClient, SqlTransaction } from '../../engines/sql/sql-client.js';
import type { ShardRouter } from '../../sharding/index.js';

/** Writes EnrollmentRequested through the outbox, in the caller's (catalog database) transaction. */
export type Announce = (
  tx: SqlTransaction,
  student: string,
  course: string,
) => Promise<{ id: string; correlationid: string }>;

export interface Announcement {
  eventId: string;
  correlationId: string;
  /** False when another writer (a retried saga step, the sweeper) had announced it already. */
  fresh: boolean;
}

/** How old an unannounced enrollment must be before the sweeper announces it. */
const SWEEP_AFTER_MS = 30_000;

/**
 * Enrollments sharded by student id. The row lives on the student's shard; its announcement
 * (EnrollmentRequested in the outbox) lives in the catalog database, where the outbox is. The
 * two commits are ordered: the shard row first (`announced` false), then the outbox message
 * with a row of `app_enrollment_announcements` in one transaction, then the shard row is marked.
 * A crash between them leaves an unannounced row, which the sweeper announces; the
 * announcements table makes the message be written once whoever gets there first.
 */
export class ShardedEnrollments {
  readonly #router: ShardRouter;
  readonly #sql: SqlClient;
  readonly #clock: Clock;
  readonly #logger: Logger;
  #announce: Announce | undefined;
  readonly #stop = new AbortController();
  #sweeper: Promise<void> | undefined;

  constructor(router: ShardRouter, sql: SqlClient, clock: Clock, logger: Logger) {
    this.#router = router;
    this.#sql = sql;
    this.#clock = clock;
    this.#logger = logger;
  }

  /** The enrollment feature gives its outbox writer; the sweeper runs from then on. */
  useAnnouncer(announce: Announce, sweepEveryMs = 5_000): void {
    this.#announce = announce;
    this.#sweeper ??= this.#sweepLoop(sweepEveryMs);
  }

  async #sweepLoop(ms: number): Promise<void> {
    while (!this.#stop.signal.aborted) {
      try {
        await this.#clock.sleep(ms, this.#stop.signal);
      } catch {
        return;
      }
      await this.sweep().catch((err) =>
        this.#logger.warn({ err: errorMessage(err) }, 'enrollment announcement sweep failed'),
      );
    }
  }

  async isEnrolled(student: string, course: string): Promise<boolean> {
    const rows = await this.#router.query(
      student,
      'SELECT 1 FROM app_enrollments WHERE student = $1 AND course = $2',
      [student, course],
    );
    return rows.length > 0;
  }

  /**
   * Records the enrollment on the student's shard. True when this call (or, with `purchaseId`,
   * an earlier run of the same purchase) wrote it; false when the student was already enrolled
   * otherwise.
   */
  async record(student: string, course: string, purchaseId?: string): Promise<boolean> {
    return this.#router.transaction(student, async (tx) => {
      const inserted = await tx.query(
        `INSERT INTO app_enrollments (student, course, requested_at, purchase_id) VALUES ($1, $2, $3, $4)
         ON CONFLICT (student, course) DO NOTHING RETURNING student`,
        [student, course, new Date(this.#clock.now()), purchaseId ?? null],
      );
      if (inserted.rows.length > 0) return true;
      if (purchaseId === undefined) return false;
      const mine = await tx.query(
        'SELECT 1 FROM app_enrollments WHERE student = $1 AND course = $2 AND purchase_id = $3',
        [student, course, purchaseId],
      );
      return mine.rows.length > 0;
    });
  }

  /**
   * Writes the announcement in `tx` (the catalog database) unless one was written already; the
   * shard row is marked later (`markAnnounced`, or by the sweeper).
   */
  async announce(tx: SqlTransaction, student: string, course: string): Promise<Announcement> {
    if (!this.#announce)
      throw new Error('ShardedEnrollments.announce before the enrollment feature started');
    const claimed = await tx.query(
      `INSERT INTO app_enrollment_announcements (student, course, event_id, correlation_id)
       VALUES ($1, $2, '', '') ON CONFLICT (student, course) DO NOTHING RETURNING student`,
      [student, course],
    );
    if (claimed.rows.length === 0) {
      const { rows } = await tx.query<{ event_id: string; correlation_id: string }>(
        'SELECT event_id, correlation_id FROM app_enrollment_announcements WHERE student = $1 AND course = $2',
        [student, course],
      );
      return { eventId: rows[0]!.event_id, correlationId: rows[0]!.correlation_id, fresh: false };
    }
    const env = await this.#announce(tx, student, course);
    await tx.query(
      'UPDATE app_enrollment_announcements SET event_id = $3, correlation_id = $4 WHERE student = $1 AND course = $2',
      [student, course, env.id, env.correlationid],
    );
    return { eventId: env.id, correlationId: env.correlationid, fresh: true };
  }

  async markAnnounced(student: string, course: string): Promise<void> {
    await this.#router.query(
      student,
      'UPDATE app_enrollments SET announced = true WHERE student = $1 AND course = $2 AND NOT announced',
      [student, course],
    );
  }

  /** Announces enrollments left unannounced for SWEEP_AFTER_MS (a crash between the commits). */
  async sweep(olderThanMs = SWEEP_AFTER_MS): Promise<number> {
    let n = 0;
    const before = new Date(this.#clock.now() - olderThanMs);
    for (const shard of this.#router.shardIds()) {
      const { rows } = await this.#router
        .client(shard)
        .query<{ student: string; course: string }>(
          'SELECT student, course FROM app_enrollments WHERE NOT announced AND requested_at < $1 ORDER BY requested_at LIMIT 200',
          [before],
        );
      for (const r of rows) {
        await this.#sql.transaction((tx) => this.announce(tx, r.student, r.course));
        await this.markAnnounced(r.student, r.course);
        n++;
      }
    }
    return n;
  }

  /**
   * Copies enrollments the catalog database holds from before sharding onto the shards (they
   * were announced then). Idempotent; the old table is left as it was.
   */
  async adoptUnsharded(): Promise<number> {
    const { rows } = await this.#sql.query<{ student: string; course: string; at: Date }>(
      'SELECT student, course, requested_at AS at FROM app_enrollments ORDER BY student, course',
    );
    for (const r of rows) {
      await this.#router.query(
        r.student,
        `INSERT INTO app_enrollments (student, course, requested_at, announced) VALUES ($1, $2, $3, true)
         ON CONFLICT (student, course) DO NOTHING`,
        [r.student, r.course, r.at],
      );
    }
    return rows.length;
  }

  /** Enrollments per shard (rows), read on each shard. */
  async countByShard(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const shard of this.#router.shardIds()) {
      const { rows } = await this.#router
        .client(shard)
        .query<{ n: number }>('SELECT count(*)::int AS n FROM app_enrollments');
      out[shard] = rows[0]!.n;
    }
    return out;
  }

  async close(): Promise<void> {
    this.#stop.abort();
    await this.#sweeper;
  }
}
