import type { Logger } from 'pino';
import type { Counter, Registry } from 'prom-client';
import { type Clock, isoTime, systemClock } from '../core/clock.js';
import { ClosedError, ConcurrencyError } from '../core/errors.js';
import { UuidV7Generator } from '../core/ids.js';
import { silentLogger } from '../core/logger.js';
import { counter } from '../core/metrics.js';
import { parseInt8, parseInt8Array } from '../engines/sql/internal/int8.js';
import { migrate } from '../engines/sql/migrations.js';
import {
  type PipelineStep,
  type PreparedStatement,
  type SqlClient,
  SqlError,
  type SqlTransaction,
  type SqlValue,
  type TextRows,
} from '../engines/sql/sql-client.js';
import {
  type AppendOptions,
  type AppendResult,
  EventIdReusedError,
  type EventStore,
  type ExpectedVersion,
  type NewEvent,
  type ReadAllOptions,
  type ReadAllResult,
  type ReadStreamOptions,
  type RecordedEvent,
  type Snapshot,
} from './event-store.js';
import { APPEND_GATE, LOCK_CLASS } from './internal/advisory-locks.js';
import {
  assertReadLimit,
  assertStreamId,
  describeVersion,
  normalizeExpected,
  type PreparedEvent,
  prepareEvents,
} from './internal/append-input.js';
import { ReaderStallMonitor, type ReaderStatus } from './internal/reader-stall-monitor.js';
import {
  APPEND_SQL,
  APPEND_STATEMENT,
  EVENT_COLUMNS,
  type ExpectedMode,
  FAST_APPEND,
  LAST_VERSION_SQL,
  LOCK_STREAM,
} from './internal/statements.js';
import { AppendWakeUp } from './internal/wake-up.js';
import { eventStoreMigrations } from './sql-event-store-migrations.js';
import { type Upcasters, upcastAll } from './upcasters.js';

export type { ReaderBlocker, ReaderStatus } from './internal/reader-stall-monitor.js';

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

/** What the store needs of a SqlClient for its fast path: both prepared-statement capabilities. */
interface PreparedRowsClient {
  preparedRows(statement: PreparedStatement, values: readonly SqlValue[]): Promise<TextRows>;
  preparedPipeline(steps: readonly PipelineStep[]): Promise<TextRows[]>;
}

/** The client's prepared-statement capabilities, when it has both (PostgreSQL's adapter does). */
function preparedRowsOf(sql: SqlClient): PreparedRowsClient | undefined {
  const { preparedRows, preparedPipeline } = sql;
  if (!preparedRows || !preparedPipeline) return undefined;
  return {
    preparedRows: preparedRows.bind(sql),
    preparedPipeline: preparedPipeline.bind(sql),
  };
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
  readonly #prepared: PreparedRowsClient | undefined;
  readonly #wakeUp: AppendWakeUp;
  readonly #stallMonitor: ReaderStallMonitor;
  readonly #appended: Counter<'engine'> | undefined;
  readonly #conflicts: Counter<'engine'> | undefined;
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
    this.#prepared = preparedRowsOf(sql);
    this.#wakeUp = new AppendWakeUp(sql, {
      clock: this.#clock,
      logger: this.#logger,
      intervalMs: options.notifyIntervalMs ?? 2,
      subscriberCheckMs: options.subscriberCheckMs ?? 1000,
    });
    this.#stallMonitor = new ReaderStallMonitor(sql, {
      clock: this.#clock,
      logger: this.#logger,
      registry: options.registry,
      stallReportMs: options.stallReportMs ?? 5000,
    });
    const r = options.registry;
    if (r) {
      this.#appended = counter(r, 'cdp_events_appended_total', 'Events appended', ['engine']);
      this.#conflicts = counter(
        r,
        'cdp_events_append_conflicts_total',
        'Appends refused by the expected version',
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

  /**
   * Runs `fn` in a transaction of the store's database (see `EventStore.transaction`): appends
   * with `{ tx }` inside it commit or roll back with what `fn` writes.
   */
  transaction<T>(fn: (tx: SqlTransaction) => Promise<T>): Promise<T> {
    this.#check();
    return this.#sql.transaction(fn);
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
      this.#notify && inTx && this.#wakeUp.maySubscribe(),
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
    if (this.#notify && autocommitted) this.#wakeUp.wake();
    return {
      streamId,
      version: Number(version),
      position: positions.at(-1)!,
      positions,
      idempotent: false,
    };
  }

  /**
   * Looks whether any subscription holds a lease now, and remembers the answer for the
   * wake-ups: appends notify subscribers only while one may be listening.
   */
  hasSubscribers(): Promise<boolean> {
    return this.#wakeUp.lookUpSubscribers();
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
            `SELECT ${EVENT_COLUMNS} FROM cdp_events WHERE stream_id = $1 AND version <= $2 ORDER BY version DESC LIMIT $3`,
            [streamId, options.from ?? Number.MAX_SAFE_INTEGER, limit],
          )
        : await this.#sql.query<EventRow>(
            `SELECT ${EVENT_COLUMNS} FROM cdp_events WHERE stream_id = $1 AND version >= $2 ORDER BY version LIMIT $3`,
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
         SELECT ${EVENT_COLUMNS} FROM cdp_events e, h
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
    await this.#stallMonitor.observe(top > safe);
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
      `SELECT ${EVENT_COLUMNS} FROM cdp_events e WHERE e.position > $1${types ? ' AND e.type = ANY ($3::text[])' : ''}
        ORDER BY e.position LIMIT $2`,
      types ? [after, limit, types] : [after, limit],
    );
    const events = rows.map((r) => this.#decode(r));
    const next = events.length > 0 ? events.at(-1)!.position : after;
    return { events: upcastAll(events, this.#upcasters), next };
  }

  /** Whether global readers are held back now, and by whom (updated by readAll). */
  readerStatus(): ReaderStatus {
    return this.#stallMonitor.status();
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
    this.#wakeUp.close();
  }
}
