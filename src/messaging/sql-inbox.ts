import { CdpError, ValidationError } from '../core/errors.js';
import type { Queryable, SqlClient, SqlTransaction } from '../engines/sql/sql-client.js';
import {
  type Delivery,
  deadLetter,
  deferDelivery,
  type HandlerAction,
  type MessageHandler,
} from './broker.js';
import {
  decodeEnvelope,
  type EventTypes,
  type MessageEnvelope,
  UnknownEventTypeError,
} from './envelope.js';
import type { EventHandlerOptions } from './event-handler.js';

export type InboxResult = 'applied' | 'duplicate' | 'deferred' | 'replayed';

export interface InboxOptions {
  sql: SqlClient;
  /** The consumer's durable name (one inbox per consumer; usually the broker group). */
  consumer: string;
  /**
   * 'strict' (default): a keyed message (partitionkey + sequence) is applied only after its
   * predecessor (`prevsequence`), otherwise deferred, so effects follow the key's order even
   * with competing consumers and redeliveries. 'none': dedup by id only.
   */
  ordering?: 'strict' | 'none';
  /** Wait before a deferred (early) message comes back. Default 50 ms. */
  deferMs?: number;
}

class OutOfOrder extends CdpError {
  constructor() {
    super('MESSAGING_OUT_OF_ORDER', 'message arrived before its predecessor');
  }
}

/**
 * Idempotent consumer: the message id is recorded in the same transaction as the handler's
 * writes, so a redelivered message has no second effect. In strict ordering, the last applied
 * sequence per key is kept in the same transaction too.
 */
export class SqlInbox {
  readonly #o: Required<Omit<InboxOptions, 'sql'>> & { sql: SqlClient };

  constructor(options: InboxOptions) {
    this.#o = { ordering: 'strict', deferMs: 50, ...options };
  }

  get consumer(): string {
    return this.#o.consumer;
  }

  /**
   * Run `fn` once per message id. Returns 'applied', 'duplicate' (already applied: nothing
   * done), 'deferred' (its predecessor has not been applied yet: retry later) or 'replayed'
   * (a message skipped earlier, e.g. dead-lettered, applied now out of its key's order).
   */
  async handle(
    env: MessageEnvelope,
    fn: (tx: SqlTransaction) => Promise<void>,
  ): Promise<InboxResult> {
    const consumer = this.#o.consumer;
    try {
      return await this.#o.sql.transaction(async (tx) => {
        const keyed =
          this.#o.ordering === 'strict' &&
          env.partitionkey !== undefined &&
          env.sequence !== undefined;
        let replay = false;
        if (keyed) {
          await tx.query(
            `INSERT INTO cdp_inbox_keys (consumer, key, last_seq) VALUES ($1, $2, 0)
             ON CONFLICT (consumer, key) DO NOTHING`,
            [consumer, env.partitionkey!],
          );
          const { rows } = await tx.query<{ last_seq: number }>(
            'SELECT last_seq FROM cdp_inbox_keys WHERE consumer = $1 AND key = $2 FOR UPDATE',
            [consumer, env.partitionkey!],
          );
          const last = Number(rows[0]!.last_seq);
          const prev = env.prevsequence ?? env.sequence! - 1;
          if (env.sequence! <= last) replay = true;
          else if (prev > last) throw new OutOfOrder();
        }
        const ins = await tx.query(
          `INSERT INTO cdp_inbox (consumer, message_id) VALUES ($1, $2)
           ON CONFLICT (consumer, message_id) DO NOTHING`,
          [consumer, env.id],
        );
        if (ins.rowCount === 0) return 'duplicate' as const;
        await fn(tx);
        if (keyed && !replay) {
          await tx.query(
            'UPDATE cdp_inbox_keys SET last_seq = $3 WHERE consumer = $1 AND key = $2',
            [consumer, env.partitionkey!, env.sequence!],
          );
        }
        return replay ? ('replayed' as const) : ('applied' as const);
      });
    } catch (err) {
      if (err instanceof OutOfOrder) return 'deferred';
      throw err;
    }
  }

  /**
   * Mark a keyed message as skipped (it is going to the dead-letter destination, or ignored),
   * so that the key's later messages are not held back behind it. Returns 'early' (nothing
   * changed) when its predecessor has not been applied yet: the caller defers it instead. Its
   * id is not recorded: a replay of it is applied (as 'replayed').
   */
  async skip(env: MessageEnvelope): Promise<'skipped' | 'early'> {
    if (
      this.#o.ordering !== 'strict' ||
      env.partitionkey === undefined ||
      env.sequence === undefined
    )
      return 'skipped';
    const prev = env.prevsequence ?? env.sequence - 1;
    return this.#o.sql.transaction(async (tx) => {
      await tx.query(
        `INSERT INTO cdp_inbox_keys (consumer, key, last_seq) VALUES ($1, $2, 0)
         ON CONFLICT (consumer, key) DO NOTHING`,
        [this.#o.consumer, env.partitionkey!],
      );
      const { rows } = await tx.query<{ last_seq: number }>(
        'SELECT last_seq FROM cdp_inbox_keys WHERE consumer = $1 AND key = $2 FOR UPDATE',
        [this.#o.consumer, env.partitionkey!],
      );
      const last = Number(rows[0]!.last_seq);
      if (prev > last) return 'early' as const;
      if (env.sequence! > last) {
        await tx.query('UPDATE cdp_inbox_keys SET last_seq = $3 WHERE consumer = $1 AND key = $2', [
          this.#o.consumer,
          env.partitionkey!,
          env.sequence!,
        ]);
      }
      return 'skipped' as const;
    });
  }

  /**
   * A broker handler: validate the envelope at the edge, dedup and order through the inbox,
   * run `fn` in the inbox's transaction. A message that fails validation, or fails on its last
   * attempt, is skipped for ordering before it goes to the dead-letter destination.
   */
  handler(
    types: EventTypes,
    fn: (env: MessageEnvelope, tx: SqlTransaction, delivery: Delivery) => Promise<void>,
    options: EventHandlerOptions = {},
  ): MessageHandler {
    const unknown = options.unknownTypes ?? 'dead-letter';
    return async (delivery): Promise<HandlerAction | undefined> => {
      const raw = decodeEnvelope(delivery.body); // not an envelope: dead letter at once
      if (!types.has(raw.type)) {
        if ((await this.skip(raw)) === 'early') return deferDelivery(this.#o.deferMs);
        if (unknown === 'ignore') return undefined;
        const err = new UnknownEventTypeError(raw.type, types.types);
        return deadLetter(`${err.code}: ${err.message}`);
      }
      let env: MessageEnvelope;
      try {
        env = types.parse(raw);
      } catch (err) {
        if ((await this.skip(raw)) === 'early') return deferDelivery(this.#o.deferMs);
        throw err;
      }
      try {
        const r = await this.handle(env, (tx) => fn(env, tx, delivery));
        if (r === 'deferred') return deferDelivery(this.#o.deferMs);
        return undefined;
      } catch (err) {
        if (err instanceof ValidationError || delivery.attempt >= delivery.maxDeliveries) {
          await this.skip(env);
        }
        throw err;
      }
    };
  }

  /** Forget ids recorded more than `olderThanMs` ago (dedup holds within that window). */
  async purge(olderThanMs: number): Promise<number> {
    const r = await this.#o.sql.query(
      `DELETE FROM cdp_inbox WHERE consumer = $1 AND processed_at < clock_timestamp() - ($2::float8 * interval '1 millisecond')`,
      [this.#o.consumer, olderThanMs],
    );
    return r.rowCount;
  }
}

/** Whether a message id was applied by a consumer (tests, diagnostics). */
export async function inboxHas(sql: Queryable, consumer: string, messageId: string) {
  const { rows } = await sql.query(
    'SELECT 1 FROM cdp_inbox WHERE consumer = $1 AND message_id = $2',
    [consumer, messageId],
  );
  return rows.length > 0;
}
