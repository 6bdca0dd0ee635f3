import type { Logger } from 'pino';
import { type Clock, systemClock } from '../core/clock.js';
import { ConcurrencyError, errorMessage, ValidationError } from '../core/errors.js';
import type { SqlClient } from '../engines/sql/sql-client.js';
import type { Broker } from './broker.js';
import {
  createEnvelope,
  decodeEnvelope,
  encodeEnvelope,
  type MessageEnvelope,
} from './envelope.js';
import { assertTopic } from './internal/message-rules.js';

/**
 * The document variant of the outbox, for stores that change one document atomically but
 * have no multi-document transactions: the pending messages are a field of the document row
 * itself, written by the same single-row statement as the document, published by a relay and
 * then cleared. The document id is the ordering key; its messages carry a per-document
 * sequence. Shown on SQL (one row = one document, one statement per change).
 */
export interface DocumentEvent<T = unknown> {
  topic: string;
  type: string;
  data: T;
  causedBy?: Pick<MessageEnvelope, 'id' | 'correlationid'>;
}

interface StoredOutboxEntry {
  topic: string;
  envelope: MessageEnvelope;
}

const TABLE_RE = /^[a-z_][a-z0-9_]{0,62}$/;

export interface DocumentOutboxOptions {
  sql: SqlClient;
  /** Table holding the documents (created by ensureTable()). */
  table: string;
  source: string;
  clock?: Clock;
}

export class DocumentStore<D = unknown> {
  readonly #o: DocumentOutboxOptions;
  readonly #clock: Clock;

  constructor(options: DocumentOutboxOptions) {
    if (!TABLE_RE.test(options.table)) {
      throw new ValidationError(
        `invalid table name ${JSON.stringify(options.table)}: lower-case letters, digits and _`,
      );
    }
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
  }

  get table(): string {
    return this.#o.table;
  }

  async ensureTable(): Promise<void> {
    await this.#o.sql.exec(`CREATE TABLE IF NOT EXISTS ${this.#o.table} (
      id text PRIMARY KEY,
      doc jsonb NOT NULL,
      version integer NOT NULL,
      outbox jsonb NOT NULL DEFAULT '[]'::jsonb,
      outbox_seq bigint NOT NULL DEFAULT 0
    )`);
    await this.#o.sql.exec(
      `CREATE INDEX IF NOT EXISTS ${this.#o.table}_pending ON ${this.#o.table} (id) WHERE outbox <> '[]'::jsonb`,
    );
  }

  /**
   * Write the document and append its events to its outbox field in one statement.
   * `expectedVersion` (0 for a new document) makes it optimistic: a ConcurrencyError when the
   * stored version differs. Returns the new version.
   */
  async save(
    id: string,
    doc: D,
    events: DocumentEvent[] = [],
    expectedVersion?: number,
  ): Promise<number> {
    for (const e of events) assertTopic(e.topic);
    // Sequences are assigned by the statement (current outbox_seq + position).
    const entries = events.map((e) => ({
      topic: e.topic,
      envelope: createEnvelope(
        { type: e.type, source: this.#o.source, data: e.data, key: id, causedBy: e.causedBy },
        this.#clock,
      ),
    }));
    const t = this.#o.table;
    const { rows } = await this.#o.sql.query<{ version: number }>(
      `INSERT INTO ${t} AS t (id, doc, version, outbox, outbox_seq)
       SELECT $1, $2::jsonb, 1,
              coalesce((SELECT jsonb_agg(jsonb_set(e, '{envelope,sequence}', to_jsonb(ord)) ORDER BY ord)
                        FROM jsonb_array_elements($3::jsonb) WITH ORDINALITY AS x(e, ord)), '[]'::jsonb),
              jsonb_array_length($3::jsonb)
       WHERE $4::int IS NULL OR $4::int = 0 OR EXISTS (SELECT 1 FROM ${t} WHERE id = $1)
       ON CONFLICT (id) DO UPDATE SET
         doc = EXCLUDED.doc,
         version = t.version + 1,
         outbox = t.outbox || coalesce((
           SELECT jsonb_agg(jsonb_set(e, '{envelope,sequence}', to_jsonb(t.outbox_seq + ord)) ORDER BY ord)
           FROM jsonb_array_elements($3::jsonb) WITH ORDINALITY AS x(e, ord)), '[]'::jsonb),
         outbox_seq = t.outbox_seq + jsonb_array_length($3::jsonb)
       WHERE $4::int IS NULL OR t.version = $4::int
       RETURNING version`,
      [id, JSON.stringify(doc), JSON.stringify(entries), expectedVersion ?? null],
    );
    if (rows.length === 0) {
      const current = await this.get(id);
      throw new ConcurrencyError(
        `document ${id} is at version ${current?.version ?? 0}, not ${expectedVersion}: reload it and retry`,
        expectedVersion,
        current?.version ?? 0,
      );
    }
    return rows[0]!.version;
  }

  async get(id: string): Promise<{ doc: D; version: number; pending: number } | undefined> {
    const { rows } = await this.#o.sql.query<{ doc: D; version: number; pending: number }>(
      `SELECT doc, version, jsonb_array_length(outbox) AS pending FROM ${this.#o.table} WHERE id = $1`,
      [id],
    );
    return rows[0];
  }
}

/**
 * Publishes the outbox fields of documents and clears them. Each pending document is locked
 * (FOR UPDATE SKIP LOCKED) while its messages are published in order, so several relays
 * share documents without reordering one; a crash before the clear publishes them again
 * (same ids). A failing message stops its document until the next pass (no parking here).
 */
export class DocumentOutboxRelay {
  constructor(
    private readonly o: {
      sql: SqlClient;
      broker: Broker;
      table: string;
      batchSize?: number;
      logger?: Logger;
    },
  ) {
    if (!TABLE_RE.test(o.table)) throw new ValidationError(`invalid table name ${o.table}`);
  }

  /** Publish and clear one batch of documents; returns how many messages were published. */
  async runOnce(): Promise<number> {
    const t = this.o.table;
    return this.o.sql.transaction(async (tx) => {
      const { rows } = await tx.query<{ id: string; outbox: StoredOutboxEntry[] }>(
        `SELECT id, outbox FROM ${t} WHERE outbox <> '[]'::jsonb ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`,
        [this.o.batchSize ?? 100],
      );
      let published = 0;
      for (const row of rows) {
        let sent = 0;
        for (const entry of row.outbox) {
          try {
            const env = decodeEnvelope(JSON.stringify(entry.envelope));
            env.prevsequence = (env.sequence ?? 1) - 1;
            await this.o.broker.publish({
              topic: entry.topic,
              id: env.id,
              key: row.id,
              body: encodeEnvelope(env),
            });
            sent++;
          } catch (err) {
            this.o.logger?.warn(
              { id: row.id, err: errorMessage(err) },
              'document outbox publish failed',
            );
            break;
          }
        }
        if (sent > 0) {
          // Clear what was published (we hold the row, so nothing was appended meanwhile).
          await tx.query(
            `UPDATE ${t} SET outbox = coalesce((
               SELECT jsonb_agg(e ORDER BY ord) FROM jsonb_array_elements(outbox) WITH ORDINALITY AS x(e, ord) WHERE ord > $2
             ), '[]'::jsonb) WHERE id = $1`,
            [row.id, sent],
          );
        }
        published += sent;
      }
      return published;
    });
  }
}
