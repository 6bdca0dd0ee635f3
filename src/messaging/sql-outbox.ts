import { type Clock, systemClock } from '../core/clock.js';
import type { Queryable, SqlTransaction } from '../engines/sql/sql-client.js';
import {
  createEnvelope,
  type EventTypes,
  encodeEnvelope,
  type MessageEnvelope,
  type NewMessageEnvelope,
} from './envelope.js';
import { assertTopic } from './internal/message-rules.js';

/** The channel the outbox notifies on commit; relays LISTEN on it. */
export const OUTBOX_CHANNEL = 'cdp_outbox';

export interface OutboxMessage<T = unknown>
  extends Omit<NewMessageEnvelope<T>, 'source' | 'sequence'> {
  topic: string;
  /** Default: the Outbox's source. */
  source?: string;
  headers?: Record<string, string>;
}

export interface OutboxOptions {
  /** CloudEvents `source` of the messages written, e.g. `/services/enrollment`. */
  source: string;
  /** When given, every message is validated against its type's schema before it is written. */
  types?: EventTypes;
  /**
   * Also record each message's ids in cdp_message_log (same transaction), so that a flow can
   * be listed from its correlation id (traceFlow). Default false (one more row per message).
   */
  trace?: boolean;
  clock?: Clock;
}

/**
 * Transactional outbox, writing side: `add(tx, msg)` inside the caller's transaction writes
 * the message with the business rows, so both commit or neither. A keyed message takes the
 * next sequence of its key (the key's counter row stays locked until commit, so sequence
 * order is commit order) and the commit notifies the relays.
 */
export class Outbox {
  readonly #options: OutboxOptions;
  readonly #clock: Clock;

  constructor(options: OutboxOptions) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
  }

  async add<T>(tx: SqlTransaction, message: OutboxMessage<T>): Promise<MessageEnvelope<T>> {
    const [env] = await this.addMany(tx, [message]);
    return env!;
  }

  /**
   * Write several messages in two statements (whatever their number): the keys' sequence
   * counters are advanced together (locked in key order, so concurrent writers cannot
   * deadlock on them), then the rows are inserted from one JSON array.
   */
  async addMany<T>(
    tx: SqlTransaction,
    messages: OutboxMessage<T>[],
  ): Promise<MessageEnvelope<T>[]> {
    if (messages.length === 0) return [];
    for (const m of messages) assertTopic(m.topic);
    const counts = new Map<string, number>();
    for (const m of messages)
      if (m.key !== undefined) counts.set(m.key, (counts.get(m.key) ?? 0) + 1);
    const next = new Map<string, number>();
    if (counts.size > 0) {
      const sorted = [...counts.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
      const { rows } = await tx.query<{ key: string; last_seq: number }>(
        `INSERT INTO cdp_outbox_keys (key, last_seq)
         SELECT x.key, x.n FROM jsonb_to_recordset($1::jsonb) AS x(key text, n bigint, o int) ORDER BY x.o
         ON CONFLICT (key) DO UPDATE SET last_seq = cdp_outbox_keys.last_seq + EXCLUDED.last_seq
         RETURNING key, last_seq`,
        [JSON.stringify(sorted.map(([key, n], o) => ({ key, n, o })))],
      );
      for (const r of rows) next.set(r.key, Number(r.last_seq) - counts.get(r.key)! + 1);
    }
    const out: MessageEnvelope<T>[] = [];
    const records: unknown[] = [];
    const log: unknown[] = [];
    for (const m of messages) {
      let seq: number | undefined;
      if (m.key !== undefined) {
        seq = next.get(m.key)!;
        next.set(m.key, seq + 1);
      }
      const env = createEnvelope<T>(
        { ...m, source: m.source ?? this.#options.source, sequence: seq },
        this.#clock,
      );
      if (this.#options.types) this.#options.types.parse(env);
      records.push({
        message_id: env.id,
        topic: m.topic,
        key: m.key ?? null,
        seq: seq ?? null,
        envelope: encodeEnvelope(env),
        headers: m.headers ?? null,
      });
      if (this.#options.trace) {
        log.push({
          message_id: env.id,
          correlation_id: env.correlationid,
          causation_id: env.causationid ?? null,
          type: env.type,
          source: env.source,
          topic: m.topic,
          key: m.key ?? null,
        });
      }
      out.push(env);
    }
    // One round trip: the rows, the trace records (when asked) and the notification (sent by
    // PostgreSQL at commit, like NOTIFY; data-modifying CTEs always run to completion).
    await tx.query(
      `WITH rows AS (
         INSERT INTO cdp_outbox (message_id, topic, key, seq, envelope, headers)
         SELECT message_id, topic, key, seq, envelope, headers
         FROM jsonb_to_recordset($1::jsonb)
           AS x(message_id text, topic text, key text, seq bigint, envelope text, headers jsonb, o int)
       ), log AS (
         INSERT INTO cdp_message_log (message_id, correlation_id, causation_id, type, source, topic, key)
         SELECT message_id, correlation_id, causation_id, type, source, topic, key
         FROM jsonb_to_recordset($2::jsonb)
           AS x(message_id text, correlation_id text, causation_id text, type text, source text, topic text, key text)
       )
       SELECT pg_notify($3, '')`,
      [JSON.stringify(records), JSON.stringify(log), OUTBOX_CHANNEL],
    );
    return out;
  }
}

export interface OutboxStats {
  /** Rows waiting to be published. */
  backlog: number;
  /** Age of the oldest waiting row, ms (0 when none). */
  oldestAgeMs: number;
  /** Rows parked as poison. */
  parked: number;
}

export async function outboxStats(sql: Queryable): Promise<OutboxStats> {
  const { rows } = await sql.query<{ backlog: number; oldest: number | null; parked: number }>(
    `SELECT (SELECT count(*) FROM cdp_outbox)::int AS backlog,
            (SELECT extract(epoch FROM clock_timestamp() - min(created_at)) * 1000 FROM cdp_outbox)::float8 AS oldest,
            (SELECT count(*) FROM cdp_outbox_parked)::int AS parked`,
  );
  const r = rows[0]!;
  return { backlog: r.backlog, oldestAgeMs: Math.max(0, r.oldest ?? 0), parked: r.parked };
}

export interface ParkedRow {
  id: number;
  messageId: string;
  topic: string;
  key: string | null;
  seq: number | null;
  attempts: number;
  lastError: string | null;
  parkedAt: Date;
}

export async function listParked(sql: Queryable, limit = 100): Promise<ParkedRow[]> {
  const { rows } = await sql.query<{
    id: number;
    message_id: string;
    topic: string;
    key: string | null;
    seq: number | null;
    attempts: number;
    last_error: string | null;
    parked_at: Date;
  }>(
    `SELECT id, message_id, topic, key, seq, attempts, last_error, parked_at
     FROM cdp_outbox_parked ORDER BY id LIMIT $1`,
    [limit],
  );
  return rows.map((r) => ({
    id: r.id,
    messageId: r.message_id,
    topic: r.topic,
    key: r.key,
    seq: r.seq,
    attempts: r.attempts,
    lastError: r.last_error,
    parkedAt: r.parked_at,
  }));
}
