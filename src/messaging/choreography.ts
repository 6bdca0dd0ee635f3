import type { Logger } from 'pino';
import { ClosedError, ValidationError } from '../core/errors.js';
import type { Queryable, SqlClient, SqlTransaction } from '../engines/sql/sql-client.js';
import type { Broker, Subscription } from './broker.js';
import type { EventTypes, MessageEnvelope } from './envelope.js';
import { SqlInbox } from './sql-inbox.js';
import { Outbox, type OutboxMessage } from './sql-outbox.js';

/**
 * Choreography: each service reacts to events and emits its own, with no coordinator. A
 * reaction runs in one transaction that records the incoming id (inbox: no second effect on
 * redelivery), does the service's writes, and writes the emitted events to the outbox (sent
 * by the relay): consume, change state and produce atomically. Emitted events carry the
 * incoming event's correlation id and its id as causation id. Topics are the event types.
 */
export interface Reaction {
  event: MessageEnvelope;
  tx: SqlTransaction;
  /** Emit an event caused by this one (written to the outbox in this transaction). */
  emit<T>(
    e: Omit<OutboxMessage<T>, 'topic' | 'causedBy'> & { topic?: string },
  ): Promise<MessageEnvelope<T>>;
}

export interface ChoreographyServiceOptions {
  /** Service name: the consumer group and inbox name. */
  name: string;
  sql: SqlClient;
  broker: Broker;
  types: EventTypes;
  /** CloudEvents source of emitted events. Default `/services/<name>`. */
  source?: string;
  maxDeliveries?: number;
  concurrency?: number;
  logger?: Logger;
  /**
   * The inbox's ordering of keyed events (see `InboxOptions.ordering`). 'strict' (default)
   * applies a key's events in their sequence order, which needs this service to receive every
   * event of that key: a key's sequence counts all the events written with it, whatever their
   * type, so a service that reacts to only some of them waits for the others forever. Give
   * keys only to events that the same services consume together, or choose 'none'.
   */
  ordering?: 'strict' | 'none';
}

export class ChoreographyService {
  readonly name: string;
  readonly #o: ChoreographyServiceOptions;
  readonly #reactions = new Map<string, (r: Reaction) => Promise<void>>();
  readonly #outbox: Outbox;
  readonly #inbox: SqlInbox;
  #sub: Subscription | undefined;
  #closed = false;

  constructor(options: ChoreographyServiceOptions) {
    if (!/^[A-Za-z0-9_-]{1,100}$/.test(options.name)) {
      throw new ValidationError(
        `service name ${JSON.stringify(options.name)}: use letters, digits, _ and -`,
      );
    }
    this.name = options.name;
    this.#o = options;
    this.#outbox = new Outbox({
      source: options.source ?? `/services/${options.name}`,
      types: options.types,
      trace: true,
    });
    this.#inbox = new SqlInbox({
      sql: options.sql,
      consumer: options.name,
      ...(options.ordering ? { ordering: options.ordering } : {}),
    });
  }

  /** React to an event type (its topic is the type name). */
  on(type: string, reaction: (r: Reaction) => Promise<void>): this {
    if (!this.#o.types.has(type)) {
      throw new ValidationError(`${this.name} reacts to ${type}, which has no registered schema`);
    }
    this.#reactions.set(type, reaction);
    return this;
  }

  /** Start a flow: emit a first event (new correlation id) in the caller's transaction. */
  async emit<T>(
    tx: SqlTransaction,
    e: Omit<OutboxMessage<T>, 'topic'> & { topic?: string },
  ): Promise<MessageEnvelope<T>> {
    return this.#outbox.add(tx, { ...e, topic: e.topic ?? e.type });
  }

  async start(): Promise<void> {
    if (this.#closed) throw new ClosedError(`service ${this.name}`);
    if (this.#sub || this.#reactions.size === 0) return;
    const handler = this.#inbox.handler(
      this.#o.types,
      async (event, tx) => {
        const reaction = this.#reactions.get(event.type);
        if (!reaction) return;
        await reaction({
          event,
          tx,
          emit: <T>(e: Omit<OutboxMessage<T>, 'topic' | 'causedBy'> & { topic?: string }) =>
            this.#outbox.add<T>(tx, { ...e, topic: e.topic ?? e.type, causedBy: event }),
        });
      },
      { unknownTypes: 'ignore' },
    );
    this.#sub = await this.#o.broker.subscribe(
      {
        group: this.name,
        topics: [...this.#reactions.keys()],
        maxDeliveries: this.#o.maxDeliveries ?? 5,
        concurrency: this.#o.concurrency ?? 8,
      },
      handler,
    );
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#sub?.close();
  }
}

/** One step of a flow trace. */
export interface TraceStep {
  id: string;
  type: string;
  source: string;
  causationId: string | null;
  /** Depth in the causation tree (0 for the flow's first event). */
  depth: number;
  recordedAt: Date;
  /** Services (inbox consumers) that have handled it. */
  handledBy: string[];
}

/**
 * The events of one business flow (by correlation id, or by the id of any of its events),
 * in causation order (depth first), with the services that handled each.
 */
export async function traceFlow(sql: Queryable, idOrCorrelationId: string): Promise<TraceStep[]> {
  const { rows } = await sql.query<{
    message_id: string;
    correlation_id: string;
    causation_id: string | null;
    type: string;
    source: string;
    recorded_at: Date;
    handled_by: string[] | null;
  }>(
    `WITH flow AS (
       SELECT coalesce(
         (SELECT correlation_id FROM cdp_message_log WHERE message_id = $1),
         $1) AS correlation_id
     )
     SELECT l.message_id, l.correlation_id, l.causation_id, l.type, l.source, l.recorded_at,
            (SELECT array_agg(i.consumer ORDER BY i.consumer) FROM cdp_inbox i WHERE i.message_id = l.message_id) AS handled_by
     FROM cdp_message_log l, flow
     WHERE l.correlation_id = flow.correlation_id
     ORDER BY l.recorded_at, l.message_id`,
    [idOrCorrelationId],
  );
  const children = new Map<string | null, typeof rows>();
  const ids = new Set(rows.map((r) => r.message_id));
  for (const r of rows) {
    const parent = r.causation_id && ids.has(r.causation_id) ? r.causation_id : null;
    const list = children.get(parent) ?? [];
    list.push(r);
    children.set(parent, list);
  }
  const out: TraceStep[] = [];
  const walk = (parent: string | null, depth: number) => {
    for (const r of children.get(parent) ?? []) {
      out.push({
        id: r.message_id,
        type: r.type,
        source: r.source,
        causationId: r.causation_id,
        depth,
        recordedAt: r.recorded_at,
        handledBy: r.handled_by ?? [],
      });
      walk(r.message_id, depth + 1);
    }
  };
  walk(null, 0);
  return out;
}

/**
 * Forget the trace records (cdp_message_log) of messages recorded more than `olderThanMs` ago,
 * so the log stays bounded under a long run; traceFlow then lists only what is younger. Run it
 * beside SqlInbox.purge with the same window. Returns how many records were deleted.
 */
export async function purgeMessageLog(sql: Queryable, olderThanMs: number): Promise<number> {
  if (!(olderThanMs >= 0))
    throw new ValidationError(`olderThanMs must be >= 0, got ${olderThanMs}`);
  const r = await sql.query(
    `DELETE FROM cdp_message_log WHERE recorded_at < clock_timestamp() - ($1::float8 * interval '1 millisecond')`,
    [olderThanMs],
  );
  return r.rowCount;
}
