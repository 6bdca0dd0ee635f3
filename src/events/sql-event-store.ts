import type { Logger } from 'pino';
import type { Counter, Gauge, Registry } from 'prom-client';
import { type Clock, isoTime, systemClock } from '../core/clock.js';
import { ClosedError, ConcurrencyError } from '../core/errors.js';
import { UuidV7Generator } from '../core/ids.js';
import { silentLogger } from '../core/logger.js';
import { counter, gauge } from '../core/metrics.js';
import { parseInt8, parseInt8Array } from '../engines/sql/int8.js';
import { migrate } from '../engines/sql/migrations.js';
import type { PipelineStep, PreparedStatement, TextRows } from '../engines/sql/pg-sql-client.js';
import {
  type SqlClient,
  SqlError,
  type SqlTransaction,
  type SqlValue,
} from '../engines/sql/sql-client.js';
import {
  type AppendOptions,
  type AppendResult,
  assertReadLimit,
  assertStreamId,
  describeVersion,
  EventIdReusedError,
  type EventStore,
  type ExpectedVersion,
  type NewEvent,
  normalizeExpected,
  type PreparedEvent,
  prepareEvents,
  type ReadAllOptions,
  type ReadAllResult,
  type ReadStreamOptions,
  type RecordedEvent,
  type Snapshot,
} from './event-store.js';
import {
  APPEND_GATE,
  eventStoreMigrations,
  LOCK_CLASS,
  NOTIFY_CHANNEL,
  POSITION_LOCK,
  STREAM_LOCK_CLASS,
} from './sql-event-store-migrations.js';
import { type Upcasters, upcastAll } from './upcasters.js';

export interface SqlEventStoreOptions {
  clock?: Clock;
  upcasters?: Upcasters;
  logger?: Logger;
  registry?: Registry;
  /**
   * NOTIFY `cdp_events` on every append so that subscriptions wake at once. Default true. Off,
   * subscriptions still see every event on their next poll.
   */
  notify?: boolean;
  /** Report a transaction that holds global readers back for longer than this. Default 5000. */
  stallReportMs?: number;
  /**
   * At most one wake-up NOTIFY per this many ms (the first append after a quiet spell notifies
   * at once; appends within the interval share one NOTIFY at its end). Default 2.
   */
  notifyIntervalMs?: number;
  /**
   * Wake subscribers only while some subscription holds a lease (`cdp_event_subscriptions`
   * has an owner), looked up at most this often, off the append's path. Until the first answer,
   * and when the last one is older than twice this, the store notifies. A subscription polls
   * quickly for a while after it takes its lease (`SqlSubscriptionOptions.warmupMs`, 3 s by
   * default), which covers the time a store may take to see it. 0: notify on every append,
   * subscribed or not. Default 1000.
   */
  subscriberCheckMs?: number;
}

/** The open transaction that holds readers of the global log back. */
export interface ReaderBlocker {
  pid: number;
  database: string | null;
  state: string | null;
  /** How long its transaction has been open, in seconds. */
  ageSeconds: number;
  query: string | null;
}

export interface ReaderStatus {
  /** Committed events exist beyond what readers may read yet. */
  heldBack: boolean;
  /** Since when (Clock ms), when held back. */
  heldSince: number | undefined;
  /** The oldest open transaction, once held back longer than `stallReportMs` (PostgreSQL only). */
  blocker: ReaderBlocker | undefined;
}

interface EventRow {
  position: number;
  stream_id: string;
  version: number;
  event_id: string;
  type: string;
  schema_version: number;
  data: unknown;
  metadata: Record<string, unknown>;
  recorded_at: Date | string;
}

/** The append function's call: one statement, one round trip (in a caller's transaction, on PGlite, and on conflicts). */
const APPEND_SQL =
  'SELECT status, actual, stream_version, positions FROM cdp_events_append($1, $2, $3::uuid[], $4::text[], $5::jsonb[], $6::jsonb[], $7::int[], $8, $9, $10)';

const APPEND_STATEMENT = { name: 'cdp_events_append_v3', text: APPEND_SQL };

type ExpectedMode = 'any' | 'no_stream' | 'stream_exists' | 'exact';

/** A stream's version: its last event's, found on the unique index of stream and version. $1 stream. */
const LAST_VERSION_SQL =
  'SELECT version FROM cdp_events WHERE stream_id = $1::text ORDER BY version DESC LIMIT 1';

/**
 * The first statement of an autocommitted append on PostgreSQL: the append gate (shared) and
 * the stream's lock, both held to commit. Parameter: $1 stream.
 */
const LOCK_STREAM = {
  name: 'cdp_events_lock_stream_v5',
  text: `SELECT pg_advisory_xact_lock_shared(${LOCK_CLASS}, ${APPEND_GATE}), pg_advisory_xact_lock(${STREAM_LOCK_CLASS}, hashtext($1::text))`,
};

/**
 * The second statement of an autocommitted append on PostgreSQL, sent with `LOCK_STREAM` in
 * one round trip and one transaction (`PgSqlClient.preparedPipeline`): the same steps as
 * `cdp_events_append` in the same order, as plain SQL (no PL/pgSQL call). It starts after the
 * stream's lock was granted, so its snapshot holds every event of the stream committed before:
 * the stream's version is its last event's. When the expectation holds, the chain l -> p -> u
 * takes, under the position lock, the transaction id and the positions and releases the lock,
 * and the events are inserted after it. Otherwise the chain and the insert get no row: nothing
 * is written, and the statement returns the version it read with no positions; the store
 * then asks `cdp_events_append`, which answers a replay of a committed append (refused by its
 * own expectation) or reports the conflict.
 *
 * Parameters: $1 stream, $2 id(s), $3 type(s), $4 data, $5 metadata, $6 schema version(s),
 * $7 recorded at, $8 expected version (exact mode only). `single` takes scalars, else arrays,
 * and returns the event's position, else the array of positions.
 */
function fastAppendSql(mode: ExpectedMode, single: boolean): string {
  const positions = single
    ? "nextval('cdp_events_position_seq')"
    : "(SELECT array_agg(nextval('cdp_events_position_seq')) FROM generate_series(1, cardinality($2::uuid[])))";
  const holds = {
    any: 'true',
    no_stream: 'h.head = 0',
    stream_exists: 'h.head > 0',
    exact: 'h.head = $8::bigint',
  }[mode];
  const cols =
    'position, tx_id, stream_id, version, event_id, type, schema_version, data, metadata, recorded_at';
  const events = single
    ? `INSERT INTO cdp_events (${cols})
      SELECT u.pos, u.xid, $1, u.head + 1, $2::uuid, $3::text, $6::int, $4::jsonb, $5::jsonb, $7::timestamptz
        FROM u RETURNING position`
    : `INSERT INTO cdp_events (${cols})
      SELECT u.pos[i.ord], u.xid, $1, u.head + i.ord, i.id, i.type, i.schema, i.data, i.meta, $7::timestamptz
        FROM u, unnest($2::uuid[], $3::text[], $4::jsonb[], $5::jsonb[], $6::int[])
          WITH ORDINALITY AS i(id, type, data, meta, schema, ord)
      RETURNING position`;
  return `WITH h AS MATERIALIZED (
    SELECT coalesce((${LAST_VERSION_SQL}), 0) AS head
  ), l AS MATERIALIZED (
    SELECT h.head, pg_advisory_lock(${LOCK_CLASS}, ${POSITION_LOCK}) AS positions FROM h WHERE ${holds}
  ), p AS MATERIALIZED (
    SELECT l.head, pg_current_xact_id() AS xid, ${positions} AS pos FROM l
  ), u AS MATERIALIZED (
    SELECT p.head, p.xid, p.pos, pg_advisory_unlock(${LOCK_CLASS}, ${POSITION_LOCK}) AS unlocked FROM p
  ), e AS (
    ${events}
  )
  SELECT h.head, ${single ? '(SELECT e.position FROM e)' : '(SELECT array_agg(e.position ORDER BY e.position) FROM e)'} AS positions FROM h`;
}

/** Named statements for the fast path, per expectation kind: for one event and for several. */
const FAST_APPEND = Object.fromEntries(
  (['any', 'no_stream', 'stream_exists', 'exact'] as const).map((mode) => {
    const statement = (single: boolean) => ({
      name: `cdp_events_fast5b_${mode}_${single ? 1 : 'n'}`,
      text: fastAppendSql(mode, single),
    });
    return [mode, { one: statement(true), many: statement(false) }];
  }),
) as Record<ExpectedMode, { one: PreparedStatement; many: PreparedStatement }>;

/**
 * What the store needs of a PostgreSQL SqlClient: named (server-side prepared) statements run
 * in one round trip and one transaction, with their rows returned as text, without a row
 * description (`PgSqlClient.preparedRows` and `preparedPipeline`).
 */
interface PreparedRowsClient {
  preparedRows(statement: PreparedStatement, values: readonly SqlValue[]): Promise<TextRows>;
  preparedPipeline(steps: readonly PipelineStep[]): Promise<TextRows[]>;
}

function preparedRowsOf(sql: SqlClient): PreparedRowsClient | undefined {
  if (sql.engine !== 'postgres') return undefined;
  const client = sql as Partial<PreparedRowsClient>;
  return typeof client.preparedRows === 'function' && typeof client.preparedPipeline === 'function'
    ? (sql as unknown as PreparedRowsClient)
    : undefined;
}

/** An int8 / int8[] column's text (rows of `preparedRows`), parsed as the clients' type parsers do. */
const int8 = (text: string | null | undefined) => (text == null ? null : parseInt8(text));
const int8s = (text: string | null | undefined) => (text == null ? null : parseInt8Array(text));

/** A unique violation on the event id: the ids were stored by an earlier (or racing) append. */
function isStoredIdViolation(err: unknown): boolean {
  return (
    err instanceof SqlError &&
    err.sqlState === '23505' &&
    /cdp_events_event_id_key/.test(err.message)
  );
}

const COLUMNS =
  'position, stream_id, version, event_id, type, schema_version, data, metadata, recorded_at';

/**
 * The event store on the SqlClient port: one adapter for PGlite and PostgreSQL.
 *
 * An append is one round trip: autocommitted on PostgreSQL two plain statements in one
 * transaction (`LOCK_STREAM`, then `fastAppendSql`), otherwise
 * `SELECT * FROM cdp_events_append(...)`; the expected-version check, the idempotency check,
 * the positions and the rows happen atomically.
 * Readers of the global log read only rows whose transaction id is below the oldest running
 * transaction (`pg_snapshot_xmin`), and positions are handed out in transaction-id order, so a
 * reader never passes an event that commits later with a lower position.
 */
export class SqlEventStore implements EventStore {
  readonly #sql: SqlClient;
  readonly #clock: Clock;
  readonly #ids: UuidV7Generator;
  readonly #upcasters: Upcasters | undefined;
  readonly #logger: Logger;
  readonly #notify: boolean;
  readonly #stallReportMs: number;
  readonly #notifyIntervalMs: number;
  readonly #prepared: PreparedRowsClient | undefined;
  readonly #appended: Counter<'engine'> | undefined;
  readonly #conflicts: Counter<'engine'> | undefined;
  readonly #heldBackGauge: Gauge<'engine'> | undefined;
  readonly #stalls: Counter<'engine'> | undefined;
  #heldSince: number | undefined;
  #blocker: ReaderBlocker | undefined;
  #lastReport = 0;
  #notifyTimer: NodeJS.Timeout | undefined;
  #notifyAgain = false;
  readonly #subscriberCheckMs: number;
  /** What the last lookup found, and when (Clock ms). */
  #subscribers: { present: boolean; at: number } | undefined;
  #subscriberLookup: Promise<boolean> | undefined;
  #closed = false;

  get schemaFingerprint(): string {
    return this.#upcasters?.fingerprint ?? 'none';
  }

  constructor(sql: SqlClient, options: SqlEventStoreOptions = {}) {
    this.#sql = sql;
    this.#clock = options.clock ?? systemClock;
    this.#ids = new UuidV7Generator(this.#clock);
    this.#upcasters = options.upcasters;
    this.#logger = options.logger ?? silentLogger();
    this.#notify = options.notify ?? true;
    this.#stallReportMs = options.stallReportMs ?? 5000;
    this.#notifyIntervalMs = options.notifyIntervalMs ?? 2;
    this.#subscriberCheckMs = options.subscriberCheckMs ?? 1000;
    this.#prepared = preparedRowsOf(sql);
    const r = options.registry;
    if (r) {
      this.#appended = counter(r, 'cdp_events_appended_total', 'Events appended', ['engine']);
      this.#conflicts = counter(
        r,
        'cdp_events_append_conflicts_total',
        'Appends refused by the expected version',
        ['engine'],
      );
      this.#heldBackGauge = gauge(
        r,
        'cdp_events_readers_held_back_seconds',
        'How long global readers have been held back by an open transaction (0 when not)',
        ['engine'],
      );
      this.#stalls = counter(
        r,
        'cdp_events_reader_stalls_total',
        'Reports of a transaction holding readers back',
        ['engine'],
      );
    }
  }

  /** Apply the module's migrations, then return a store. */
  static async open(sql: SqlClient, options: SqlEventStoreOptions = {}): Promise<SqlEventStore> {
    await migrate(sql, eventStoreMigrations, { logger: options.logger });
    return new SqlEventStore(sql, options);
  }

  get sql(): SqlClient {
    return this.#sql;
  }

  #check(): void {
    if (this.#closed) throw new ClosedError('SqlEventStore');
  }

  async append(
    streamId: string,
    events: readonly NewEvent[],
    options: AppendOptions = {},
  ): Promise<AppendResult> {
    this.#check();
    const expected = normalizeExpected(options.expected);
    const prepared = prepareEvents(
      streamId,
      events,
      options,
      () => this.#ids.next(),
      (t) => this.#upcasters?.currentVersion(t),
    );
    const inTx = options.tx !== undefined;
    if (!inTx && this.#prepared) {
      const fast = await this.#fastAppend(this.#prepared, streamId, expected, prepared);
      if (fast) return fast;
    }
    // Inside a caller's transaction the function looks the ids up first (a unique violation
    // would abort that transaction); autocommitted, a replay surfaces as one, answered below.
    const values = [
      streamId,
      String(expected),
      prepared.map((e) => e.id),
      prepared.map((e) => e.type),
      prepared.map((e) => JSON.stringify(e.data ?? null)),
      prepared.map((e) => JSON.stringify(e.metadata)),
      prepared.map((e) => e.schemaVersion),
      isoTime(this.#clock.now()),
      // Inside a caller's transaction only the server knows when it commits: notify there.
      this.#notify && inTx && this.#maySubscribe(),
      inTx,
    ];
    let row: {
      status: string;
      actual: number | bigint | null;
      stream_version: number | bigint | null;
      positions: (number | bigint | null)[] | null;
    };
    try {
      if (options.tx || !this.#prepared) {
        row = (await (options.tx ?? this.#sql).query<typeof row>(APPEND_SQL, values)).rows[0]!;
      } else {
        const [status, actual, version, positions] = (
          await this.#prepared.preparedRows(APPEND_STATEMENT, values)
        )[0]!;
        row = {
          status: status!,
          actual: int8(actual),
          stream_version: int8(version),
          positions: int8s(positions),
        };
      }
    } catch (err) {
      // Two appends of the same ids raced: the loser finds the winner's rows once it committed.
      if (isStoredIdViolation(err) && !options.tx) return this.#existing(streamId, prepared);
      throw err;
    }
    switch (row.status) {
      case 'ok':
        return this.#stored(streamId, row.stream_version!, row.positions!, !options.tx);
      case 'idempotent': {
        const positions = row.positions!.map(Number);
        return {
          streamId,
          version: Number(row.stream_version),
          position: Math.max(...positions),
          positions,
          idempotent: true,
        };
      }
      case 'conflict': {
        this.#conflicts?.inc({ engine: this.#sql.engine });
        const actual = Number(row.actual);
        throw new ConcurrencyError(
          `stream ${streamId}: expected version ${describeVersion(expected)}, but it is at ${describeVersion(actual)}; reload the stream and decide again`,
          expected,
          actual,
        );
      }
      default:
        throw new EventIdReusedError(
          prepared.map((e) => e.id),
          'by an earlier append to another stream, or only some of them',
        );
    }
  }

  /**
   * The autocommitted append as two SQL statements in one round trip (`LOCK_STREAM`, then
   * `fastAppendSql`). Undefined when they wrote nothing: the expectation did not hold, and the
   * caller asks the append function, which answers replays and reports conflicts.
   */
  async #fastAppend(
    client: PreparedRowsClient,
    streamId: string,
    expected: ExpectedVersion,
    prepared: PreparedEvent[],
  ): Promise<AppendResult | undefined> {
    const single = prepared.length === 1;
    const mode: ExpectedMode = typeof expected === 'number' ? 'exact' : expected;
    const statement = single ? FAST_APPEND[mode].one : FAST_APPEND[mode].many;
    const recordedAt = isoTime(this.#clock.now());
    const values: SqlValue[] = single
      ? [
          streamId,
          prepared[0]!.id,
          prepared[0]!.type,
          JSON.stringify(prepared[0]!.data ?? null),
          JSON.stringify(prepared[0]!.metadata),
          prepared[0]!.schemaVersion,
          recordedAt,
        ]
      : [
          streamId,
          prepared.map((e) => e.id),
          prepared.map((e) => e.type),
          prepared.map((e) => JSON.stringify(e.data ?? null)),
          prepared.map((e) => JSON.stringify(e.metadata)),
          prepared.map((e) => e.schemaVersion),
          recordedAt,
        ];
    if (mode === 'exact') values.push(expected);
    let row: (string | null)[] | undefined;
    try {
      row = (
        await client.preparedPipeline([
          { statement: LOCK_STREAM, values: [streamId] },
          { statement, values },
        ])
      )[1]?.[0];
    } catch (err) {
      if (isStoredIdViolation(err)) return this.#existing(streamId, prepared);
      throw err;
    }
    const head = int8(row?.[0]);
    // One event: its position; several: the array of theirs. None when nothing was written.
    const positions = single ? [int8(row?.[1])] : int8s(row?.[1]);
    if (head === null || positions === null || positions[0] === null) return undefined;
    return this.#stored(streamId, Number(head) + positions.length, positions, true);
  }

  /** The result of an append that wrote its events; `autocommitted` appends wake subscribers. */
  #stored(
    streamId: string,
    version: number | bigint,
    storedPositions: readonly (number | bigint | null)[],
    autocommitted: boolean,
  ): AppendResult {
    const positions = storedPositions.map(Number);
    this.#appended?.inc({ engine: this.#sql.engine }, positions.length);
    if (this.#notify && autocommitted) this.#wakeSubscribers();
    return {
      streamId,
      version: Number(version),
      position: positions.at(-1)!,
      positions,
      idempotent: false,
    };
  }

  /**
   * NOTIFY after an autocommitted append, throttled: the first append after a quiet spell
   * notifies at once, later ones within `notifyIntervalMs` share one NOTIFY at the end of the
   * interval, and at most one is in flight. A NOTIFY inside every append transaction would
   * take PostgreSQL's global notify lock at each commit and serialize concurrent appends; one
   * NOTIFY per append after commit would still cost a statement per append. Subscriptions poll
   * as well, so a lost wake-up only delays them. A NOTIFY-only transaction takes no
   * transaction id and flushes nothing, so the notify-queue lock it holds at commit is brief.
   * Tried and dropped: one append per interval carrying the NOTIFY in its own statement. That
   * append's commit then holds the notify-queue lock through its WAL flush, so carriers of all
   * processes serialize: 4 processes of 8 writers appended 1,084 events/s, against 1,665/s
   * with this separate NOTIFY and 2,007/s with none (2026-12-02).
   */
  #wakeSubscribers(): void {
    if (!this.#maySubscribe()) return;
    if (this.#notifyTimer !== undefined) {
      this.#notifyAgain = true;
      return;
    }
    this.#notifyAgain = false;
    const sent = this.#sql
      .notify(NOTIFY_CHANNEL, '')
      .catch((err: unknown) => this.#logger.debug({ err: String(err) }, 'wake-up notify failed'));
    const timer = setTimeout(() => {
      void sent.finally(() => {
        if (this.#notifyTimer !== timer) return;
        this.#notifyTimer = undefined;
        if (this.#notifyAgain && !this.#closed) this.#wakeSubscribers();
      });
    }, this.#notifyIntervalMs);
    timer.unref();
    this.#notifyTimer = timer;
  }

  /**
   * Whether a subscription may be listening: false only on a recent lookup that found no lease
   * held. Starts a lookup (one at a time, not awaited) when the last one is `subscriberCheckMs`
   * old. Measured on 2026-12-02 (`bench/ab/append-wakeup.ts`): one sequential writer with the
   * NOTIFY every 2 ms ran at 0.61x-0.70x a plain INSERT, without it 0.72x-0.82x, in the same
   * runs; each NOTIFY is one more round trip competing for the same two cores.
   */
  #maySubscribe(): boolean {
    if (this.#subscriberCheckMs <= 0) return true;
    const now = this.#clock.now();
    const known = this.#subscribers;
    if ((!known || now - known.at >= this.#subscriberCheckMs) && !this.#subscriberLookup)
      void this.hasSubscribers();
    return !known || known.present || now - known.at >= 2 * this.#subscriberCheckMs;
  }

  /**
   * Looks whether any subscription holds a lease now (a row of `cdp_event_subscriptions` with
   * an owner; a subscription that crashed keeps counting until another instance takes its lease
   * over) and remembers the answer for the wake-up. A lookup starts after the one in flight, if
   * any, has ended; a failed one counts as "subscribed".
   */
  hasSubscribers(): Promise<boolean> {
    const previous = this.#subscriberLookup;
    const lookup = (async () => {
      await previous;
      const at = this.#clock.now();
      let present = true;
      try {
        const { rows } = await this.#sql.query<{ present: boolean }>(
          'SELECT EXISTS (SELECT 1 FROM cdp_event_subscriptions WHERE owner IS NOT NULL) AS present',
        );
        present = rows[0]?.present !== false;
      } catch (err) {
        this.#logger.debug({ err: String(err) }, 'subscriber lookup failed; waking anyway');
      }
      this.#subscribers = { present, at };
      return present;
    })().finally(() => {
      if (this.#subscriberLookup === lookup) this.#subscriberLookup = undefined;
    });
    this.#subscriberLookup = lookup;
    return lookup;
  }

  async #existing(streamId: string, prepared: PreparedEvent[]): Promise<AppendResult> {
    const { rows } = await this.#sql.query<{
      event_id: string;
      stream_id: string;
      position: number;
      version: number;
    }>(
      'SELECT event_id, stream_id, position, version FROM cdp_events WHERE event_id = ANY ($1::uuid[])',
      [prepared.map((e) => e.id)],
    );
    const byId = new Map(rows.map((r) => [r.event_id, r]));
    const found = prepared.map((e) => byId.get(e.id));
    if (found.some((r) => !r || r.stream_id !== streamId)) {
      throw new EventIdReusedError(
        rows.map((r) => r.event_id),
        'by a concurrent append to another stream, or only some of them',
      );
    }
    const positions = found.map((r) => Number(r!.position));
    return {
      streamId,
      version: Math.max(...found.map((r) => Number(r!.version))),
      position: Math.max(...positions),
      positions,
      idempotent: true,
    };
  }

  #decode(r: EventRow): RecordedEvent {
    return {
      id: r.event_id,
      streamId: r.stream_id,
      version: Number(r.version),
      position: Number(r.position),
      type: r.type,
      data: r.data,
      metadata: r.metadata,
      schemaVersion: r.schema_version,
      storedSchemaVersion: r.schema_version,
      recordedAt: (r.recorded_at instanceof Date
        ? r.recorded_at
        : new Date(r.recorded_at)
      ).getTime(),
    };
  }

  async readStream(streamId: string, options: ReadStreamOptions = {}): Promise<RecordedEvent[]> {
    this.#check();
    assertStreamId(streamId);
    assertReadLimit(options.limit, 'readStream');
    const limit = options.limit ?? null;
    const { rows } =
      options.direction === 'backward'
        ? await this.#sql.query<EventRow>(
            `SELECT ${COLUMNS} FROM cdp_events WHERE stream_id = $1 AND version <= $2 ORDER BY version DESC LIMIT $3`,
            [streamId, options.from ?? Number.MAX_SAFE_INTEGER, limit],
          )
        : await this.#sql.query<EventRow>(
            `SELECT ${COLUMNS} FROM cdp_events WHERE stream_id = $1 AND version >= $2 ORDER BY version LIMIT $3`,
            [streamId, options.from ?? 1, limit],
          );
    return upcastAll(
      rows.map((r) => this.#decode(r)),
      this.#upcasters,
    );
  }

  async readAll(options: ReadAllOptions = {}): Promise<ReadAllResult> {
    this.#check();
    assertReadLimit(options.limit, 'readAll');
    const after = options.after ?? 0;
    const limit = options.limit ?? 1000;
    const types = options.types && options.types.length > 0 ? [...options.types] : null;
    // One statement, one snapshot. Rows whose tx_id is below the snapshot's xmin are final
    // (committed, or rolled back and gone), and tx_id never decreases with the position, so
    // no row below a returned one can still appear. `safe` is the highest final position and
    // `top` the highest committed one: top > safe means an open transaction holds readers back.
    const { rows } = await this.#sql.query<EventRow & { safe: number | null; top: number | null }>(
      `WITH h AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS x),
            s AS (SELECT (SELECT e.position FROM cdp_events e, h WHERE e.tx_id < h.x ORDER BY e.position DESC LIMIT 1) AS safe,
                         (SELECT max(position) FROM cdp_events) AS top)
       SELECT s.safe, s.top, b.* FROM s LEFT JOIN LATERAL (
         SELECT ${COLUMNS} FROM cdp_events e, h
          WHERE e.position > $1 AND e.tx_id < h.x${types ? ' AND e.type = ANY ($3::text[])' : ''}
          ORDER BY e.position LIMIT $2) b ON true
       ORDER BY b.position`,
      types ? [after, limit, types] : [after, limit],
    );
    const first = rows[0];
    const safe = first?.safe === null || first?.safe === undefined ? 0 : Number(first.safe);
    const top = first?.top === null || first?.top === undefined ? 0 : Number(first.top);
    const events = rows.filter((r) => r.position !== null).map((r) => this.#decode(r));
    // A full batch may stop short of the horizon; otherwise everything up to it was read.
    const next = events.length === limit ? events.at(-1)!.position : Math.max(after, safe);
    await this.#observeHeldBack(top > safe);
    return { events: upcastAll(events, this.#upcasters), next };
  }

  /**
   * Hold every append of this database off until `tx` ends: waits for the appends in flight to
   * commit or roll back (each holds the append gate shared until it ends), then keeps new ones
   * waiting at their first step. For a short critical section that needs the log to stand still,
   * e.g. swapping in the rebuilt tables of an inline projection; appends resume when `tx` ends.
   */
  async lockAppends(tx: SqlTransaction): Promise<void> {
    this.#check();
    await tx.query('SELECT pg_advisory_xact_lock($1, $2)', [LOCK_CLASS, APPEND_GATE]);
  }

  /**
   * Read the global log in `tx` with no reader horizon: every event committed so far, in
   * position order. Complete only while no append can be in flight, i.e. inside `tx` after
   * `lockAppends(tx)`; anywhere else use `readAll`, which never passes an event that may still
   * commit.
   */
  async readCommitted(tx: SqlTransaction, options: ReadAllOptions = {}): Promise<ReadAllResult> {
    this.#check();
    assertReadLimit(options.limit, 'readCommitted');
    const after = options.after ?? 0;
    const limit = options.limit ?? 1000;
    const types = options.types && options.types.length > 0 ? [...options.types] : null;
    const { rows } = await tx.query<EventRow>(
      `SELECT ${COLUMNS} FROM cdp_events e WHERE e.position > $1${types ? ' AND e.type = ANY ($3::text[])' : ''}
        ORDER BY e.position LIMIT $2`,
      types ? [after, limit, types] : [after, limit],
    );
    const events = rows.map((r) => this.#decode(r));
    const next = events.length > 0 ? events.at(-1)!.position : after;
    return { events: upcastAll(events, this.#upcasters), next };
  }

  async #observeHeldBack(heldBack: boolean): Promise<void> {
    const engine = this.#sql.engine;
    if (!heldBack) {
      if (this.#heldSince !== undefined) {
        this.#logger.info(
          { heldMs: this.#clock.now() - this.#heldSince },
          'event readers no longer held back',
        );
      }
      this.#heldSince = undefined;
      this.#blocker = undefined;
      this.#heldBackGauge?.set({ engine }, 0);
      return;
    }
    const now = this.#clock.now();
    this.#heldSince ??= now;
    const heldMs = now - this.#heldSince;
    this.#heldBackGauge?.set({ engine }, heldMs / 1000);
    if (heldMs >= this.#stallReportMs && now - this.#lastReport >= this.#stallReportMs) {
      this.#lastReport = now;
      this.#blocker = await this.#findBlocker().catch(() => undefined);
      this.#stalls?.inc({ engine });
      this.#logger.warn(
        { heldMs, blocker: this.#blocker },
        `event readers held back for ${Math.round(heldMs)} ms by an open transaction${
          this.#blocker
            ? ` (pid ${this.#blocker.pid}, open ${this.#blocker.ageSeconds.toFixed(1)} s, ${this.#blocker.state})`
            : ''
        }: it is waited for, never skipped; end it, or set idle_in_transaction_session_timeout`,
      );
    }
  }

  async #findBlocker(): Promise<ReaderBlocker | undefined> {
    if (this.#sql.engine !== 'postgres') return undefined;
    const { rows } = await this.#sql.query<{
      pid: number;
      datname: string | null;
      state: string | null;
      age: number | null;
      query: string | null;
    }>(
      `SELECT pid, datname, state, extract(epoch FROM now() - xact_start)::float8 AS age, left(query, 200) AS query
         FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()
         ORDER BY age(backend_xid) DESC LIMIT 1`,
    );
    const r = rows[0];
    return r
      ? {
          pid: r.pid,
          database: r.datname,
          state: r.state,
          ageSeconds: Number(r.age ?? 0),
          query: r.query,
        }
      : undefined;
  }

  /** Whether global readers are held back now, and by whom (updated by readAll). */
  readerStatus(): ReaderStatus {
    return {
      heldBack: this.#heldSince !== undefined,
      heldSince: this.#heldSince,
      blocker: this.#blocker,
    };
  }

  async streamVersion(streamId: string): Promise<number> {
    this.#check();
    const { rows } = await this.#sql.query<{ version: number }>(LAST_VERSION_SQL, [streamId]);
    return rows[0] ? Number(rows[0].version) : 0;
  }

  async saveSnapshot(snapshot: Omit<Snapshot, 'takenAt'>, tx?: SqlTransaction): Promise<void> {
    this.#check();
    assertStreamId(snapshot.streamId);
    await (tx ?? this.#sql).query(
      `INSERT INTO cdp_event_snapshots (stream_id, key, version, state, taken_at) VALUES ($1, $2, $3, $4::jsonb, $5)
         ON CONFLICT (stream_id, key) DO UPDATE SET version = excluded.version, state = excluded.state, taken_at = excluded.taken_at
         WHERE cdp_event_snapshots.version < excluded.version`,
      [
        snapshot.streamId,
        snapshot.key,
        snapshot.version,
        JSON.stringify(snapshot.state),
        new Date(this.#clock.now()),
      ],
    );
  }

  async loadSnapshot<S>(streamId: string, key: string): Promise<Snapshot<S> | undefined> {
    this.#check();
    const { rows } = await this.#sql.query<{ version: number; state: S; taken_at: Date | string }>(
      'SELECT version, state, taken_at FROM cdp_event_snapshots WHERE stream_id = $1 AND key = $2',
      [streamId, key],
    );
    const r = rows[0];
    if (!r) return undefined;
    return {
      streamId,
      key,
      version: Number(r.version),
      state: r.state,
      takenAt: new Date(r.taken_at).getTime(),
    };
  }

  /** Does not close the SqlClient: its owner does. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#notifyTimer !== undefined) clearTimeout(this.#notifyTimer);
    this.#notifyTimer = undefined;
  }
}
