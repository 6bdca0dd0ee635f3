import { CdpError, ValidationError } from '../core/errors.js';
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

// ---------------------------------------------------------------------------------------------
// Shared by the adapters: validation before any transaction, and expected-version helpers.

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// No whitespace (which also excludes the control characters PostgreSQL text refuses).
const STREAM_RE = /^\S{1,200}$/;

/**
 * What keeps `value` from surviving JSON unchanged, or undefined. The path to the offending
 * value is built only when there is one (`at` collects its steps, innermost first), so the
 * common case allocates only `inside`, the objects the walk is in (to find cycles).
 */
function jsonProblem(value: unknown, inside: object[], at: string[]): string | undefined {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return undefined;
    case 'number':
      return Number.isFinite(value) ? undefined : `is ${value}, which JSON cannot hold`;
    case 'object': {
      if (value === null) return undefined;
      if (inside.includes(value)) return 'refers back to itself (a cycle)';
      if (Array.isArray(value)) {
        inside.push(value);
        for (let i = 0; i < value.length; i++) {
          const p = jsonProblem(value[i], inside, at);
          if (p) {
            at.push(`[${i}]`);
            return p;
          }
        }
        inside.pop();
        return undefined;
      }
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) {
        const name = (value as object).constructor?.name ?? 'object';
        return `is a ${name}, not a plain object (convert it, e.g. a Date to an ISO string)`;
      }
      inside.push(value);
      const keys = Object.keys(value);
      for (let i = 0; i < keys.length; i++) {
        const k = keys[i]!;
        const p = jsonProblem((value as Record<string, unknown>)[k], inside, at);
        if (p) {
          at.push(`.${k}`);
          return p;
        }
      }
      inside.pop();
      return undefined;
    }
    default:
      return `is a ${typeof value}, which JSON cannot hold`;
  }
}

/** Throws ValidationError when `value` would not survive JSON unchanged. */
export function assertJson(value: unknown, path: string): void {
  checkJson(value, () => path);
}

/** `assertJson` with the path made only for the message. */
function checkJson(value: unknown, path: () => string): void {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return;
  const at: string[] = [];
  const problem = jsonProblem(value, [], at);
  if (problem) {
    const where = path() + at.reverse().join('');
    const message = `${where} ${problem}`;
    throw new ValidationError(`event data is not JSON-serializable: ${message}`, [
      { path: where, message },
    ]);
  }
}

export function assertStreamId(streamId: string): void {
  if (typeof streamId !== 'string' || !STREAM_RE.test(streamId)) {
    throw new ValidationError(
      `invalid stream id ${JSON.stringify(streamId)}: use 1 to 200 characters without spaces`,
      [{ path: 'streamId', message: 'invalid' }],
    );
  }
}

export function normalizeExpected(expected: ExpectedVersion | undefined): ExpectedVersion {
  const e = expected ?? 'any';
  if (e === 'any' || e === 'no_stream' || e === 'stream_exists') return e;
  if (typeof e === 'number' && Number.isSafeInteger(e) && e >= 0) return e === 0 ? 'no_stream' : e;
  throw new ValidationError(
    `invalid expected version ${JSON.stringify(e)}: use 'any', 'no_stream', 'stream_exists' or a whole number >= 0`,
    [{ path: 'expected', message: 'invalid' }],
  );
}

/** Describes a version for messages: 0 is "no stream". */
export function describeVersion(v: ExpectedVersion): string {
  return v === 0 || v === 'no_stream' ? 'no stream' : String(v);
}

export interface PreparedEvent {
  id: string;
  type: string;
  data: unknown;
  metadata: EventMetadata;
  schemaVersion: number;
}

/** Validate and complete an append's events; throws before anything touches the engine. */
export function prepareEvents(
  streamId: string,
  events: readonly NewEvent[],
  options: AppendOptions | undefined,
  newId: () => string,
  currentVersion: (type: string) => number | undefined,
): PreparedEvent[] {
  assertStreamId(streamId);
  if (!Array.isArray(events) || events.length === 0) {
    throw new ValidationError('append needs at least one event', [
      { path: 'events', message: 'empty' },
    ]);
  }
  if (events.length > 10_000) {
    throw new ValidationError(
      `append of ${events.length} events: split it into appends of at most 10,000`,
    );
  }
  // Ids made here are UUIDs, lower case and unique; only given ones need the checks.
  const ids = events.length > 1 ? new Set<string>() : undefined;
  const prepared: PreparedEvent[] = new Array(events.length);
  for (let i = 0; i < events.length; i++) {
    const e = events[i];
    if (!e || typeof e.type !== 'string' || e.type.length === 0 || e.type.length > 200) {
      throw new ValidationError(
        `events[${i}].type must be a non-empty string of at most 200 characters`,
        [{ path: `events[${i}].type`, message: 'invalid' }],
      );
    }
    checkJson(e.data, () => `events[${i}].data`);
    let metadata: EventMetadata = {};
    if (options?.metadata !== undefined || e.metadata !== undefined) {
      metadata = { ...options?.metadata, ...e.metadata };
      checkJson(metadata, () => `events[${i}].metadata`);
    }
    let id: string;
    if (e.id == null) {
      id = newId();
    } else {
      if (typeof e.id !== 'string' || !UUID_RE.test(e.id)) {
        throw new ValidationError(`events[${i}].id ${JSON.stringify(e.id)} is not a UUID`, [
          { path: `events[${i}].id`, message: 'not a UUID' },
        ]);
      }
      id = e.id.toLowerCase();
    }
    if (ids) {
      if (ids.has(id))
        throw new ValidationError(`events[${i}].id ${id} appears twice in one append`);
      ids.add(id);
    }
    const schemaVersion = e.schemaVersion ?? currentVersion(e.type) ?? 1;
    if (!Number.isInteger(schemaVersion) || schemaVersion < 1) {
      throw new ValidationError(`events[${i}].schemaVersion must be a whole number >= 1`);
    }
    prepared[i] = { id, type: e.type, data: e.data, metadata, schemaVersion };
  }
  return prepared;
}

export function assertReadLimit(limit: number | undefined, what: string): void {
  if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 1)) {
    throw new ValidationError(`${what}: limit must be a whole number >= 1, got ${limit}`);
  }
}
