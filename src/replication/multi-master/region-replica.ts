import type { Logger } from 'pino';
import { type Clock, systemClock } from '../../core/clock.js';
import { CdpError, ClosedError, errorMessage, ValidationError } from '../../core/errors.js';
import { newId } from '../../core/ids.js';
import type { Queryable, SqlClient } from '../../engines/sql/sql-client.js';
import {
  type Broker,
  createEnvelope,
  type Delivery,
  decodeEnvelope,
  encodeEnvelope,
  type MessageEnvelope,
  Outbox,
  OutboxRelay,
  SqlInbox,
  type Subscription,
} from '../../messaging/index.js';
import type { Crdt, CrdtType } from '../crdt/crdt.js';
import { assertNodeId, HybridLogicalClock } from '../crdt/hlc.js';
import { compareVersions, mergeVersions, type VersionVector } from '../crdt/version-vector.js';
import { deltaMessage, digestMessage, mmTypes, stateDigest, stateMessage } from './messages.js';

// biome-ignore lint/suspicious/noExplicitAny: a replica holds CRDTs of several types
type AnyCrdt = Crdt<any, any>;
// biome-ignore lint/suspicious/noExplicitAny: a replica holds CRDTs of several types
type AnyType = CrdtType<any, any, any>;

export interface RegionReplicaOptions {
  /** This region's own database (PGlite, or a PostgreSQL server in that region). */
  sql: SqlClient;
  /** The broker all regions of the group publish to and consume from. */
  broker: Broker;
  /** This region's id (the CRDTs' node id): letters, digits, `_`, `-`, `.`. */
  region: string;
  /** The replication group (topics `mm.<group>.*`): letters, digits, `_`, `-`. */
  group: string;
  /** The CRDT types objects of this group may have. */
  types: readonly AnyType[];
  /** Time between anti-entropy rounds (digest exchange). Default 5,000 ms; 0: only by call. */
  antiEntropyIntervalMs?: number;
  /** Outbox relay poll interval (it is also woken by NOTIFY). Default 1,000 ms. */
  relayPollIntervalMs?: number;
  clock?: Clock;
  logger?: Logger;
}

/** Counters of what a replica did since it opened. */
export interface RegionReplicaStats {
  region: string;
  /** Local updates (each wrote a delta to the outbox). */
  updates: number;
  /** Deltas from other regions merged through the inbox. */
  deltasApplied: number;
  /** Deliveries the inbox recognised as already applied. */
  duplicates: number;
  /** Messages lost while the region was cut off (`partition(true)`), both directions. */
  dropped: number;
  /** Merges of updates made concurrently in two regions (neither had seen the other's). */
  conflictsResolved: number;
  /** Anti-entropy rounds started here (digests published). */
  antiEntropyRounds: number;
  /** Objects that anti-entropy changed here: what lost messages had missed. */
  repairs: number;
  /** Messages sent: deltas published by the relay, digests and states. */
  messagesSent: number;
  messagesReceived: number;
}

/** An update for a type the replica was not given, or a key held with another type. */
export class CrdtTypeError extends CdpError {
  constructor(message: string) {
    super('REPLICATION_CRDT_TYPE', message);
  }
}

const GROUP = /^[A-Za-z0-9_-]{1,64}$/;

interface Row {
  type: string;
  state: unknown;
  digest: string;
  vv: VersionVector;
}

/**
 * One region's replica of a group of CRDT objects (multi-master: every region accepts writes).
 * An update runs in one transaction of the region's database: the object's new state and its
 * delta in the outbox. The outbox relay publishes the delta; every other region applies it
 * exactly once through its inbox (a join: order and repeats do not matter). Anti-entropy
 * repairs what a lost message missed: every `antiEntropyIntervalMs` a region publishes a digest
 * per object; a region that differs answers with its states and the keys it lacks; states are
 * joined, and a region that had more answers once with its own.
 */
export class RegionReplica {
  readonly region: string;
  readonly group: string;
  readonly hlc: HybridLogicalClock;
  readonly #sql: SqlClient;
  readonly #broker: Broker;
  readonly #types: Map<string, AnyType>;
  readonly #clock: Clock;
  readonly #logger: Logger | undefined;
  readonly #outbox: Outbox;
  readonly #inbox: SqlInbox;
  readonly #relay: OutboxRelay;
  readonly #stop = new AbortController();
  #subscription: Subscription | undefined;
  #loop: Promise<void> | undefined;
  #partitioned = false;
  #closed = false;
  readonly #stats: RegionReplicaStats;

  /** Open the replica: starts its outbox relay, its subscription and the anti-entropy timer. */
  static async open(options: RegionReplicaOptions): Promise<RegionReplica> {
    const r = new RegionReplica(options);
    await r.#start(options.antiEntropyIntervalMs ?? 5000);
    return r;
  }

  private constructor(o: RegionReplicaOptions) {
    assertNodeId(o.region);
    if (!GROUP.test(o.group))
      throw new ValidationError(
        `invalid replication group ${JSON.stringify(o.group)}: use 1-64 letters, digits, '_' or '-'`,
      );
    this.region = o.region;
    this.group = o.group;
    this.#sql = o.sql;
    this.#clock = o.clock ?? systemClock;
    this.#logger = o.logger;
    this.hlc = new HybridLogicalClock({ node: o.region, clock: this.#clock });
    this.#types = new Map(o.types.map((t) => [t.name, t]));
    this.#stats = {
      region: o.region,
      updates: 0,
      deltasApplied: 0,
      duplicates: 0,
      dropped: 0,
      conflictsResolved: 0,
      antiEntropyRounds: 0,
      repairs: 0,
      messagesSent: 0,
      messagesReceived: 0,
    };
    const inner = o.broker;
    // The relay and anti-entropy publish through this gate: a partitioned region's messages
    // are lost (the relay believes them sent), as on a cut link.
    this.#broker = {
      ...inner,
      kind: inner.kind,
      dedupOnBroker: inner.dedupOnBroker,
      ping: () => inner.ping(),
      publish: async (m) => {
        if (this.#partitioned) {
          this.#stats.dropped++;
          return { id: m.id, duplicate: false };
        }
        this.#stats.messagesSent++;
        return inner.publish(m);
      },
      subscribe: (s, h) => inner.subscribe(s, h),
      listDeadLetters: (x) => inner.listDeadLetters(x),
      replayDeadLetter: (id) => inner.replayDeadLetter(id),
      close: async () => {},
    };
    this.#outbox = new Outbox({
      source: `/replication/${o.group}/${o.region}`,
      clock: this.#clock,
    });
    this.#inbox = new SqlInbox({ sql: o.sql, consumer: this.#consumer, ordering: 'none' });
    this.#relay = new OutboxRelay({
      sql: o.sql,
      broker: this.#broker,
      clock: this.#clock,
      pollIntervalMs: o.relayPollIntervalMs ?? 1000,
      ...(o.logger ? { logger: o.logger } : {}),
    });
  }

  get #consumer(): string {
    return `mm-${this.group}-${this.region.replace(/\./g, '_')}`;
  }

  #topic(kind: 'delta' | 'digest' | 'state'): string {
    return `mm.${this.group}.${kind}`;
  }

  async #start(intervalMs: number): Promise<void> {
    await this.#relay.start();
    this.#subscription = await this.#broker.subscribe(
      {
        group: this.#consumer,
        topics: [this.#topic('delta'), this.#topic('digest'), this.#topic('state')],
        concurrency: 4,
      },
      (d) => this.#receive(d),
    );
    if (intervalMs > 0) {
      this.#loop = (async () => {
        const signal = this.#stop.signal;
        while (!signal.aborted) {
          try {
            await this.#clock.sleep(intervalMs, signal);
            await this.antiEntropy();
          } catch (err) {
            if (signal.aborted) return;
            this.#logger?.warn({ err: errorMessage(err) }, 'anti-entropy round failed');
          }
        }
      })();
    }
  }

  #type(name: string): AnyType {
    const t = this.#types.get(name);
    if (!t)
      throw new CrdtTypeError(
        `CRDT type ${JSON.stringify(name)} is not one of this replica's types (${[...this.#types.keys()].join(', ')}); pass it in options.types`,
      );
    return t;
  }

  #check(): void {
    if (this.#closed) throw new ClosedError('RegionReplica');
  }

  /**
   * Update object `key` (created empty when new) of type `type`: `mutate` calls one of the
   * CRDT's mutators and returns its delta. The new state and the delta commit together.
   * Returns the object's value after the update.
   */
  async update<C extends AnyCrdt>(
    key: string,
    type: CrdtType<unknown, unknown, C>,
    mutate: (crdt: C, hlc: HybridLogicalClock) => unknown,
  ): Promise<ReturnType<C['value']>> {
    this.#check();
    const t = this.#type(type.name);
    const value = await this.#sql.transaction(async (tx) => {
      const row = await this.#load(tx, key, true);
      if (row && row.type !== t.name)
        throw new CrdtTypeError(`object ${JSON.stringify(key)} is a ${row.type}, not a ${t.name}`);
      const crdt = (row ? t.fromState(this.region, row.state) : t.create(this.region)) as C;
      const delta = mutate(crdt, this.hlc);
      const vv = { ...(row?.vv ?? {}), [this.region]: (row?.vv[this.region] ?? 0) + 1 };
      await this.#store(tx, key, t.name, crdt.state(), vv);
      await this.#outbox.add(tx, {
        topic: this.#topic('delta'),
        type: deltaMessage.type,
        data: { origin: this.region, key, type: t.name, delta, vv, stamp: this.hlc.peek() },
      });
      return crdt.value();
    });
    this.#stats.updates++;
    return value as ReturnType<C['value']>;
  }

  /** The object's value, or undefined when this region has never heard of it. */
  async read(key: string): Promise<{ type: string; value: unknown } | undefined> {
    const row = await this.#load(this.#sql, key, false);
    if (!row) return undefined;
    return {
      type: row.type,
      value: this.#type(row.type).fromState(this.region, row.state).value(),
    };
  }

  /** Every object of the group here: key, type, value and digest (equal digests: equal states). */
  async list(): Promise<{ key: string; type: string; value: unknown; digest: string }[]> {
    const { rows } = await this.#sql.query<{ key: string } & Row>(
      'SELECT key, type, state, digest, vv FROM cdp_mm_objects WHERE grp = $1 ORDER BY key',
      [this.group],
    );
    return rows.map((r) => ({
      key: r.key,
      type: r.type,
      value: this.#type(r.type).fromState(this.region, r.state).value(),
      digest: r.digest,
    }));
  }

  stats(): RegionReplicaStats {
    return { ...this.#stats };
  }

  get partitioned(): boolean {
    return this.#partitioned;
  }

  /**
   * Cut this region off (true) or reconnect it (false): while cut off, every message it sends
   * or receives is lost, as on a broken link; updates still commit locally. Anti-entropy
   * repairs the difference after reconnecting.
   */
  partition(cut: boolean): void {
    this.#partitioned = cut;
  }

  /** One anti-entropy round now: publish a digest of every object. */
  async antiEntropy(): Promise<void> {
    this.#check();
    const { rows } = await this.#sql.query<{ key: string; digest: string }>(
      'SELECT key, digest FROM cdp_mm_objects WHERE grp = $1',
      [this.group],
    );
    this.#stats.antiEntropyRounds++;
    await this.#publish(this.#topic('digest'), digestMessage.type, {
      origin: this.region,
      digests: Object.fromEntries(rows.map((r) => [r.key, r.digest])),
    });
  }

  async #publish(topic: string, type: string, data: unknown): Promise<void> {
    const env = createEnvelope(
      { type, source: `/replication/${this.group}/${this.region}`, data },
      this.#clock,
    );
    await this.#broker.publish({ topic, id: env.id ?? newId(), body: encodeEnvelope(env) });
  }

  async #load(q: Queryable, key: string, lock: boolean): Promise<Row | undefined> {
    // FOR UPDATE locks only a row that exists: a local update creating the object and a remote
    // delta for it would both see none and the second write would overwrite the first. A lock
    // on the key's name, held to the end of the transaction, orders them.
    if (lock)
      await q.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [
        `cdp_mm_objects:${this.group}:${key}`,
      ]);
    const { rows } = await q.query<Row>(
      `SELECT type, state, digest, vv FROM cdp_mm_objects WHERE grp = $1 AND key = $2${lock ? ' FOR UPDATE' : ''}`,
      [this.group, key],
    );
    return rows[0];
  }

  async #store(q: Queryable, key: string, type: string, state: unknown, vv: VersionVector) {
    await q.query(
      `INSERT INTO cdp_mm_objects (grp, key, type, state, digest, vv) VALUES ($1, $2, $3, $4::jsonb, $5, $6::jsonb)
       ON CONFLICT (grp, key) DO UPDATE SET type = EXCLUDED.type, state = EXCLUDED.state,
         digest = EXCLUDED.digest, vv = EXCLUDED.vv, updated_at = clock_timestamp()`,
      [this.group, key, type, JSON.stringify(state), stateDigest(state), JSON.stringify(vv)],
    );
  }

  /**
   * Join `incoming` (a delta or a whole state) into object `key`. Returns whether the state
   * changed and its digest after.
   */
  async #merge(
    q: Queryable,
    key: string,
    typeName: string,
    incoming: unknown,
    vv: VersionVector,
  ): Promise<{
    changed: boolean;
    digest: string;
    incomingDigest: string;
    state: unknown;
    vv: VersionVector;
  }> {
    const t = this.#type(typeName);
    const parsed = t.parse(incoming); // checks the wire data
    const row = await this.#load(q, key, true);
    if (row && row.type !== t.name)
      throw new ValidationError(`object ${JSON.stringify(key)} is a ${row.type}, not a ${t.name}`);
    const crdt = row ? t.fromState(this.region, row.state) : t.create(this.region);
    const changed = crdt.merge(parsed);
    const mine = row?.vv ?? {};
    if (changed && row && compareVersions(vv, mine) === 'concurrent')
      this.#stats.conflictsResolved++;
    const merged = mergeVersions(mine, vv);
    const vvChanged = compareVersions(merged, mine) !== 'equal';
    const state = crdt.state();
    if (changed || vvChanged || !row) await this.#store(q, key, t.name, state, merged);
    return {
      changed,
      digest: stateDigest(state),
      incomingDigest: stateDigest(t.fromState(this.region, parsed).state()),
      state,
      vv: merged,
    };
  }

  async #receive(d: Delivery) {
    this.#stats.messagesReceived++;
    const raw = decodeEnvelope(d.body);
    const env: MessageEnvelope = mmTypes.parse(raw);
    const data = env.data as { origin: string };
    if (data.origin === this.region) return;
    if (this.#partitioned) {
      this.#stats.dropped++;
      return;
    }
    if (env.type === deltaMessage.type) {
      const m = env.data as (typeof deltaMessage.schema)['_output'];
      try {
        this.hlc.receive(m.stamp);
      } catch (err) {
        this.#logger?.warn({ err: errorMessage(err), from: m.origin }, 'remote clock ahead');
      }
      const r = await this.#inbox.handle(env, async (tx) => {
        await this.#merge(tx, m.key, m.type, m.delta, m.vv);
      });
      if (r === 'duplicate') this.#stats.duplicates++;
      else this.#stats.deltasApplied++;
    } else if (env.type === digestMessage.type) {
      await this.#onDigest(env.data as (typeof digestMessage.schema)['_output']);
    } else {
      await this.#onState(env.data as (typeof stateMessage.schema)['_output']);
    }
  }

  async #onDigest(m: { origin: string; digests: Record<string, string> }): Promise<void> {
    const { rows } = await this.#sql.query<{ key: string } & Row>(
      'SELECT key, type, state, digest, vv FROM cdp_mm_objects WHERE grp = $1',
      [this.group],
    );
    const mine = new Map(rows.map((r) => [r.key, r]));
    const want = Object.keys(m.digests).filter((k) => !mine.has(k));
    const states = rows
      .filter((r) => m.digests[r.key] !== r.digest)
      .map((r) => ({ key: r.key, type: r.type, state: r.state, vv: r.vv }));
    if (states.length === 0 && want.length === 0) return;
    await this.#publish(this.#topic('state'), stateMessage.type, {
      origin: this.region,
      to: m.origin,
      states,
      want,
    });
  }

  async #onState(m: (typeof stateMessage.schema)['_output']): Promise<void> {
    const answer: { key: string; type: string; state: unknown; vv: VersionVector }[] = [];
    for (const s of m.states) {
      const r = await this.#sql.transaction((tx) => this.#merge(tx, s.key, s.type, s.state, s.vv));
      if (r.changed) this.#stats.repairs++;
      if (m.to === this.region && r.digest !== r.incomingDigest)
        answer.push({ key: s.key, type: s.type, state: r.state, vv: r.vv });
    }
    if (m.to !== this.region) return;
    for (const key of m.want) {
      const row = await this.#load(this.#sql, key, false);
      if (row) answer.push({ key, type: row.type, state: row.state, vv: row.vv });
    }
    if (answer.length === 0) return;
    // No `to`: the asker joins these and has nothing more to say.
    await this.#publish(this.#topic('state'), stateMessage.type, {
      origin: this.region,
      states: answer,
      want: [],
    });
  }

  /** Stop the anti-entropy timer, the subscription and the relay (the database stays open). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#stop.abort();
    await this.#loop;
    await this.#subscription?.close();
    await this.#relay.close();
  }
}
