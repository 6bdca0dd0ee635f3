import type { Logger } from 'pino';
import { type Clock, systemClock } from '../core/clock.js';
import { ClosedError, errorMessage } from '../core/errors.js';
import type {
  ListenOptions,
  NotificationHandler,
  QueryResult,
  SqlClient,
  SqlTransaction,
  SqlValue,
  TransactionOptions,
} from '../engines/sql/sql-client.js';
import { SqlError } from '../engines/sql/sql-client.js';
import {
  type ConsistencyToken,
  formatConsistencyToken,
  type Lsn,
  parseConsistencyToken,
  parseLsn,
} from './consistency-token.js';
import { plain } from './internal/plain-result.js';
import { mayReadOnReplica, READ_ONLY_SQL_TRANSACTION } from './internal/statement-kind.js';
import { ClusterMismatchError, NotAStandbyError, NotPrimaryError } from './replica-errors.js';
import { type FailoverOptions, type FailoverReport, runFailover } from './replica-failover.js';
import { ReplicaSession } from './replica-session.js';

/** A server the router talks to, by the name it reports it under. */
export interface ReplicaServer {
  name: string;
  client: SqlClient;
}

export interface PrimaryServer extends ReplicaServer {
  /**
   * The same primary through connections whose commits wait for a standby
   * (`synchronous_commit = remote_apply`): used by writes with `{ commit: 'sync' }`.
   */
  syncClient?: SqlClient;
}

/** How fresh a read must be. */
export type ReadConsistency =
  /** Any healthy replica (the primary when none is). */
  | { kind: 'any' }
  /** A replica known to be at most this far behind the primary, else the primary. */
  | { kind: 'bounded'; maxStalenessMs: number }
  /** A server that has replayed this token's write (read-your-writes). */
  | { kind: 'after'; token: string | ConsistencyToken }
  /** The primary. */
  | { kind: 'primary' };

export interface ReplicaRouterOptions {
  primary: PrimaryServer;
  /** Streaming standbys of the primary; each is checked to be one. */
  replicas: readonly ReplicaServer[];
  /** How often the router polls replay positions. Default 100 ms. */
  pollIntervalMs?: number;
  /**
   * How long a read-your-writes read waits for a replica that has not yet replayed the token
   * (probing it) before it goes to the primary. Default 0: straight to the primary.
   */
  waitForReplicaMs?: number;
  /** Consistency of `query` reads outside a session. Default `{ kind: 'any' }`. */
  defaultRead?: ReadConsistency;
  /** Close every client given here when the router closes. Default false. */
  closeClients?: boolean;
  clock?: Clock;
  logger?: Logger;
}

/** What the router knows about one replica, as of its last poll. */
export interface ReplicaStatus {
  name: string;
  healthy: boolean;
  /** Why it is not used, when it is not. */
  excluded?: string;
  replayLsn: string | null;
  /** Bytes of WAL the primary has written that this replica has not replayed. */
  lagBytes: number | null;
  /** Upper bound on how far behind the primary its data is, in ms. */
  stalenessMs: number | null;
  lastError?: string;
  reads: number;
}

export interface RouterStatus {
  systemIdentifier: string;
  primary: string;
  timeline: number;
  primaryLsn: string | null;
  fenced: readonly string[];
  replicas: ReplicaStatus[];
  reads: { primary: number; replica: number; waited: number };
}

export interface ReadOptions {
  /** Use this replica or else the primary (monotonic reads stick to one replica). */
  onlyReplica?: string;
}

/** Rows of a read, the server that served them, and what the router knew of its position. */
export interface ReadResult<R> extends QueryResult<R> {
  servedBy: string;
  /** True when the primary served it. */
  primary: boolean;
  replay: Lsn | undefined;
}

/** Result of a write: the rows and the token a later read passes for read-your-writes. */
export interface WriteResult<R> extends QueryResult<R> {
  token: string;
}

export interface WriteOptions {
  /** 'sync': waits for one standby to apply (needs `primary.syncClient`). Default 'async'. */
  commit?: 'sync' | 'async';
}

/** @internal */
export interface ReplicaState {
  server: ReplicaServer;
  healthy: boolean;
  excluded: string | undefined;
  replay: Lsn | undefined;
  polledAt: number;
  lastError: string | undefined;
  reads: number;
}

const SAMPLES = 1200;

/**
 * A SqlClient over a PostgreSQL primary and its streaming standbys. Writes, transactions,
 * LISTEN/NOTIFY go to the primary; reads (statements that start with SELECT, WITH, VALUES,
 * TABLE or SHOW) go to a replica chosen by health and replay position, with read-your-writes
 * through consistency tokens, bounded staleness, and monotonic reads in a session
 * (`session()`). Open it with `ReplicaRouter.open` or, from URLs,
 * `openReplicaRouter` in `cloud-data-patterns/replication/postgres`.
 */
export class ReplicaRouter implements SqlClient {
  readonly engine = 'postgres' as const;
  /** @internal */ primary: PrimaryServer;
  /** @internal */ readonly replicas: ReplicaState[];
  /** @internal */ readonly fenced: string[] = [];
  /** @internal */ timeline: number;
  /** @internal */ readonly forks = new Map<number, Lsn>();
  /** @internal */ readonly clock: Clock;
  /** @internal */ readonly logger: Logger | undefined;
  readonly systemIdentifier: string;
  readonly #options: ReplicaRouterOptions;
  readonly #samples: { at: number; lsn: Lsn }[] = [];
  #primaryLsn: Lsn | undefined;
  #timer: NodeJS.Timeout | undefined;
  #polling: Promise<void> | undefined;
  #next = 0;
  #closed = false;
  #failingOver = false;
  readonly #counts = { primary: 0, replica: 0, waited: 0 };

  private constructor(options: ReplicaRouterOptions, systemIdentifier: string, timeline: number) {
    this.#options = options;
    this.primary = options.primary;
    this.systemIdentifier = systemIdentifier;
    this.timeline = timeline;
    this.clock = options.clock ?? systemClock;
    this.logger = options.logger;
    this.replicas = options.replicas.map((server) => ({
      server,
      healthy: false,
      excluded: undefined,
      replay: undefined,
      polledAt: Number.NEGATIVE_INFINITY,
      lastError: undefined,
      reads: 0,
    }));
  }

  /**
   * Checks the topology (the primary is not in recovery, every replica is, all share one
   * system identifier), polls once and starts polling. Closing the router does not close the
   * clients it was given.
   */
  static async open(options: ReplicaRouterOptions): Promise<ReplicaRouter> {
    const primary = await describeServer(options.primary.client);
    if (primary.inRecovery) {
      throw new NotPrimaryError(options.primary.name, 'it is in recovery (a standby)');
    }
    for (const replica of options.replicas) {
      const r = await describeServer(replica.client);
      if (!r.inRecovery) throw new NotAStandbyError(replica.name);
      if (r.systemIdentifier !== primary.systemIdentifier) {
        throw new ClusterMismatchError(
          `${replica.name} belongs to another cluster (system identifier ${r.systemIdentifier}, the primary's is ${primary.systemIdentifier}): give standbys made from this primary`,
        );
      }
    }
    const timeline = await primaryTimeline(options.primary.client);
    const router = new ReplicaRouter(options, primary.systemIdentifier, timeline);
    await router.refresh();
    router.#schedule();
    return router;
  }

  #schedule(): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => {
      this.refresh()
        .catch(() => {})
        .finally(() => this.#schedule());
    }, this.#options.pollIntervalMs ?? 100);
    this.#timer.unref();
  }

  #check(): void {
    if (this.#closed) throw new ClosedError('ReplicaRouter');
  }

  /** Polls the primary's WAL position and every replica's replay position now. */
  refresh(): Promise<void> {
    this.#polling ??= this.#poll().finally(() => {
      this.#polling = undefined;
    });
    return this.#polling;
  }

  async #poll(): Promise<void> {
    const started = this.clock.now();
    try {
      const { rows } = await this.primary.client.query<{ lsn: string }>(
        'SELECT pg_current_wal_lsn()::text AS lsn',
      );
      const lsn = parseLsn(rows[0]!.lsn)!;
      this.#primaryLsn = lsn;
      this.#samples.push({ at: started, lsn });
      if (this.#samples.length > SAMPLES) this.#samples.splice(0, this.#samples.length - SAMPLES);
    } catch (err) {
      this.logger?.warn({ err: errorMessage(err) }, 'replica router: primary poll failed');
    }
    await Promise.all(
      this.replicas.map(async (state) => {
        try {
          const { rows } = await state.server.client.query<{ rec: boolean; lsn: string | null }>(
            'SELECT pg_is_in_recovery() AS rec, pg_last_wal_replay_lsn()::text AS lsn',
          );
          const row = rows[0]!;
          if (!row.rec) {
            state.healthy = false;
            state.lastError = 'not in recovery: promoted or not a standby';
            return;
          }
          const replay = row.lsn === null ? undefined : parseLsn(row.lsn);
          if (replay !== undefined && (state.replay === undefined || replay > state.replay)) {
            state.replay = replay;
          }
          state.polledAt = started;
          state.healthy = true;
          state.lastError = undefined;
        } catch (err) {
          state.healthy = false;
          state.lastError = errorMessage(err);
        }
      }),
    );
  }

  /** Upper bound, in ms, on how far the replica's data is behind the primary. */
  #staleness(state: ReplicaState, now: number): number | undefined {
    if (state.replay === undefined) return undefined;
    for (let i = this.#samples.length - 1; i >= 0; i--) {
      const s = this.#samples[i]!;
      if (s.lsn <= state.replay) return Math.max(0, now - s.at);
    }
    return undefined;
  }

  #usable(): ReplicaState[] {
    return this.replicas.filter((r) => r.healthy && r.excluded === undefined);
  }

  #roundRobin(candidates: ReplicaState[]): ReplicaState | undefined {
    if (candidates.length === 0) return undefined;
    this.#next = (this.#next + 1) % 1_000_000;
    return candidates[this.#next % candidates.length];
  }

  /** Parses and checks a token against this cluster; coded errors for bad ones. */
  token(text: string | ConsistencyToken): ConsistencyToken {
    if (typeof text !== 'string') {
      return parseConsistencyToken(formatConsistencyToken(text), this.systemIdentifier);
    }
    return parseConsistencyToken(text, this.systemIdentifier);
  }

  /**
   * Whether a write acknowledged with this token may be lost: it was on a timeline that a
   * failover left at a position before it.
   */
  mayBeLost(token: string | ConsistencyToken): boolean {
    const t = this.token(token);
    const fork = this.forks.get(t.timeline);
    return fork !== undefined && t.lsn > fork;
  }

  /** Picks the server for a read; `undefined` means the primary. */
  async #pickReplica(
    consistency: ReadConsistency,
    sticky: string | undefined,
  ): Promise<ReplicaState | undefined> {
    let usable = this.#usable();
    if (sticky !== undefined) usable = usable.filter((r) => r.server.name === sticky);
    switch (consistency.kind) {
      case 'primary':
        return undefined;
      case 'any':
        return this.#roundRobin(usable);
      case 'bounded': {
        const now = this.clock.now();
        return this.#roundRobin(
          usable.filter((r) => (this.#staleness(r, now) ?? Infinity) <= consistency.maxStalenessMs),
        );
      }
      case 'after': {
        const token = this.token(consistency.token);
        // A token from an earlier timeline: replicas that follow the current primary replayed
        // everything up to the fork; past it the write may be lost, and only the primary says.
        if (token.timeline !== this.timeline) return undefined;
        const ready = usable.filter((r) => r.replay !== undefined && r.replay >= token.lsn);
        if (ready.length > 0) return this.#roundRobin(ready);
        const wait = this.#options.waitForReplicaMs ?? 0;
        if (wait <= 0 || usable.length === 0) return undefined;
        return this.#waitFor(usable, token.lsn, wait);
      }
    }
  }

  /** Probes the most advanced replicas until one has replayed `lsn`, up to `waitMs`. */
  async #waitFor(usable: ReplicaState[], lsn: Lsn, waitMs: number) {
    const deadline = this.clock.now() + waitMs;
    const ranked = [...usable].sort((a, b) => Number((b.replay ?? 0n) - (a.replay ?? 0n)));
    const candidates = ranked.slice(0, 2);
    this.#counts.waited++;
    for (;;) {
      for (const state of candidates) {
        try {
          const { rows } = await state.server.client.query<{ lsn: string | null }>(
            'SELECT pg_last_wal_replay_lsn()::text AS lsn',
          );
          const replay = rows[0]?.lsn ? parseLsn(rows[0].lsn) : undefined;
          if (replay !== undefined && (state.replay === undefined || replay > state.replay)) {
            state.replay = replay;
          }
          if (replay !== undefined && replay >= lsn) return state;
        } catch (err) {
          state.healthy = false;
          state.lastError = errorMessage(err);
        }
      }
      if (this.clock.now() >= deadline) return undefined;
      await this.clock.sleep(1);
    }
  }

  /**
   * A read with the given consistency. Returns the rows and the replica that served them
   * (undefined: the primary).
   */
  async read<R = Record<string, unknown>>(
    text: string,
    params?: readonly SqlValue[],
    consistency: ReadConsistency = this.#options.defaultRead ?? { kind: 'any' },
    options: ReadOptions = {},
  ): Promise<ReadResult<R>> {
    this.#check();
    const state = await this.#pickReplica(consistency, options.onlyReplica);
    if (state) {
      try {
        const res = await state.server.client.query<R>(text, params);
        state.reads++;
        this.#counts.replica++;
        return { ...res, servedBy: state.server.name, primary: false, replay: state.replay };
      } catch (err) {
        if (err instanceof SqlError && err.sqlState !== READ_ONLY_SQL_TRANSACTION) {
          if (err.sqlState !== undefined && !err.sqlState.startsWith('08')) throw err;
        }
        if (!(err instanceof SqlError)) {
          state.healthy = false;
          state.lastError = errorMessage(err);
        }
      }
    }
    const res = await this.#writable('read').query<R>(text, params);
    this.#counts.primary++;
    return { ...res, servedBy: this.primary.name, primary: true, replay: undefined };
  }

  /** The primary's client for a statement, refusing while fenced. */
  #writable(what: string, commit?: 'sync' | 'async'): SqlClient {
    this.#check();
    if (this.#failingOver || this.fenced.includes(this.primary.name)) {
      throw new NotPrimaryError(this.primary.name, `a failover is under way (${what})`);
    }
    if (commit === 'sync') {
      if (!this.primary.syncClient) {
        throw new NotPrimaryError(
          this.primary.name,
          'no synchronous connection is configured (primary.syncClient) for a sync write',
        );
      }
      return this.primary.syncClient;
    }
    return this.primary.client;
  }

  /** The primary's current position as a token (after a commit: covers that commit). */
  async currentToken(commit?: 'sync' | 'async'): Promise<ConsistencyToken> {
    const { rows } = await this.#writable('token', commit).query<{ lsn: string }>(
      'SELECT pg_current_wal_lsn()::text AS lsn',
    );
    return {
      systemIdentifier: this.systemIdentifier,
      timeline: this.timeline,
      lsn: parseLsn(rows[0]!.lsn)!,
    };
  }

  /** A write on the primary; returns its rows and a read-your-writes token. */
  async write<R = Record<string, unknown>>(
    text: string,
    params?: readonly SqlValue[],
    options: WriteOptions = {},
  ): Promise<WriteResult<R>> {
    const res = await this.#writable('write', options.commit).query<R>(text, params);
    const token = await this.currentToken(options.commit);
    return { ...res, token: formatConsistencyToken(token) };
  }

  /** A transaction on the primary; returns `fn`'s value and a read-your-writes token. */
  async writeTransaction<T>(
    fn: (tx: SqlTransaction) => Promise<T>,
    options: TransactionOptions & WriteOptions = {},
  ): Promise<{ value: T; token: string }> {
    const value = await this.#writable('transaction', options.commit).transaction(fn, options);
    const token = await this.currentToken(options.commit);
    return { value, token: formatConsistencyToken(token) };
  }

  query<R = Record<string, unknown>>(
    text: string,
    params?: readonly SqlValue[],
  ): Promise<QueryResult<R>> {
    if (mayReadOnReplica(text)) return this.read<R>(text, params).then(plain);
    return this.#writable('write').query<R>(text, params);
  }

  exec(script: string): Promise<void> {
    return this.#writable('exec').exec(script);
  }

  transaction<T>(fn: (tx: SqlTransaction) => Promise<T>, options?: TransactionOptions) {
    return this.#writable('transaction').transaction(fn, options);
  }

  listen(channel: string, handler: NotificationHandler, options?: ListenOptions) {
    return this.#writable('listen').listen(channel, handler, options);
  }

  notify(channel: string, payload?: string): Promise<void> {
    return this.#writable('notify').notify(channel, payload);
  }

  async ping(): Promise<void> {
    await this.#writable('ping').ping();
  }

  /** A session: read-your-writes and monotonic reads for one user or request chain. */
  session(options: { token?: string } = {}): ReplicaSession {
    return new ReplicaSession(this, options.token);
  }

  status(): RouterStatus {
    const now = this.clock.now();
    return {
      systemIdentifier: this.systemIdentifier,
      primary: this.primary.name,
      timeline: this.timeline,
      primaryLsn: this.#primaryLsn === undefined ? null : lsnText(this.#primaryLsn),
      fenced: [...this.fenced],
      reads: { ...this.#counts },
      replicas: this.replicas.map((r) => ({
        name: r.server.name,
        healthy: r.healthy,
        ...(r.excluded ? { excluded: r.excluded } : {}),
        replayLsn: r.replay === undefined ? null : lsnText(r.replay),
        lagBytes:
          r.replay === undefined || this.#primaryLsn === undefined
            ? null
            : Math.max(0, Number(this.#primaryLsn - r.replay)),
        stalenessMs: this.#staleness(r, now) ?? null,
        ...(r.lastError ? { lastError: r.lastError } : {}),
        reads: r.reads,
      })),
    };
  }

  /**
   * Promotes a standby and makes it the primary; see `FailoverOptions`. Writes are refused
   * with `NotPrimaryError` while it runs; the old primary is never written to again.
   */
  async failover(options: FailoverOptions = {}): Promise<FailoverReport> {
    this.#check();
    this.#failingOver = true;
    try {
      const report = await runFailover(this, options);
      this.#samples.length = 0;
      this.#primaryLsn = undefined;
      await this.refresh();
      return report;
    } finally {
      this.#failingOver = false;
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#polling?.catch(() => {});
    if (this.#options.closeClients) {
      const { primary, replicas } = this.#options;
      const clients = [primary.client, primary.syncClient, ...replicas.map((r) => r.client)];
      await Promise.all(clients.map((c) => c?.close().catch(() => {})));
    }
  }
}

function lsnText(lsn: Lsn): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

/** @internal */
export async function describeServer(client: SqlClient) {
  const { rows } = await client.query<{ rec: boolean; sysid: string }>(
    'SELECT pg_is_in_recovery() AS rec, system_identifier::text AS sysid FROM pg_control_system()',
  );
  return { inRecovery: rows[0]!.rec, systemIdentifier: rows[0]!.sysid };
}

/** @internal The primary's timeline, from the name of the WAL file it writes. */
export async function primaryTimeline(client: SqlClient): Promise<number> {
  const { rows } = await client.query<{ f: string }>(
    'SELECT pg_walfile_name(pg_current_wal_lsn()) AS f',
  );
  return Number.parseInt(rows[0]!.f.slice(0, 8), 16);
}
