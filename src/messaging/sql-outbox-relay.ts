import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { type Clock, systemClock } from '../core/clock.js';
import { ClosedError, errorMessage, ValidationError } from '../core/errors.js';
import { counter, gauge } from '../core/metrics.js';
import type { SqlClient } from '../engines/sql/sql-client.js';
import type { Broker } from './broker.js';
import { decodeEnvelope, encodeEnvelope, type MessageEnvelope } from './envelope.js';
import { OUTBOX_CHANNEL, type OutboxStats, outboxStats } from './sql-outbox.js';

export interface OutboxRelayOptions {
  sql: SqlClient;
  broker: Broker;
  /** Key heads (and unkeyed rows) claimed per batch. Default 200. */
  batchSize?: number;
  /** Rows of one key published per batch, in sequence order. Default 50. */
  perKey?: number;
  /**
   * Batches run at once by this relay (each claims other keys, like separate relays): while
   * one batch publishes, the next commit's rows are claimed by another. Default 2.
   */
  workers?: number;
  /** Keys published concurrently within a batch. Default 64. */
  concurrency?: number;
  /**
   * 'notify' (default): woken by LISTEN/NOTIFY, with a poll every `pollIntervalMs` as a safety
   * net; when a poll finds rows no notification announced, the relay polls at
   * `fallbackPollMs` until notifications are seen again. 'poll': polling only (behind a
   * transaction-mode pooler).
   */
  mode?: 'notify' | 'poll';
  /** Default 1000 ms in 'notify' mode, 100 ms in 'poll' mode. */
  pollIntervalMs?: number;
  /** Default 100 ms. */
  fallbackPollMs?: number;
  /**
   * Commit the relay's own transactions (deleting published rows, advancing cursors, parking)
   * with `synchronous_commit = off`, so the relay does not wait for a WAL flush between
   * batches. Safe for an at-least-once relay: a database crash can only forget the most recent
   * of these commits, whose rows are then published again with the same ids (never reordered:
   * rows and cursors roll back together). Writers' commits are unaffected. Default true.
   */
  asyncCommit?: boolean;
  /** Failed publish attempts before a row is parked as poison. Default 10. */
  maxAttempts?: number;
  /** Wait after a failed batch (broker or database down), growing to 5 s. Default 100 ms. */
  errorBackoffMs?: number;
  clock?: Clock;
  logger?: Logger;
  registry?: Registry;
  /** Called after each published message (benchmarks, tests). */
  onPublished?: (row: { messageId: string; key: string | null; seq: number | null }) => void;
}

interface Row {
  id: number;
  message_id: string;
  topic: string;
  key: string | null;
  seq: number | null;
  envelope: string;
  headers: Record<string, string> | null;
  attempts: number;
}

/**
 * The relay: claims work, publishes it confirmed, deletes what was published, all in one
 * transaction per batch. Claiming takes the head row (lowest sequence) of each key with
 * FOR UPDATE SKIP LOCKED; the holder of a key's head is the only relay that touches that
 * key, so several relays share the keys without ever reordering one, and without double
 * publishing unless a relay dies between publish and commit (then the next one publishes the
 * same ids again: at least once, duplicates detectable by id).
 */
export class OutboxRelay {
  readonly #o: Required<
    Pick<
      OutboxRelayOptions,
      | 'batchSize'
      | 'perKey'
      | 'concurrency'
      | 'mode'
      | 'pollIntervalMs'
      | 'fallbackPollMs'
      | 'maxAttempts'
      | 'errorBackoffMs'
      | 'workers'
      | 'asyncCommit'
    >
  > &
    OutboxRelayOptions;
  readonly #clock: Clock;
  readonly #metrics: ReturnType<typeof relayMetrics> | undefined;
  #running: Promise<void> | undefined;
  #stop = new AbortController();
  readonly #wakers = new Set<() => void>();
  /** Bumped by every notification: a loop that saw an older value does not sleep. */
  #generation = 0;
  #unlisten: (() => Promise<void>) | undefined;
  #fallback = false;
  #lastNotifyAt = 0;
  #closed = false;
  #published = 0;

  constructor(options: OutboxRelayOptions) {
    const mode = options.mode ?? 'notify';
    this.#o = {
      batchSize: 200,
      perKey: 50,
      concurrency: 64,
      pollIntervalMs: mode === 'poll' ? 100 : 1000,
      fallbackPollMs: 100,
      maxAttempts: 10,
      errorBackoffMs: 100,
      workers: 2,
      asyncCommit: true,
      ...options,
      mode,
    };
    this.#clock = options.clock ?? systemClock;
    this.#metrics = options.registry ? relayMetrics(options.registry) : undefined;
  }

  /** Messages this relay has published since it started. */
  get published(): number {
    return this.#published;
  }

  /** Start the loop (LISTEN first in 'notify' mode). */
  async start(): Promise<void> {
    if (this.#closed) throw new ClosedError('OutboxRelay');
    if (this.#running) return;
    if (this.#o.mode === 'notify') {
      this.#lastNotifyAt = this.#clock.now();
      try {
        this.#unlisten = await this.#o.sql.listen(
          OUTBOX_CHANNEL,
          () => {
            this.#lastNotifyAt = this.#clock.now();
            this.#fallback = false;
            this.#poke();
          },
          { onReconnect: () => this.#poke() },
        );
      } catch (err) {
        this.#o.logger?.warn(
          { err: errorMessage(err) },
          'outbox relay could not LISTEN; polling instead',
        );
        this.#fallback = true;
      }
    }
    this.#running = Promise.all(Array.from({ length: this.#o.workers }, () => this.#loop())).then(
      () => {},
    );
  }

  /**
   * A notification wakes one idle worker (the others stay asleep: one claim finds every row
   * committed so far). A busy worker sees the new generation when its batch ends and claims
   * again instead of sleeping, so no notification is missed.
   */
  #poke(): void {
    this.#generation++;
    for (const w of this.#wakers) {
      this.#wakers.delete(w);
      w();
      return;
    }
  }

  /**
   * Sleep up to `ms`; returns true when woken by a notification (or one came since `seen`).
   * Without `seen` (backoff after a failure) only close() cuts the sleep short.
   */
  async #idle(ms: number, seen?: number): Promise<boolean> {
    if (seen !== undefined && this.#generation !== seen) return true;
    if (this.#stop.signal.aborted) return false;
    const ac = new AbortController();
    const onStop = () => ac.abort();
    this.#stop.signal.addEventListener('abort', onStop, { once: true });
    let woken = false;
    const waker = () => {
      woken = true;
      ac.abort();
    };
    if (seen !== undefined) this.#wakers.add(waker);
    await this.#clock.sleep(ms, ac.signal).catch(() => {});
    this.#wakers.delete(waker);
    this.#stop.signal.removeEventListener('abort', onStop);
    return woken;
  }

  async #loop(): Promise<void> {
    let failures = 0;
    while (!this.#stop.signal.aborted) {
      const seen = this.#generation;
      const startedAt = this.#clock.now();
      let n = 0;
      try {
        n = await this.runOnce();
        failures = 0;
      } catch (err) {
        failures++;
        this.#metrics?.errors.inc();
        this.#o.logger?.warn({ err: errorMessage(err), failures }, 'outbox relay batch failed');
        await this.#idle(Math.min(5000, this.#o.errorBackoffMs * 2 ** Math.min(failures - 1, 6)));
        continue;
      }
      // Rows found while no notification arrived for a whole poll interval: notifications are
      // not arriving (e.g. a transaction-mode pooler drops them), so poll fast until one does.
      if (
        n > 0 &&
        this.#o.mode === 'notify' &&
        !this.#fallback &&
        startedAt - this.#lastNotifyAt > this.#o.pollIntervalMs
      ) {
        this.#fallback = true;
        this.#metrics?.fallbacks.inc();
        this.#o.logger?.warn('outbox rows found without a notification: polling fast');
      }
      if (n > 0) continue; // more may be waiting
      const interval =
        this.#o.mode === 'poll' || !this.#fallback
          ? this.#o.pollIntervalMs
          : this.#o.fallbackPollMs;
      await this.#idle(interval, seen);
    }
  }

  /** Claim, publish and delete one batch; returns how many messages were published. */
  async runOnce(): Promise<number> {
    if (this.#closed) throw new ClosedError('OutboxRelay');
    const o = this.#o;
    const published = await o.sql.transaction(async (tx) => {
      // One round trip: lock the head row of each key (and unkeyed rows) that no other relay
      // holds, then read each claimed key's next rows in sequence order and its cursor. Each
      // returned row also sets this transaction's synchronous_commit (asyncCommit); a claim
      // that finds nothing writes nothing, so its commit has nothing to flush either way.
      const { rows } = await tx.query<Row & { published_seq: number | null; head_id: number }>(
        `WITH heads AS (
           SELECT o.id, o.key FROM cdp_outbox o
           WHERE o.key IS NULL
              OR NOT EXISTS (SELECT 1 FROM cdp_outbox p WHERE p.key = o.key AND p.seq < o.seq)
           ORDER BY o.id
           LIMIT $1
           FOR UPDATE SKIP LOCKED
         )
         SELECT f.id, f.message_id, f.topic, f.key, f.seq, f.envelope, f.headers, f.attempts,
                c.published_seq, h.id AS head_id, set_config('synchronous_commit', $3, true) AS sc
         FROM heads h
         CROSS JOIN LATERAL (
           SELECT * FROM cdp_outbox x WHERE x.key = h.key ORDER BY x.seq LIMIT $2
         ) f
         LEFT JOIN cdp_outbox_cursor c ON c.key = h.key
         WHERE h.key IS NOT NULL
         UNION ALL
         SELECT o.id, o.message_id, o.topic, o.key, o.seq, o.envelope, o.headers, o.attempts,
                NULL, h.id, set_config('synchronous_commit', $3, true)
         FROM heads h JOIN cdp_outbox o ON o.id = h.id
         WHERE h.key IS NULL
         ORDER BY head_id, seq`,
        [o.batchSize, o.perKey, o.asyncCommit ? 'off' : 'on'],
      );
      if (rows.length === 0) return [];
      const byKey = new Map<string, Row[]>();
      const cursor = new Map<string, number>();
      const heads: Row[] = [];
      for (const r of rows) {
        if (r.key === null) {
          heads.push(r);
          continue;
        }
        const list = byKey.get(r.key) ?? [];
        list.push(r);
        byKey.set(r.key, list);
        if (r.published_seq !== null) cursor.set(r.key, Number(r.published_seq));
      }
      // Work units: each key's rows in order, and each unkeyed row on its own.
      const units: Row[][] = [...byKey.values()];
      for (const h of heads) if (h.key === null) units.push([h]);

      const done: Row[] = [];
      const failed: { row: Row; error: string; permanent: boolean }[] = [];
      const newCursor = new Map<string, number>();
      let next = 0;
      const worker = async () => {
        while (next < units.length) {
          const unit = units[next++]!;
          let prev = unit[0]!.key === null ? undefined : (cursor.get(unit[0]!.key!) ?? 0);
          for (const row of unit) {
            try {
              const env = this.#prepare(row, prev);
              await o.broker.publish({
                topic: row.topic,
                id: row.message_id,
                key: row.key ?? undefined,
                headers: row.headers ?? undefined,
                body: encodeEnvelope(env),
              });
              done.push(row);
              if (row.key !== null) {
                prev = Number(row.seq);
                newCursor.set(row.key, prev);
              }
              o.onPublished?.({ messageId: row.message_id, key: row.key, seq: row.seq });
            } catch (err) {
              failed.push({
                row,
                error: errorMessage(err),
                permanent: err instanceof ValidationError,
              });
              break; // never publish a key past a row that failed
            }
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(o.concurrency, units.length) }, worker));

      if (done.length > 0) {
        await tx.query(
          `WITH gone AS (
             DELETE FROM cdp_outbox WHERE id IN (SELECT (jsonb_array_elements_text($1::jsonb))::bigint)
           )
           INSERT INTO cdp_outbox_cursor (key, published_seq)
           SELECT e.key, e.value::bigint FROM jsonb_each_text($2::jsonb) e
           ON CONFLICT (key) DO UPDATE SET published_seq = EXCLUDED.published_seq`,
          [JSON.stringify(done.map((r) => r.id)), JSON.stringify(Object.fromEntries(newCursor))],
        );
      }
      // A failure counts against the row only when it is the message's own fault: invalid, or
      // refused while the broker accepted others or answers a ping. An outage parks nothing.
      const brokerUp =
        done.length > 0 ||
        (failed.some((f) => !f.permanent) &&
          (await o.broker.ping().then(
            () => true,
            () => false,
          )));
      for (const f of failed) {
        if (!(f.permanent || brokerUp)) continue;
        const attempts = f.row.attempts + 1;
        if (attempts >= o.maxAttempts || f.permanent) {
          await tx.query(
            `WITH moved AS (DELETE FROM cdp_outbox WHERE id = $1 RETURNING *)
             INSERT INTO cdp_outbox_parked (id, message_id, topic, key, seq, envelope, headers, created_at, attempts, last_error)
             SELECT id, message_id, topic, key, seq, envelope, headers, created_at, $2, $3 FROM moved`,
            [f.row.id, attempts, f.error],
          );
          this.#metrics?.parked.inc();
          o.logger?.error(
            { messageId: f.row.message_id, attempts, err: f.error },
            'outbox row parked as poison',
          );
        } else {
          await tx.query('UPDATE cdp_outbox SET attempts = $2, last_error = $3 WHERE id = $1', [
            f.row.id,
            attempts,
            f.error,
          ]);
        }
      }
      if (failed.length > 0 && !brokerUp && failed.some((f) => !f.permanent)) {
        // Nothing went through: report the outage after committing the permanent parks.
        return { rows: done, outage: failed.find((f) => !f.permanent)!.error };
      }
      return { rows: done, outage: undefined };
    });
    if (Array.isArray(published)) return 0;
    this.#published += published.rows.length;
    this.#metrics?.published.inc(published.rows.length);
    if (published.outage) throw new Error(`broker refused every message: ${published.outage}`);
    return published.rows.length;
  }

  #prepare(row: Row, prev: number | undefined): MessageEnvelope {
    const env = decodeEnvelope(row.envelope); // ValidationError: permanent, parked at once
    if (row.key !== null) {
      env.sequence = Number(row.seq);
      env.partitionkey = row.key;
      env.prevsequence = prev ?? 0;
    }
    return env;
  }

  /** Refresh the backlog gauges (called by the platform's metrics scrape or a timer). */
  async refreshMetrics(): Promise<OutboxStats> {
    const s = await outboxStats(this.#o.sql);
    this.#metrics?.backlog.set(s.backlog);
    this.#metrics?.oldest.set(s.oldestAgeMs / 1000);
    this.#metrics?.parkedRows.set(s.parked);
    return s;
  }

  /** Stop after the batch in progress (which commits or rolls back whole). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#stop.abort();
    for (const w of this.#wakers) w();
    await this.#running;
    this.#closed = true;
    await this.#unlisten?.().catch(() => {});
  }
}

function relayMetrics(registry: Registry) {
  return {
    published: counter(
      registry,
      'cdp_messaging_relay_published_total',
      'Outbox messages published by relays (rate = publish rate)',
    ),
    errors: counter(registry, 'cdp_messaging_relay_errors_total', 'Relay batches that failed'),
    parked: counter(registry, 'cdp_messaging_outbox_parked_total', 'Outbox rows parked as poison'),
    fallbacks: counter(
      registry,
      'cdp_messaging_relay_poll_fallbacks_total',
      'Times the relay found rows no notification announced and switched to fast polling',
    ),
    backlog: gauge(registry, 'cdp_messaging_outbox_backlog_rows', 'Outbox rows waiting'),
    oldest: gauge(
      registry,
      'cdp_messaging_outbox_oldest_age_seconds',
      'Age of the oldest waiting outbox row',
    ),
    parkedRows: gauge(registry, 'cdp_messaging_outbox_parked_rows', 'Outbox rows parked'),
  };
}
