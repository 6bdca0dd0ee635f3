import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TimeoutError } from '../../src/core/errors.js';
import { PgSqlClient } from '../../src/engines/sql/pg-sql-client.js';
import { PgliteSqlClient } from '../../src/engines/sql/pglite-sql-client.js';
import type { SqlClient } from '../../src/engines/sql/sql-client.js';
import {
  parkedEvents,
  type SqlEventStore,
  SqlSubscription,
  SqlEventStore as Store,
  type SubscriptionHandler,
  waitForSubscription,
} from '../../src/events/index.js';
import { createTempDatabase, eventually, sid } from '../../src/testing/index.js';
import { describeServer } from '../support/servers.js';

/**
 * `oneConnection`: PGlite's single connection runs one transaction at a time, so an append
 * cannot commit while a handler's transaction is open there; tests that need it are left out.
 */
function subscriptionSuite(
  getSql: () => SqlClient,
  getStore: () => SqlEventStore,
  { oneConnection = false } = {},
): void {
  let seq = 0;
  const setup = async () => {
    const name = `sub_${process.pid}_${seq++}`;
    const table = `t_${name}`;
    await getSql().exec(
      `CREATE TABLE ${table} (event_id uuid PRIMARY KEY, stream text, data jsonb)`,
    );
    const count = async () =>
      Number(
        (await getSql().query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`)).rows[0]!.n,
      );
    // A projection that writes SQL: a duplicate delivery would hit the primary key.
    const project: SubscriptionHandler = async (e, tx) => {
      await tx.query(`INSERT INTO ${table} (event_id, stream, data) VALUES ($1, $2, $3::jsonb)`, [
        e.id,
        e.streamId,
        JSON.stringify(e.data),
      ]);
    };
    return { name, table, count, project };
  };

  // First in the suite: no other test's subscription holds a lease yet.
  it('sends no wake-up while no subscription holds a lease, and does once one does', async () => {
    const store = new Store(getSql(), { subscriberCheckMs: 600_000 });
    const heard: string[] = [];
    const unlisten = await getSql().listen('cdp_events', (payload) => {
      heard.push(payload);
    });
    const { name } = await setup();
    const sub = new SqlSubscription({
      name,
      store,
      handler: async () => {},
      pollIntervalMs: 600_000,
      warmupMs: 0,
    });
    try {
      expect(await store.hasSubscribers()).toBe(false);
      for (let i = 0; i < 5; i++) await store.append(sid('quiet'), [{ type: 'Quiet', data: i }]);
      // The barrier: an append that wakes subscribers sends its NOTIFY before it returns (the
      // first after a quiet spell at once), and notifications arrive in commit order, so a
      // wake-up from these appends would arrive before this marker.
      await getSql().notify('cdp_events', 'marker');
      await eventually(() => heard.includes('marker'), 'the marker notification', {
        timeoutMs: 10_000,
      });
      expect(heard).toEqual(['marker']);

      await sub.start();
      await eventually(() => sub.status().active, 'the lease', { timeoutMs: 10_000 });
      expect(await store.hasSubscribers()).toBe(true);
      await store.append(sid('quiet'), [{ type: 'Quiet', data: 'heard' }]);
      await eventually(() => heard.length > 1, 'the wake-up', { timeoutMs: 10_000 });
      expect(heard[1]).toBe('');
    } finally {
      await unlisten();
      await sub.close();
      await store.close();
    }
    // A closed subscription gives its lease up: no subscriber again.
    expect(await store.hasSubscribers()).toBe(false);
  });

  it('polls quickly after taking its lease, until stores have seen it', async () => {
    const { name, count, project } = await setup();
    // This store looked before the subscription started and will not look again for 10 minutes.
    const store = new Store(getSql(), { subscriberCheckMs: 600_000 });
    const end = (await store.readAll({ after: 0, limit: 1_000_000 })).next;
    await getSql().query('INSERT INTO cdp_event_subscriptions (name, position) VALUES ($1, $2)', [
      name,
      end,
    ]);
    expect(await store.hasSubscribers()).toBe(false);
    const sub = new SqlSubscription({
      name,
      store,
      handler: project,
      types: ['WarmT'],
      pollIntervalMs: 600_000,
      warmupMs: 20_000,
    });
    try {
      await sub.start();
      await eventually(() => sub.status().active, 'the lease', { timeoutMs: 10_000 });
      await store.append(sid('warm'), [{ type: 'WarmT', data: 1 }]);
      // No wake-up is sent and the next poll is 10 minutes away: only warming up delivers.
      await eventually(async () => (await count()) === 1, 'the event, while warming up', {
        timeoutMs: 15_000,
      });
    } finally {
      await sub.close();
      await store.close();
    }
  });

  it('catches up from its durable checkpoint, then follows live, each event applied once', async () => {
    const { name, count, project } = await setup();
    const store = getStore();
    const s = sid('sub');
    await store.append(
      s,
      [1, 2, 3, 4, 5].map((i) => ({ type: 'SubT', data: i })),
    );
    const base = await count();
    const sub = new SqlSubscription({
      name,
      store,
      handler: project,
      types: ['SubT'],
      pollIntervalMs: 5000,
      batchSize: 2,
    });
    await sub.start();
    await eventually(async () => (await count()) === base + 5, 'catch-up', { timeoutMs: 10_000 });
    const r = await store.append(s, [{ type: 'SubT', data: 6 }]);
    // pollIntervalMs is 5 s and the wait up to 20 s: this checks delivery; the wake-up tests
    // below poll only every 10 minutes.
    await eventually(async () => (await count()) === base + 6, 'live event', { timeoutMs: 20_000 });
    await waitForSubscription(getSql(), name, r.position, { timeoutMs: 20_000 });
    await sub.close();
    await store.append(
      s,
      [7, 8].map((i) => ({ type: 'SubT', data: i })),
    );
    const again = new SqlSubscription({
      name,
      store,
      handler: project,
      types: ['SubT'],
      pollIntervalMs: 50,
    });
    await again.start();
    await eventually(async () => (await count()) === base + 8, 'restart from checkpoint', {
      timeoutMs: 10_000,
    });
    // The counter moves just after the handler's transaction commits.
    await eventually(async () => again.status().processed >= 2, 'the processed counter', {
      timeoutMs: 10_000,
    });
    expect(again.status().processed).toBe(2);
    await again.close();
  });

  /** A subscription from the end of the log that polls only every 10 minutes. */
  const wakeOnly = async () => {
    const { name, count, project } = await setup();
    const end = (await getStore().readAll({ after: 0, limit: 1_000_000 })).next;
    await getSql().query('INSERT INTO cdp_event_subscriptions (name, position) VALUES ($1, $2)', [
      name,
      end,
    ]);
    const sub = new SqlSubscription({
      name,
      store: getStore(),
      handler: project,
      types: ['SubT'],
      pollIntervalMs: 600_000,
      warmupMs: 0,
    });
    await sub.start();
    // The first read (from the checkpoint) finds nothing; then only a wake-up reads again.
    await eventually(async () => sub.status().active, 'the lease', { timeoutMs: 10_000 });
    // Stores wake subscribers once they have seen one holding a lease.
    expect(await getStore().hasSubscribers()).toBe(true);
    return { sub, count };
  };

  it('is woken at once by the first append after a quiet spell', async () => {
    const { sub, count } = await wakeOnly();
    // With this interval only the first append wakes at once; the next NOTIFY is 10 minutes away.
    const store = new Store(getSql(), { notifyIntervalMs: 600_000 });
    expect(await store.hasSubscribers()).toBe(true);
    try {
      await store.append(sid('first'), [{ type: 'SubT', data: 1 }]);
      await eventually(async () => (await count()) === 1, 'the first wake-up', {
        timeoutMs: 20_000,
      });
    } finally {
      await sub.close();
      await store.close();
    }
  });

  it('is woken for every append of a burst, the last ones included', async () => {
    const { sub, count } = await wakeOnly();
    const store = getStore();
    try {
      // Back to back: the first wakes at once, the others fall inside its interval and share
      // the NOTIFY sent at the end of it.
      for (let i = 0; i < 5; i++) await store.append(sid('burst'), [{ type: 'SubT', data: i }]);
      await eventually(async () => (await count()) === 5, 'the whole burst', { timeoutMs: 20_000 });
    } finally {
      await sub.close();
    }
  });

  // Needs a second connection: the event commits while the handler's transaction is open.
  if (!oneConnection)
    it('keeps a wake-up that arrives while its handler runs', async () => {
      const { name, count, project } = await setup();
      const store = getStore();
      const end = (await store.readAll({ after: 0, limit: 1_000_000 })).next;
      await getSql().query('INSERT INTO cdp_event_subscriptions (name, position) VALUES ($1, $2)', [
        name,
        end,
      ]);
      const s = sid('during');
      const heard: string[] = [];
      const unlisten = await getSql().listen('cdp_events', (payload) => heard.push(payload));
      let appended = false;
      const sub = new SqlSubscription({
        name,
        store,
        types: ['SubT'],
        pollIntervalMs: 600_000,
        warmupMs: 0,
        handler: async (e, tx) => {
          await project(e, tx);
          if (appended) return;
          appended = true;
          // The next event commits, and its wake-up is delivered, while this handler still runs:
          // the barrier is this test's own listener on the wake-up channel hearing it.
          const before = heard.length;
          await store.append(s, [{ type: 'SubT', data: 'second' }]);
          await eventually(() => heard.length > before, 'the wake-up of the second event', {
            timeoutMs: 10_000,
          });
        },
      });
      await sub.start();
      await eventually(async () => sub.status().active, 'the lease', { timeoutMs: 10_000 });
      expect(await store.hasSubscribers()).toBe(true);
      try {
        await store.append(s, [{ type: 'SubT', data: 'first' }]);
        await eventually(
          async () => (await count()) === 2,
          'the event appended during the handler',
          { timeoutMs: 20_000 },
        );
      } finally {
        await sub.close();
        await unlisten();
      }
    });

  it('retries a failing handler with backoff, rolling back its writes, and parks a poison event', async () => {
    const { name, count, project } = await setup();
    const store = getStore();
    const s = sid('poison');
    let flaky = 0;
    const handler: SubscriptionHandler = async (e, tx) => {
      await project(e, tx);
      if (e.type === 'Flaky' && flaky++ < 2) throw new Error('transient failure');
      if (e.type === 'Poison') throw new Error('cannot handle this one');
    };
    const start = (await store.readAll({ after: 0, limit: 1_000_000 })).next;
    await getSql().query(
      'INSERT INTO cdp_event_subscriptions (name, position) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING',
      [name, start],
    );
    const r = await store.append(s, [
      { type: 'Ok', data: 1 },
      { type: 'Flaky', data: 2 },
      { type: 'Poison', data: 3 },
      { type: 'Ok', data: 4 },
    ]);
    const sub = new SqlSubscription({
      name,
      store,
      handler,
      pollIntervalMs: 20,
      maxAttempts: 3,
      retryBaseDelayMs: 5,
      retryMaxDelayMs: 20,
    });
    await sub.start();
    await waitForSubscription(getSql(), name, r.position, { timeoutMs: 30_000 });
    await sub.close();
    // Ok, Flaky (after two failures), Ok: the poison event's write was rolled back each time.
    expect(await count()).toBe(3);
    const parked = await parkedEvents(getSql(), name);
    expect(parked).toHaveLength(1);
    expect(parked[0]).toMatchObject({ type: 'Poison', attempts: 3, position: r.positions[2] });
    expect(parked[0]!.error).toContain('cannot handle this one');
    expect(sub.status().parked).toBe(1);
  });

  it('runs one active instance per name and takes over when the lease expires', async () => {
    const { name, table, count, project } = await setup();
    const store = getStore();
    const start = (await store.readAll({ after: 0, limit: 1_000_000 })).next;
    await getSql().query('INSERT INTO cdp_event_subscriptions (name, position) VALUES ($1, $2)', [
      name,
      start,
    ]);
    const seen: string[] = [];
    const tagged =
      (who: string): SubscriptionHandler =>
      async (e, tx) => {
        seen.push(who);
        await project(e, tx);
      };
    const a = new SqlSubscription({
      name,
      store,
      handler: tagged('a'),
      leaseMs: 400,
      pollIntervalMs: 20,
      instanceId: 'a',
    });
    const b = new SqlSubscription({
      name,
      store,
      handler: tagged('b'),
      leaseMs: 400,
      pollIntervalMs: 20,
      instanceId: 'b',
    });
    await a.start();
    await eventually(() => a.status().active, 'a active', { timeoutMs: 10_000 });
    await b.start();
    const s = sid('lease');
    await store.append(s, [{ type: 'L', data: 1 }]);
    await eventually(async () => (await count()) === 1, 'first event', { timeoutMs: 10_000 });
    expect(b.status().active).toBe(false);
    expect(new Set(seen)).toEqual(new Set(['a']));
    await a.close({ releaseLease: false }); // a crash: the lease is left to expire
    await store.append(s, [{ type: 'L', data: 2 }]);
    await eventually(async () => (await count()) === 2, 'takeover', { timeoutMs: 10_000 });
    expect(b.status().active).toBe(true);
    expect(seen.at(-1)).toBe('b');
    await b.close();
    const { rows } = await getSql().query<{ n: number }>(
      `SELECT count(DISTINCT event_id)::int AS n FROM ${table}`,
    );
    expect(rows[0]!.n).toBe(2);
  });

  it('waitForSubscription times out with a clear error', async () => {
    const err = await waitForSubscription(getSql(), 'never-ran', 1, { timeoutMs: 50 }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TimeoutError);
    expect((err as Error).message).toMatch(/did not reach position 1/);
  });
}

describe('SqlSubscription on PGlite', () => {
  let sql: PgliteSqlClient;
  let store: SqlEventStore;
  beforeAll(async () => {
    sql = await PgliteSqlClient.open({});
    store = await Store.open(sql);
  });
  afterAll(() => sql.close());
  subscriptionSuite(
    () => sql,
    () => store,
    { oneConnection: true },
  );
});

describeServer('SqlSubscription on PostgreSQL', 'CDP_DATABASE_URL', (url) => {
  let db: { url: string; drop: () => Promise<void> };
  let sql: PgSqlClient;
  let store: SqlEventStore;
  beforeAll(async () => {
    db = await createTempDatabase(url, { prefix: 'cdp_evsub' });
    sql = await PgSqlClient.open({ url: db.url, max: 6 });
    store = await Store.open(sql);
  });
  afterAll(async () => {
    await sql?.close();
    await db?.drop();
  });
  subscriptionSuite(
    () => sql,
    () => store,
  );
});
