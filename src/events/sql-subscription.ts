import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Counter, Gauge, Registry } from 'prom-client';
import { type Clock, systemClock } from '../core/clock.js';
import {
  CdpError,
  ClosedError,
  errorMessage,
  TimeoutError,
  ValidationError,
} from '../core/errors.js';
import { silentLogger } from '../core/logger.js';
import { counter, gauge } from '../core/metrics.js';
import { backoffDelay } from '../core/retry.js';
import type { SqlClient, SqlTransaction } from '../engines/sql/sql-client.js';
import type { RecordedEvent } from './event-store.js';
import { NOTIFY_CHANNEL } from './internal/wake-up.js';
import type { SqlEventStore } from './sql-event-store.js';

/**
 * A durable subscription to the global log: catch up from the stored checkpoint, then follow
 * live (LISTEN/NOTIFY wakes it, polling covers lost notifications).
 *
 * - Delivery is at least once. The handler runs inside a transaction that also moves the
 *   checkpoint, so SQL written by the handler through `tx` is applied exactly once.
 * - One active instance per name: a lease (owner + expiry) in the checkpoint row, renewed while
 *   running and taken over when it expires; the checkpoint update is fenced by the owner, so a
 *   stale instance cannot move it.
 * - A failing event is retried with backoff; after `maxAttempts` it is parked with its error in
 *   `cdp_event_parked` and the subscription moves on.
 */
export type SubscriptionHandler = (event: RecordedEvent, tx: SqlTransaction) => Promise<void>;

export interface SqlSubscriptionOptions {
  name: string;
  store: SqlEventStore;
  handler: SubscriptionHandler;
  /** Only these event types (the checkpoint still moves past the others). */
  types?: readonly string[];
  /** Events per transaction while catching up. Default 100. */
  batchSize?: number;
  /** Poll this often when no notification arrives. Default 1000 ms. */
  pollIntervalMs?: number;
  /**
   * After taking its lease, poll at least every 50 ms for this long. A store wakes subscribers
   * only once it has seen a subscription holding a lease (`SqlEventStoreOptions.
   * subscriberCheckMs`, looked up every second by default), and this covers the time until it
   * has. Keep it above twice the stores' `subscriberCheckMs`. Default 3000; 0 turns it off.
   */
  warmupMs?: number;
  /** Lease length. Default 10,000 ms; renewed at half of it. */
  leaseMs?: number;
  /** Attempts per event before it is parked. Default 5. */
  maxAttempts?: number;
  retryBaseDelayMs?: number;
  retryMaxDelayMs?: number;
  clock?: Clock;
  logger?: Logger;
  registry?: Registry;
  /** Names this instance in the lease. Default: a random id. */
  instanceId?: string;
}

export interface SubscriptionStatus {
  name: string;
  active: boolean;
  position: number;
  parked: number;
  processed: number;
}

export class LeaseLostError extends CdpError {
  constructor(name: string) {
    super(
      'SUBSCRIPTION_LEASE_LOST',
      `subscription "${name}" lost its lease to another instance; this instance stops processing and will try to take it back when the lease expires`,
    );
  }
}

/** The checkpoint was moved by someone else (a projection rebuild): reload it and go on. */
export class CheckpointMovedError extends CdpError {
  constructor(name: string, position: number) {
    super(
      'SUBSCRIPTION_CHECKPOINT_MOVED',
      `subscription "${name}": its checkpoint was moved to ${position} by another writer (a rebuild); the batch is rolled back and the subscription resumes from there`,
    );
  }
}

/** How often a subscription polls at most while warming up (see `warmupMs`). */
const WARMUP_POLL_MS = 50;

export class SqlSubscription {
  readonly name: string;
  readonly #o: Required<Omit<SqlSubscriptionOptions, 'types' | 'registry' | 'logger'>> & {
    types: readonly string[] | undefined;
  };
  readonly #sql: SqlClient;
  readonly #logger: Logger;
  readonly #instance: string;
  #position = 0;
  #active = false;
  #leaseRenewedAt = 0;
  #processed = 0;
  #heldBackRetries = 0;
  /** Until when (Clock ms) the subscription polls quickly after taking its lease. */
  #warmUntil = 0;
  #parked = 0;
  #running: Promise<void> | undefined;
  #stop = new AbortController();
  #wake: (() => void) | undefined;
  #unlisten: (() => Promise<void>) | undefined;
  #closed = false;
  readonly #positionGauge: Gauge<'name'> | undefined;
  readonly #lagGauge: Gauge<'name'> | undefined;
  readonly #parkedCounter: Counter<'name'> | undefined;
  readonly #retries: Counter<'name'> | undefined;

  constructor(options: SqlSubscriptionOptions) {
    if (!/^[A-Za-z0-9_.:-]{1,100}$/.test(options.name)) {
      throw new ValidationError(
        `subscription name ${JSON.stringify(options.name)}: use 1-100 letters, digits, _ . : -`,
      );
    }
    this.name = options.name;
    this.#o = {
      name: options.name,
      store: options.store,
      handler: options.handler,
      types: options.types,
      batchSize: options.batchSize ?? 100,
      pollIntervalMs: options.pollIntervalMs ?? 1000,
      leaseMs: options.leaseMs ?? 10_000,
      warmupMs: options.warmupMs ?? 3000,
      maxAttempts: options.maxAttempts ?? 5,
      retryBaseDelayMs: options.retryBaseDelayMs ?? 100,
      retryMaxDelayMs: options.retryMaxDelayMs ?? 10_000,
      clock: options.clock ?? systemClock,
      instanceId: options.instanceId ?? randomUUID(),
    };
    this.#sql = options.store.sql;
    this.#logger = (options.logger ?? silentLogger()).child({ subscription: options.name });
    this.#instance = this.#o.instanceId;
    const r = options.registry;
    if (r) {
      this.#positionGauge = gauge(
        r,
        'cdp_events_subscription_position',
        'Checkpoint of a subscription',
        ['name'],
      );
      this.#lagGauge = gauge(
        r,
        'cdp_events_subscription_lag_positions',
        'Positions between the log head and the checkpoint',
        ['name'],
      );
      this.#parkedCounter = counter(
        r,
        'cdp_events_subscription_parked_total',
        'Events parked after failing',
        ['name'],
      );
      this.#retries = counter(r, 'cdp_events_subscription_retries_total', 'Handler retries', [
        'name',
      ]);
    }
  }

  /** Start catching up and following. Resolves once listening (processing runs on). */
  async start(): Promise<void> {
    if (this.#closed) throw new ClosedError(`subscription "${this.name}"`);
    if (this.#running) return;
    this.#unlisten = await this.#sql.listen(NOTIFY_CHANNEL, () => this.#wake?.(), {
      onReconnect: () => this.#wake?.(),
    });
    this.#running = this.#loop().catch((err: unknown) => {
      this.#logger.error({ err: errorMessage(err) }, 'subscription loop stopped');
    });
  }

  status(): SubscriptionStatus {
    return {
      name: this.name,
      active: this.#active,
      position: this.#position,
      parked: this.#parked,
      processed: this.#processed,
    };
  }

  async #acquire(): Promise<boolean> {
    const now = this.#o.clock.now();
    const { rows } = await this.#sql.query<{ position: number }>(
      `INSERT INTO cdp_event_subscriptions AS s (name, position, owner, lease_until, updated_at) VALUES ($1, 0, $2, $3, $4)
         ON CONFLICT (name) DO UPDATE SET owner = $2, lease_until = $3
         WHERE s.owner IS NULL OR s.owner = $2 OR s.lease_until < $4
       RETURNING position`,
      [this.name, this.#instance, now + this.#o.leaseMs, now],
    );
    const got = rows.length > 0;
    if (got) {
      if (!this.#active) {
        this.#logger.info({ instance: this.#instance }, 'subscription lease taken');
        this.#warmUntil = now + this.#o.warmupMs;
      }
      this.#position = Number(rows[0]!.position);
      this.#leaseRenewedAt = now;
    } else if (this.#active) {
      this.#logger.warn({ instance: this.#instance }, 'subscription lease lost');
    }
    this.#active = got;
    return got;
  }

  async #sleep(ms: number): Promise<void> {
    const ac = new AbortController();
    const onStop = () => ac.abort();
    this.#stop.signal.addEventListener('abort', onStop, { once: true });
    this.#wake = () => ac.abort();
    try {
      await this.#o.clock.sleep(ms, ac.signal);
    } catch {
      // woken up or stopped
    } finally {
      this.#wake = undefined;
      this.#stop.signal.removeEventListener('abort', onStop);
    }
  }

  async #loop(): Promise<void> {
    while (!this.#stop.signal.aborted) {
      try {
        const now = this.#o.clock.now();
        if (!this.#active || now - this.#leaseRenewedAt >= this.#o.leaseMs / 2) {
          if (!(await this.#acquire())) {
            await this.#sleep(Math.min(this.#o.pollIntervalMs, this.#o.leaseMs / 2));
            continue;
          }
        }
        // Register the wake-up before reading, so that a notification during the read, the
        // handler or the checkpoint counts: `#sleep` takes it over with no await in between.
        let woken = false;
        this.#wake = () => {
          woken = true;
        };
        const batch = await this.#o.store.readAll({
          after: this.#position,
          limit: this.#o.batchSize,
          ...(this.#o.types ? { types: this.#o.types } : {}),
        });
        if (batch.events.length > 0) {
          await this.#handleBatch(batch.events, batch.next);
        } else if (batch.next > this.#position) {
          await this.#checkpointOnly(batch.next);
        }
        await this.#reportLag();
        if (batch.events.length < this.#o.batchSize && !woken) {
          // Held back by an open transaction (any database of the server: transaction ids are
          // server-wide): committed events wait behind it, so look again soon, not at the poll.
          if (this.#o.store.readerStatus().heldBack) {
            this.#heldBackRetries++;
            await this.#sleep(
              Math.min(this.#o.pollIntervalMs, 5 * 2 ** Math.min(this.#heldBackRetries, 6)),
            );
          } else {
            this.#heldBackRetries = 0;
            const warming = this.#o.clock.now() < this.#warmUntil;
            await this.#sleep(
              warming ? Math.min(this.#o.pollIntervalMs, WARMUP_POLL_MS) : this.#o.pollIntervalMs,
            );
          }
        }
      } catch (err) {
        if (this.#stop.signal.aborted) break;
        if (err instanceof CheckpointMovedError) {
          // Reload the checkpoint (the lease is still ours) and go on from there at once.
          this.#active = false;
          this.#logger.info(errorMessage(err));
          continue;
        }
        if (err instanceof LeaseLostError) {
          this.#active = false;
          this.#logger.warn(errorMessage(err));
        } else {
          this.#logger.error({ err: errorMessage(err) }, 'subscription step failed; retrying');
        }
        await this.#sleep(this.#o.pollIntervalMs);
      }
    }
  }

  /** Move the checkpoint, fenced by the owner and by the position this instance started from. */
  async #move(tx: SqlTransaction, position: number): Promise<void> {
    const { rowCount } = await tx.query(
      'UPDATE cdp_event_subscriptions SET position = $3, updated_at = $4 WHERE name = $1 AND owner = $2 AND position = $5',
      [this.name, this.#instance, position, this.#o.clock.now(), this.#position],
    );
    if (rowCount > 0) return;
    const { rows } = await tx.query<{ owner: string | null; position: number }>(
      'SELECT owner, position FROM cdp_event_subscriptions WHERE name = $1',
      [this.name],
    );
    if (rows[0]?.owner === this.#instance)
      throw new CheckpointMovedError(this.name, Number(rows[0].position));
    throw new LeaseLostError(this.name);
  }

  async #checkpointOnly(position: number): Promise<void> {
    await this.#sql.transaction((tx) => this.#move(tx, position));
    this.#position = position;
  }

  async #handleBatch(events: RecordedEvent[], next: number): Promise<void> {
    try {
      await this.#sql.transaction(async (tx) => {
        for (const e of events) await this.#o.handler(e, tx);
        await this.#move(tx, next);
      });
      this.#position = next;
      this.#processed += events.length;
      return;
    } catch (err) {
      if (
        err instanceof LeaseLostError ||
        err instanceof CheckpointMovedError ||
        this.#stop.signal.aborted
      )
        throw err;
      this.#logger.debug(
        { err: errorMessage(err) },
        'batch failed; handling its events one by one',
      );
    }
    for (const e of events) {
      if (this.#stop.signal.aborted) return;
      await this.#handleOne(e);
    }
    if (next > this.#position) await this.#checkpointOnly(next);
  }

  async #handleOne(event: RecordedEvent): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#sql.transaction(async (tx) => {
          await this.#o.handler(event, tx);
          await this.#move(tx, event.position);
        });
        this.#position = event.position;
        this.#processed++;
        return;
      } catch (err) {
        if (err instanceof LeaseLostError || err instanceof CheckpointMovedError) throw err;
        if (attempt >= this.#o.maxAttempts) {
          await this.#park(event, err, attempt);
          return;
        }
        this.#retries?.inc({ name: this.name });
        const delay = backoffDelay(attempt, {
          baseDelayMs: this.#o.retryBaseDelayMs,
          maxDelayMs: this.#o.retryMaxDelayMs,
          jitter: 'equal',
        });
        this.#logger.warn(
          { position: event.position, attempt, delay, err: errorMessage(err) },
          'handler failed; retrying',
        );
        await this.#sleep(delay);
        if (this.#stop.signal.aborted) return;
      }
    }
  }

  async #park(event: RecordedEvent, err: unknown, attempts: number): Promise<void> {
    await this.#sql.transaction(async (tx) => {
      await tx.query(
        `INSERT INTO cdp_event_parked (name, position, event_id, stream_id, type, error, attempts, parked_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (name, position) DO NOTHING`,
        [
          this.name,
          event.position,
          event.id,
          event.streamId,
          event.type,
          errorMessage(err).slice(0, 2000),
          attempts,
          this.#o.clock.now(),
        ],
      );
      await this.#move(tx, event.position);
    });
    this.#position = event.position;
    this.#parked++;
    this.#parkedCounter?.inc({ name: this.name });
    this.#logger.error(
      {
        position: event.position,
        type: event.type,
        streamId: event.streamId,
        attempts,
        err: errorMessage(err),
      },
      'event parked after repeated failures; the subscription moves on (see cdp_event_parked)',
    );
  }

  async #reportLag(): Promise<void> {
    if (!this.#lagGauge) return;
    const { rows } = await this.#sql.query<{ top: number | null }>(
      'SELECT max(position) AS top FROM cdp_events',
    );
    const top = rows[0]?.top === null || rows[0]?.top === undefined ? 0 : Number(rows[0].top);
    this.#lagGauge.set({ name: this.name }, Math.max(0, top - this.#position));
    this.#positionGauge?.set({ name: this.name }, this.#position);
  }

  /**
   * Stop. By default the lease is released so that another instance takes over at once;
   * `releaseLease: false` leaves it to expire (what a crash does).
   */
  async close(options: { releaseLease?: boolean } = {}): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#stop.abort();
    this.#wake?.();
    await this.#running;
    await this.#unlisten?.();
    if (options.releaseLease !== false && this.#active) {
      await this.#sql
        .query(
          'UPDATE cdp_event_subscriptions SET owner = NULL, lease_until = NULL WHERE name = $1 AND owner = $2',
          [this.name, this.#instance],
        )
        .catch(() => {});
    }
    this.#active = false;
  }
}

/** Checkpoints of subscriptions (for dashboards and read-your-writes waits). */
export async function subscriptionPositions(sql: SqlClient): Promise<Map<string, number>> {
  const { rows } = await sql.query<{ name: string; position: number }>(
    'SELECT name, position FROM cdp_event_subscriptions',
  );
  return new Map(rows.map((r) => [r.name, Number(r.position)]));
}

/** Events parked by a subscription, oldest first. */
export async function parkedEvents(
  sql: SqlClient,
  name: string,
): Promise<{ position: number; eventId: string; type: string; error: string; attempts: number }[]> {
  const { rows } = await sql.query<{
    position: number;
    event_id: string;
    type: string;
    error: string;
    attempts: number;
  }>(
    'SELECT position, event_id, type, error, attempts FROM cdp_event_parked WHERE name = $1 ORDER BY position',
    [name],
  );
  return rows.map((r) => ({
    position: Number(r.position),
    eventId: r.event_id,
    type: r.type,
    error: r.error,
    attempts: r.attempts,
  }));
}

/**
 * Wait until the subscription `name` has processed the global position `token` (read your
 * writes on an eventually consistent read model); TimeoutError after `timeoutMs`.
 */
export async function waitForSubscription(
  sql: SqlClient,
  name: string,
  token: number,
  options: { timeoutMs?: number; pollMs?: number; clock?: Clock } = {},
): Promise<void> {
  const clock = options.clock ?? systemClock;
  const timeoutMs = options.timeoutMs ?? 5000;
  const deadline = clock.now() + timeoutMs;
  for (;;) {
    const { rows } = await sql.query<{ position: number }>(
      'SELECT position FROM cdp_event_subscriptions WHERE name = $1',
      [name],
    );
    if (rows[0] && Number(rows[0].position) >= token) return;
    if (clock.now() >= deadline) {
      throw new TimeoutError(
        `read model "${name}" did not reach position ${token} within ${timeoutMs} ms (it is at ${rows[0]?.position ?? 'nothing yet'}); retry later or read without the token`,
        timeoutMs,
      );
    }
    await clock.sleep(Math.min(options.pollMs ?? 20, Math.max(1, deadline - clock.now())));
  }
}
