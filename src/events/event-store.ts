import { CdpError } from '../core/errors.js';
import type { SqlTransaction } from '../engines/sql/sql-client.js';

/**
 * The event store port: append-only streams with a per-stream version and a global position.
 *
 * - Stream versions count from 1 (the first event of a stream has version 1); a stream with no
 *   events does not exist.
 * - Global positions increase in the order events become visible to readers of the global log:
 *   a reader that has seen position p will never later find a committed event below p.
 *   Positions may have gaps (rolled-back appends), never reorderings.
 * - Events are immutable: there is no update or delete; append a compensating event instead.
 */

/** What the caller expects of the stream before the append. */
export type ExpectedVersion =
  /** No check. */
  | 'any'
  /** The stream must not exist yet (same as the number 0). */
  | 'no_stream'
  /** The stream must have at least one event. */
  | 'stream_exists'
  /** The stream's current version (its last event's version); 0 means no stream. */
  | number;

export interface EventMetadata {
  correlationId?: string | undefined;
  causationId?: string | undefined;
  /** Anything else JSON-serializable the caller wants kept with the event. */
  [key: string]: unknown;
}

/** An event to append. */
export interface NewEvent<T extends string = string, D = unknown> {
  type: T;
  data: D;
  /** Unique id (UUID); generated when absent. Re-appending the same ids is idempotent. */
  id?: string;
  metadata?: EventMetadata;
  /** The schema version of `data`; default: the current version known to the upcasters, or 1. */
  schemaVersion?: number;
}

/** An event as read back. */
export interface RecordedEvent<T extends string = string, D = unknown> {
  id: string;
  streamId: string;
  /** Version within the stream, from 1. */
  version: number;
  /** Global position. */
  position: number;
  type: T;
  data: D;
  metadata: EventMetadata;
  /** The schema version after upcasting (the stored one is `storedSchemaVersion`). */
  schemaVersion: number;
  storedSchemaVersion: number;
  /** Milliseconds since the epoch, from the store's Clock at append time. */
  recordedAt: number;
}

export interface AppendOptions {
  expected?: ExpectedVersion;
  /** Default metadata for every event of this append (per-event metadata wins). */
  metadata?: EventMetadata;
  /**
   * SQL stores only: append inside this transaction (inline projections write in the same
   * transaction). The append is then visible when that transaction commits.
   */
  tx?: SqlTransaction;
}

export interface AppendResult {
  streamId: string;
  /** Version of the stream after the append (its last event's version). */
  version: number;
  /** Global position of the last event appended: the consistency token for queries. */
  position: number;
  /** Positions of the events, in append order. */
  positions: number[];
  /** True when every event id was already stored: nothing new was written. */
  idempotent: boolean;
}

export interface ReadStreamOptions {
  /** 'forward' (default) or 'backward'. */
  direction?: 'forward' | 'backward';
  /**
   * Forward: first version to return (default 1). Backward: last version to return (default:
   * the stream's current version).
   */
  from?: number;
  /** At most this many events. Default: all. */
  limit?: number;
}

export interface ReadAllOptions {
  /** Return events after this position (exclusive). Default 0: from the start. */
  after?: number;
  /** Batch size. Default 1000. */
  limit?: number;
  /** Only these event types. */
  types?: readonly string[];
}

export interface ReadAllResult {
  events: RecordedEvent[];
  /**
   * Where the next batch starts (pass as `after`). It may exceed the last event's position
   * when trailing positions were rolled back; it never passes an event that may still commit.
   */
  next: number;
}

export interface Snapshot<S = unknown> {
  streamId: string;
  /** Identifies the code that produced the state: aggregate name, evolve version, upcasters. */
  key: string;
  /** The stream version folded into `state`. */
  version: number;
  state: S;
  takenAt: number;
}

export interface EventStore {
  /** Identifies the upcasters this store reads with ('none' without): part of snapshot keys. */
  readonly schemaFingerprint: string;
  append(
    streamId: string,
    events: readonly NewEvent[],
    options?: AppendOptions,
  ): Promise<AppendResult>;
  readStream(streamId: string, options?: ReadStreamOptions): Promise<RecordedEvent[]>;
  /** The global log in batches, in position order, never skipping an event that commits late. */
  readAll(options?: ReadAllOptions): Promise<ReadAllResult>;
  /** The stream's current version, 0 when it does not exist. */
  streamVersion(streamId: string): Promise<number>;
  saveSnapshot(snapshot: Omit<Snapshot, 'takenAt'>, tx?: SqlTransaction): Promise<void>;
  loadSnapshot<S = unknown>(streamId: string, key: string): Promise<Snapshot<S> | undefined>;
  /**
   * Optional capability, present on stores that can append inside a caller's SQL transaction
   * (`AppendOptions.tx`): runs `fn` in a transaction of the store's database, committed when
   * it resolves and rolled back when it throws. What `fn` writes with `tx` (an inline
   * projection's rows) commits or rolls back with the events appended with `{ tx }`. Absent on
   * stores without SQL transactions (the in-memory store).
   */
  transaction?<T>(fn: (tx: SqlTransaction) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export class EventStoreError extends CdpError {}

/** An event whose type or schema version this code cannot turn into the current shape. */
export class UnknownEventError extends CdpError {
  readonly eventType: string;
  readonly schemaVersion: number;
  readonly streamId: string;
  readonly version: number;
  readonly position: number;
  /** The events of the read before this one, already upcast: the stream up to there. */
  readonly readSoFar: RecordedEvent[];
  constructor(
    event: {
      type: string;
      schemaVersion: number;
      streamId: string;
      version: number;
      position: number;
    },
    reason: string,
    readSoFar: RecordedEvent[],
  ) {
    super(
      'EVENT_UNKNOWN',
      `cannot read event "${event.type}" schema version ${event.schemaVersion} (stream ${event.streamId} version ${event.version}, position ${event.position}): ${reason}. ` +
        'Register the type and an upcaster for this version, or read the stream up to the version before it.',
    );
    this.eventType = event.type;
    this.schemaVersion = event.schemaVersion;
    this.streamId = event.streamId;
    this.version = event.version;
    this.position = event.position;
    this.readSoFar = readSoFar;
  }
}

/** Some, not all, of the ids of an append are already stored (or stored in another stream). */
export class EventIdReusedError extends CdpError {
  readonly ids: string[];
  constructor(ids: string[], detail: string) {
    super(
      'EVENT_ID_REUSED',
      `event id(s) ${ids.slice(0, 5).join(', ')} already stored ${detail}; a retry must send exactly the same events to the same stream, new events need new ids`,
    );
    this.ids = ids;
  }
}
