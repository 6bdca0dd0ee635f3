import type { Logger } from 'pino';
import type { Counter, Registry } from 'prom-client';
import { type Clock, systemClock } from '../core/clock.js';
import { ConcurrencyError, errorMessage, ValidationError } from '../core/errors.js';
import { UuidV7Generator } from '../core/ids.js';
import { silentLogger } from '../core/logger.js';
import { counter } from '../core/metrics.js';
import { backoffDelay } from '../core/retry.js';
import type { EventMetadata, EventStore, RecordedEvent } from '../events/index.js';
import { type Decider, type DomainEvent, fold } from './decider.js';
import type { SqlProjection } from './projection.js';

export interface CommandHandlerOptions<C, E extends DomainEvent, S> {
  store: EventStore;
  decider: Decider<C, E, S>;
  /** The stream a command acts on, e.g. `course-${c.courseId}`. */
  streamId: (command: C) => string;
  /** Save a snapshot each time the stream passes a multiple of this many events. Default: never. */
  snapshotEvery?: number;
  /** Attempts when another writer appended first (reload, decide again). Default 5. */
  maxAttempts?: number;
  /**
   * Projections applied in the append's own transaction: the store needs the `transaction`
   * capability (`SqlEventStore` has it, `MemoryEventStore` has not).
   */
  inline?: readonly SqlProjection[];
  clock?: Clock;
  logger?: Logger;
  registry?: Registry;
}

export interface CommandResult<E, S> {
  streamId: string;
  events: E[];
  /** Stream version after the command. */
  version: number;
  /**
   * Consistency token: the global position of the last event appended (0 when the command
   * decided nothing). Pass it to a query to read your own write.
   */
  position: number;
  state: S;
  /** Attempts used (more than 1 when another writer won a race). */
  attempts: number;
}

export interface LoadedState<S> {
  state: S;
  version: number;
  /** Version the snapshot covered (0 without one) and events read after it. */
  snapshotVersion: number;
  eventsRead: number;
}

/**
 * Loads the aggregate (snapshot + the events after it), decides, appends with the loaded
 * version as expected version, and on a conflict reloads and decides again.
 */
export class CommandHandler<C, E extends DomainEvent, S> {
  readonly #o: CommandHandlerOptions<C, E, S>;
  readonly #clock: Clock;
  readonly #ids: UuidV7Generator;
  readonly #logger: Logger;
  readonly #retries: Counter<'aggregate'> | undefined;

  constructor(options: CommandHandlerOptions<C, E, S>) {
    if (options.inline?.length && typeof options.store.transaction !== 'function') {
      throw new ValidationError(
        'inline projections need an event store that appends inside a SQL transaction (one with transaction(), such as SqlEventStore): they write in the append transaction',
      );
    }
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
    this.#ids = new UuidV7Generator(this.#clock);
    this.#logger = options.logger ?? silentLogger();
    if (options.registry) {
      this.#retries = counter(
        options.registry,
        'cdp_cqrs_command_retries_total',
        'Commands decided again after a conflict',
        ['aggregate'],
      );
    }
  }

  get snapshotKey(): string {
    return `${this.#o.decider.name}:v${this.#o.decider.version}:${this.#o.store.schemaFingerprint}`;
  }

  /** The current state of a stream: its snapshot (when valid) plus the events after it. */
  async load(streamId: string): Promise<LoadedState<S>> {
    const { decider, store } = this.#o;
    const snap = this.#o.snapshotEvery
      ? await store.loadSnapshot<S>(streamId, this.snapshotKey)
      : undefined;
    const base = snap ? snap.state : decider.initialState();
    const from = snap ? snap.version + 1 : 1;
    const tail = await store.readStream(streamId, { from });
    const state = fold(decider, base, tail as unknown as E[]);
    return {
      state,
      version: tail.at(-1)?.version ?? snap?.version ?? 0,
      snapshotVersion: snap?.version ?? 0,
      eventsRead: tail.length,
    };
  }

  /** Save a snapshot of the stream now. */
  async snapshot(streamId: string): Promise<void> {
    const loaded = await this.load(streamId);
    if (loaded.version === 0) return;
    await this.#o.store.saveSnapshot({
      streamId,
      key: this.snapshotKey,
      version: loaded.version,
      state: loaded.state,
    });
  }

  async handle(
    command: C,
    options: { metadata?: EventMetadata } = {},
  ): Promise<CommandResult<E, S>> {
    const { decider } = this.#o;
    const streamId = this.#o.streamId(command);
    const maxAttempts = this.#o.maxAttempts ?? 5;
    for (let attempt = 1; ; attempt++) {
      const loaded = await this.load(streamId);
      const events = decider.decide(command, loaded.state);
      if (events.length === 0) {
        return {
          streamId,
          events,
          version: loaded.version,
          position: 0,
          state: loaded.state,
          attempts: attempt,
        };
      }
      const newEvents = events.map((e) => ({ id: this.#ids.next(), type: e.type, data: e.data }));
      const expected = loaded.version;
      try {
        const result = await this.#append(streamId, newEvents, expected, options.metadata);
        const state = fold(decider, loaded.state, events);
        await this.#maybeSnapshot(streamId, expected, result.version, state);
        return {
          streamId,
          events,
          version: result.version,
          position: result.position,
          state,
          attempts: attempt,
        };
      } catch (err) {
        if (!(err instanceof ConcurrencyError) || attempt >= maxAttempts) throw err;
        this.#retries?.inc({ aggregate: decider.name });
        await this.#clock.sleep(backoffDelay(attempt, { baseDelayMs: 2, maxDelayMs: 100 }));
      }
    }
  }

  async #append(
    streamId: string,
    events: { id: string; type: string; data: unknown }[],
    expected: number,
    metadata: EventMetadata | undefined,
  ) {
    const { store, inline } = this.#o;
    if (!inline?.length) return store.append(streamId, events, { expected, metadata });
    // The constructor checked that the store has the capability.
    return store.transaction!(async (tx) => {
      const r = await store.append(streamId, events, { expected, metadata, tx });
      const recordedAt = this.#clock.now();
      const recorded: RecordedEvent[] = events.map((e, i) => ({
        id: e.id,
        streamId,
        version: r.version - events.length + 1 + i,
        position: r.positions[i]!,
        type: e.type,
        data: e.data,
        metadata: { ...metadata },
        schemaVersion: 1,
        storedSchemaVersion: 1,
        recordedAt,
      }));
      for (const p of inline) {
        for (const e of recorded) if (!p.types || p.types.includes(e.type)) await p.apply(e, tx);
      }
      return r;
    });
  }

  async #maybeSnapshot(streamId: string, before: number, after: number, state: S): Promise<void> {
    const every = this.#o.snapshotEvery;
    if (!every || Math.floor(after / every) === Math.floor(before / every)) return;
    try {
      await this.#o.store.saveSnapshot({ streamId, key: this.snapshotKey, version: after, state });
    } catch (err) {
      // A snapshot is an optimisation: the events stay the truth.
      this.#logger.warn({ streamId, err: errorMessage(err) }, 'snapshot not saved');
    }
  }
}
