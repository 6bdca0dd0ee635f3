import type { Logger } from 'pino';
import { type Clock, systemClock } from '../core/clock.js';
import { ValidationError } from '../core/errors.js';
import type { Migration } from '../engines/sql/migrations.js';
import type { Queryable, SqlClient, SqlValue } from '../engines/sql/sql-client.js';
import {
  type Broker,
  type EventTypes,
  type MessageEnvelope,
  SqlInbox,
  type Subscription,
} from '../messaging/index.js';

/**
 * A choreographed saga: services react to each other's events (see `ChoreographyService` in
 * the messaging module), and a failure is answered by compensating events, with no
 * coordinator. What a coordinator would know (where each instance is, which ones are stuck)
 * is recorded here by a monitor that listens to the saga's events like any other service.
 *
 * The definition names the saga's event types by role: the event that starts an instance,
 * the ones that end it (completed, or compensated after a failure), the failures that start
 * compensation, and the steps and compensations in between (recorded in the history).
 */
export interface ChoreographedSagaDefinition {
  /** The saga's name: letters, digits, `_`, `-` and `.` (the monitor's group and inbox name). */
  name: string;
  /** The event type that starts an instance; its `correlationid` is the instance's id. */
  startedBy: string;
  /** Events of forward progress, recorded in the history. */
  steps?: readonly string[];
  /** A step refused or failed: the instance is compensating from here on. */
  failedBy?: readonly string[];
  /** Compensating events (the undo of a completed step), recorded in the history. */
  compensations?: readonly string[];
  /** The instance ended as a success. */
  completedBy: readonly string[];
  /** The instance ended after its compensations: nothing of it remains in effect. */
  compensatedBy: readonly string[];
}

export type ChoreographedSagaState = 'running' | 'compensating' | 'completed' | 'compensated';

export interface ChoreographedSagaEvent {
  id: string;
  type: string;
  source: string;
  at: Date;
}

export interface ChoreographedSagaInstance {
  saga: string;
  /** The correlation id of the instance's events (the first event's id unless given). */
  id: string;
  state: ChoreographedSagaState;
  startedAt: Date | null;
  /** When the monitor recorded the instance's latest event. */
  updatedAt: Date;
  endedAt: Date | null;
  /** Events seen, in the order the monitor recorded them. */
  events: ChoreographedSagaEvent[];
}

/** Schema of the monitor's table, module 'choreographed-saga'. */
export const choreographedSagaMigrations: Migration[] = [
  {
    module: 'choreographed-saga',
    version: 1,
    name: 'choreographed saga instances',
    sql: `
CREATE TABLE cdp_choreographed_sagas (
  saga text NOT NULL,
  correlation_id text NOT NULL,
  state text NOT NULL,
  started_at timestamptz,
  updated_at timestamptz NOT NULL,
  ended_at timestamptz,
  events jsonb NOT NULL DEFAULT '[]'::jsonb,
  PRIMARY KEY (saga, correlation_id)
);
CREATE INDEX cdp_choreographed_sagas_open ON cdp_choreographed_sagas (saga, state, updated_at);
`,
  },
];

const NAME = /^[A-Za-z0-9_.-]{1,100}$/;
/** A state never moves to one of lower rank: terminal states are final, whatever arrives late. */
const RANK: Record<ChoreographedSagaState, number> = {
  running: 0,
  compensating: 1,
  completed: 2,
  compensated: 2,
};

type Role = 'start' | 'step' | 'failure' | 'compensation' | 'completed' | 'compensated';

function rolesOf(d: ChoreographedSagaDefinition): Map<string, Role> {
  if (!NAME.test(d.name)) {
    throw new ValidationError(
      `saga name ${JSON.stringify(d.name)}: use 1 to 100 letters, digits, _, - and .`,
      [{ path: 'name', message: 'invalid' }],
    );
  }
  if (d.completedBy.length === 0 || d.compensatedBy.length === 0) {
    throw new ValidationError(
      `saga ${d.name}: name at least one completedBy and one compensatedBy event type, so that every instance can end`,
      [{ path: d.completedBy.length === 0 ? 'completedBy' : 'compensatedBy', message: 'empty' }],
    );
  }
  const roles = new Map<string, Role>();
  const add = (role: Role, types: readonly string[] | undefined, path: string) => {
    for (const t of types ?? []) {
      const had = roles.get(t);
      if (had !== undefined) {
        throw new ValidationError(
          `saga ${d.name}: event type ${t} has two roles (${had} and ${role}); give each type one role`,
          [{ path, message: `duplicate of ${had}` }],
        );
      }
      roles.set(t, role);
    }
  };
  add('start', [d.startedBy], 'startedBy');
  add('step', d.steps, 'steps');
  add('failure', d.failedBy, 'failedBy');
  add('compensation', d.compensations, 'compensations');
  add('completed', d.completedBy, 'completedBy');
  add('compensated', d.compensatedBy, 'compensatedBy');
  return roles;
}

function stateAfter(role: Role): ChoreographedSagaState {
  switch (role) {
    case 'failure':
    case 'compensation':
      return 'compensating';
    case 'completed':
      return 'completed';
    case 'compensated':
      return 'compensated';
    default:
      return 'running';
  }
}

export interface ChoreographedSagaMonitorOptions {
  sql: SqlClient;
  broker: Broker;
  /** The schemas of the saga's events (every type the definition names must be registered). */
  types: EventTypes;
  definition: ChoreographedSagaDefinition;
  clock?: Clock;
  logger?: Logger;
  /** Broker redeliveries before a message the monitor cannot record is dead-lettered. Default 5. */
  maxDeliveries?: number;
}

interface Row {
  saga: string;
  correlation_id: string;
  state: ChoreographedSagaState;
  started_at: Date | null;
  updated_at: Date;
  ended_at: Date | null;
  events: { id: string; type: string; source: string; at: string }[];
}

const toInstance = (r: Row): ChoreographedSagaInstance => ({
  saga: r.saga,
  id: r.correlation_id,
  state: r.state,
  startedAt: r.started_at,
  updatedAt: r.updated_at,
  endedAt: r.ended_at,
  events: r.events.map((e) => ({ id: e.id, type: e.type, source: e.source, at: new Date(e.at) })),
});

/**
 * Records each instance of a choreographed saga from its events: one row per correlation id
 * with its state and history. It is a consumer group of its own (`saga-<name>`) with an inbox,
 * so a redelivered event is recorded once, and events that arrive out of order (they travel on
 * different topics) never move a finished instance back. `list({ stuckForMs })` finds the
 * instances that neither completed nor compensated in time: the question choreography
 * otherwise leaves without an answer.
 */
export class ChoreographedSagaMonitor {
  readonly definition: ChoreographedSagaDefinition;
  readonly #o: ChoreographedSagaMonitorOptions;
  readonly #roles: Map<string, Role>;
  readonly #clock: Clock;
  readonly #inbox: SqlInbox;
  #sub: Subscription | undefined;
  #closed = false;

  private constructor(options: ChoreographedSagaMonitorOptions, roles: Map<string, Role>) {
    this.definition = options.definition;
    this.#o = options;
    this.#roles = roles;
    this.#clock = options.clock ?? systemClock;
    this.#inbox = new SqlInbox({
      sql: options.sql,
      consumer: `saga-${options.definition.name}`,
      ordering: 'none',
    });
  }

  /**
   * Start recording: subscribes to every event type the definition names. The tables come from
   * `choreographedSagaMigrations` and the messaging module's (the inbox); migrate both first.
   */
  static async open(options: ChoreographedSagaMonitorOptions): Promise<ChoreographedSagaMonitor> {
    const roles = rolesOf(options.definition);
    for (const t of roles.keys()) {
      if (!options.types.has(t)) {
        throw new ValidationError(
          `saga ${options.definition.name} names event type ${t}, which has no registered schema: define it in the EventTypes passed in`,
          [{ path: 'types', message: `missing ${t}` }],
        );
      }
    }
    const monitor = new ChoreographedSagaMonitor(options, roles);
    await monitor.#subscribe();
    return monitor;
  }

  async #subscribe(): Promise<void> {
    const handler = this.#inbox.handler(
      this.#o.types,
      async (event, tx) => {
        await this.record(tx, event);
      },
      { unknownTypes: 'ignore' },
    );
    this.#sub = await this.#o.broker.subscribe(
      {
        group: `saga-${this.definition.name}`,
        topics: [...this.#roles.keys()],
        maxDeliveries: this.#o.maxDeliveries ?? 5,
        concurrency: 4,
      },
      handler,
    );
  }

  /**
   * Record one event of the saga (the monitor's handler does this for each delivery; exposed
   * so a service can also record in its own transaction). Events of other types are ignored.
   */
  async record(tx: Queryable, event: MessageEnvelope): Promise<void> {
    const role = this.#roles.get(event.type);
    if (role === undefined) return;
    const now = new Date(this.#clock.now());
    const state = stateAfter(role);
    const entry = JSON.stringify([
      { id: event.id, type: event.type, source: event.source, at: now.toISOString() },
    ]);
    const ended = RANK[state] === 2 ? now : null;
    const started = role === 'start' ? now : null;
    // One statement: the row is created by whichever event arrives first, and a state only
    // moves up in rank (a late step never reopens a finished instance).
    await tx.query(
      `INSERT INTO cdp_choreographed_sagas AS s
         (saga, correlation_id, state, started_at, updated_at, ended_at, events)
       VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)
       ON CONFLICT (saga, correlation_id) DO UPDATE SET
         state = CASE WHEN $8::int > (CASE s.state WHEN 'running' THEN 0 WHEN 'compensating' THEN 1 ELSE 2 END)
                      THEN EXCLUDED.state ELSE s.state END,
         started_at = coalesce(s.started_at, EXCLUDED.started_at),
         ended_at = coalesce(s.ended_at, EXCLUDED.ended_at),
         updated_at = EXCLUDED.updated_at,
         events = s.events || EXCLUDED.events`,
      [this.definition.name, event.correlationid, state, started, now, ended, entry, RANK[state]],
    );
  }

  /** One instance by its correlation id, or undefined when no event of it was recorded. */
  async get(id: string): Promise<ChoreographedSagaInstance | undefined> {
    const { rows } = await this.#o.sql.query<Row>(
      'SELECT * FROM cdp_choreographed_sagas WHERE saga = $1 AND correlation_id = $2',
      [this.definition.name, id],
    );
    return rows[0] ? toInstance(rows[0]) : undefined;
  }

  /**
   * Instances, latest first. `state` filters; `stuckForMs` keeps the unfinished ones (running or
   * compensating) whose latest event is older than that: look at those, or alert on them.
   */
  async list(
    filter: { state?: ChoreographedSagaState; stuckForMs?: number; limit?: number } = {},
  ): Promise<ChoreographedSagaInstance[]> {
    const limit = filter.limit ?? 100;
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) {
      throw new ValidationError(`limit must be an integer from 1 to 10000, got ${limit}`);
    }
    const where = ['saga = $1'];
    const params: SqlValue[] = [this.definition.name];
    if (filter.state !== undefined) {
      params.push(filter.state);
      where.push(`state = $${params.length}`);
    }
    if (filter.stuckForMs !== undefined) {
      if (!(filter.stuckForMs >= 0)) {
        throw new ValidationError(`stuckForMs must be >= 0, got ${filter.stuckForMs}`);
      }
      params.push(new Date(this.#clock.now() - filter.stuckForMs));
      where.push(`state IN ('running', 'compensating') AND updated_at < $${params.length}`);
    }
    params.push(limit);
    const { rows } = await this.#o.sql.query<Row>(
      `SELECT * FROM cdp_choreographed_sagas WHERE ${where.join(' AND ')}
       ORDER BY updated_at DESC, correlation_id LIMIT $${params.length}`,
      params,
    );
    return rows.map(toInstance);
  }

  /** How many instances are in each state. */
  async counts(): Promise<Record<ChoreographedSagaState, number>> {
    const { rows } = await this.#o.sql.query<{ state: ChoreographedSagaState; n: string }>(
      'SELECT state, count(*) AS n FROM cdp_choreographed_sagas WHERE saga = $1 GROUP BY state',
      [this.definition.name],
    );
    const out = { running: 0, compensating: 0, completed: 0, compensated: 0 };
    for (const r of rows) out[r.state] = Number(r.n);
    return out;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#sub?.close();
  }
}
