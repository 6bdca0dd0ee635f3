import { type Clock, systemClock } from '../core/clock.js';
import { ClosedError, ConcurrencyError, ValidationError } from '../core/errors.js';
import { UuidV7Generator } from '../core/ids.js';
import {
  type AppendOptions,
  type AppendResult,
  EventIdReusedError,
  type EventStore,
  type NewEvent,
  type ReadAllOptions,
  type ReadAllResult,
  type ReadStreamOptions,
  type RecordedEvent,
  type Snapshot,
} from './event-store.js';
import {
  assertReadLimit,
  assertStreamId,
  describeVersion,
  normalizeExpected,
  prepareEvents,
} from './internal/append-input.js';
import { type Upcasters, upcastAll } from './upcasters.js';

export interface MemoryEventStoreOptions {
  clock?: Clock;
  upcasters?: Upcasters;
  /** Share the events of this other store (another clock or upcasters over the same data). */
  shareWith?: MemoryEventStore;
}

interface MemoryState {
  log: RecordedEvent[];
  streams: Map<string, RecordedEvent[]>;
  byId: Map<string, RecordedEvent>;
  snapshots: Map<string, Snapshot>;
}

/**
 * The event store in process memory: the reference model of the contract (tests, demos, a
 * single process that may lose its events on exit). An append is synchronous inside, so it is
 * atomic and positions are visible in order by construction.
 */
export class MemoryEventStore implements EventStore {
  readonly #clock: Clock;
  readonly #ids: UuidV7Generator;
  readonly #upcasters: Upcasters | undefined;
  readonly #state: MemoryState;
  #closed = false;

  get schemaFingerprint(): string {
    return this.#upcasters?.fingerprint ?? 'none';
  }

  constructor(options: MemoryEventStoreOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#ids = new UuidV7Generator(this.#clock);
    this.#upcasters = options.upcasters;
    this.#state = options.shareWith
      ? options.shareWith.#state
      : { log: [], streams: new Map(), byId: new Map(), snapshots: new Map() };
  }

  #check(): void {
    if (this.#closed) throw new ClosedError('MemoryEventStore');
  }

  async append(
    streamId: string,
    events: readonly NewEvent[],
    options: AppendOptions = {},
  ): Promise<AppendResult> {
    this.#check();
    if (options.tx)
      throw new ValidationError(
        'MemoryEventStore cannot append inside a SQL transaction; use SqlEventStore',
      );
    const expected = normalizeExpected(options.expected);
    const prepared = prepareEvents(
      streamId,
      events,
      options,
      () => this.#ids.next(),
      (t) => this.#upcasters?.currentVersion(t),
    );
    const stream = this.#state.streams.get(streamId);
    const existing = prepared.map((e) => this.#state.byId.get(e.id));
    const found = existing.filter((e) => e !== undefined);
    if (found.length > 0) {
      if (found.length === prepared.length && found.every((e) => e.streamId === streamId)) {
        const positions = found.map((e) => e.position);
        return {
          streamId,
          version: Math.max(...found.map((e) => e.version)),
          position: Math.max(...positions),
          positions,
          idempotent: true,
        };
      }
      throw new EventIdReusedError(
        found.map((e) => e.id),
        found.length === prepared.length
          ? 'in another stream'
          : 'by an earlier append (only some of them)',
      );
    }
    const actual = stream?.length ?? 0;
    const ok =
      expected === 'any' ||
      (expected === 'no_stream' && actual === 0) ||
      (expected === 'stream_exists' && actual > 0) ||
      expected === actual;
    if (!ok) {
      throw new ConcurrencyError(
        `stream ${streamId}: expected version ${describeVersion(expected)}, but it is at ${describeVersion(actual)}; reload the stream and decide again`,
        expected,
        actual,
      );
    }
    const recordedAt = this.#clock.now();
    const list = stream ?? [];
    const positions: number[] = [];
    for (const e of prepared) {
      const rec: RecordedEvent = {
        id: e.id,
        streamId,
        version: list.length + 1,
        position: this.#state.log.length + 1,
        type: e.type,
        data: JSON.parse(JSON.stringify(e.data ?? null)),
        metadata: JSON.parse(JSON.stringify(e.metadata)),
        schemaVersion: e.schemaVersion,
        storedSchemaVersion: e.schemaVersion,
        recordedAt,
      };
      list.push(rec);
      this.#state.log.push(rec);
      this.#state.byId.set(rec.id, rec);
      positions.push(rec.position);
    }
    this.#state.streams.set(streamId, list);
    return {
      streamId,
      version: list.length,
      position: positions.at(-1)!,
      positions,
      idempotent: false,
    };
  }

  async readStream(streamId: string, options: ReadStreamOptions = {}): Promise<RecordedEvent[]> {
    this.#check();
    assertStreamId(streamId);
    assertReadLimit(options.limit, 'readStream');
    const list = this.#state.streams.get(streamId) ?? [];
    const limit = options.limit ?? Number.MAX_SAFE_INTEGER;
    let slice: RecordedEvent[];
    if (options.direction === 'backward') {
      const from = Math.min(options.from ?? list.length, list.length);
      slice = list.slice(Math.max(0, from - limit), Math.max(0, from)).reverse();
    } else {
      const from = Math.max(1, options.from ?? 1);
      slice = list.slice(from - 1, from - 1 + limit);
    }
    return upcastAll(slice.map(copy), this.#upcasters);
  }

  async readAll(options: ReadAllOptions = {}): Promise<ReadAllResult> {
    this.#check();
    assertReadLimit(options.limit, 'readAll');
    const after = options.after ?? 0;
    const limit = options.limit ?? 1000;
    const types = options.types ? new Set(options.types) : undefined;
    const events: RecordedEvent[] = [];
    let next = after;
    for (let i = after; i < this.#state.log.length && events.length < limit; i++) {
      const e = this.#state.log[i]!;
      next = e.position;
      if (!types || types.has(e.type)) events.push(copy(e));
    }
    return { events: upcastAll(events, this.#upcasters), next };
  }

  async streamVersion(streamId: string): Promise<number> {
    this.#check();
    return this.#state.streams.get(streamId)?.length ?? 0;
  }

  async saveSnapshot(snapshot: Omit<Snapshot, 'takenAt'>): Promise<void> {
    this.#check();
    assertStreamId(snapshot.streamId);
    const k = `${snapshot.streamId}\u0000${snapshot.key}`;
    const prev = this.#state.snapshots.get(k);
    if (prev && prev.version >= snapshot.version) return;
    this.#state.snapshots.set(k, {
      ...JSON.parse(JSON.stringify(snapshot)),
      takenAt: this.#clock.now(),
    });
  }

  async loadSnapshot<S>(streamId: string, key: string): Promise<Snapshot<S> | undefined> {
    this.#check();
    const s = this.#state.snapshots.get(`${streamId}\u0000${key}`);
    return s ? (JSON.parse(JSON.stringify(s)) as Snapshot<S>) : undefined;
  }

  /** The highest position appended. */
  get lastPosition(): number {
    return this.#state.log.length;
  }

  async close(): Promise<void> {
    this.#closed = true;
  }
}

function copy(e: RecordedEvent): RecordedEvent {
  return { ...e, data: JSON.parse(JSON.stringify(e.data)), metadata: { ...e.metadata } };
}
