import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { ConcurrencyError } from '../../src/core/errors.js';
import { createRegistry } from '../../src/core/metrics.js';
import { migrate } from '../../src/engines/sql/migrations.js';
import { PgSqlClient } from '../../src/engines/sql/pg-sql-client.js';
import { PgliteSqlClient } from '../../src/engines/sql/pglite-sql-client.js';
import type { SqlClient } from '../../src/engines/sql/sql-client.js';
import { MemoryEventStore, SqlEventStore } from '../../src/events/index.js';
import { eventStoreMigrations } from '../../src/events/sql-event-store-migrations.js';
import {
  createTempDatabase,
  eventStoreContract,
  sid,
  waitReadable,
} from '../../src/testing/index.js';
import { describeServer } from '../support/servers.js';
import { capturingLogger } from './logger-capture.js';

describe('MemoryEventStore', () => {
  const shared = new MemoryEventStore();
  eventStoreContract({ open: async (o) => new MemoryEventStore({ ...o, shareWith: shared }) });
});

function sqlOnly(getSql: () => SqlClient): void {
  it('forbids changing or deleting stored events', async () => {
    const store = new SqlEventStore(getSql());
    const s = sid();
    await store.append(s, [{ type: 'A', data: 1 }]);
    await expect(
      getSql().query('UPDATE cdp_events SET data = $1 WHERE stream_id = $2', ['2', s]),
    ).rejects.toThrow(/immutable/);
    await expect(
      getSql().query('DELETE FROM cdp_events WHERE stream_id = $1', [s]),
    ).rejects.toThrow(/immutable/);
  });

  it('appends inside a caller transaction: committed with it, or not at all', async () => {
    const store = new SqlEventStore(getSql());
    const s = sid();
    await getSql()
      .transaction(async (tx) => {
        await store.append(s, [{ type: 'A', data: 1 }], { tx });
        throw new Error('roll back');
      })
      .catch(() => {});
    expect(await store.streamVersion(s)).toBe(0);
    // A transaction that wrote before appending (older transaction id) still appends in order.
    await getSql().exec('CREATE TABLE IF NOT EXISTS t_side (id serial PRIMARY KEY, v text)');
    const r = await getSql().transaction(async (tx) => {
      await tx.query('INSERT INTO t_side (v) VALUES ($1)', [s]);
      return store.append(s, [{ type: 'A', data: 2 }], { tx, expected: 'no_stream' });
    });
    await waitReadable(store, r.position);
    const all = await store.readAll({ after: r.position - 1 });
    expect(all.events.map((e) => e.data)).toEqual([2]);
    expect(all.next).toBe(r.position);
  });
}

describe('SqlEventStore on PGlite', () => {
  let sql: PgliteSqlClient;
  beforeAll(async () => {
    sql = await PgliteSqlClient.open({});
    await SqlEventStore.open(sql);
  });
  afterAll(() => sql.close());
  eventStoreContract({ open: async (o) => new SqlEventStore(sql, o) });
  sqlOnly(() => sql);
});

describeServer('SqlEventStore on PostgreSQL', 'CDP_DATABASE_URL', (url) => {
  let db: { url: string; drop: () => Promise<void> };
  let sql: PgSqlClient;
  let other: PgSqlClient;
  beforeAll(async () => {
    db = await createTempDatabase(url, { prefix: 'cdp_ev' });
    sql = await PgSqlClient.open({ url: db.url, max: 8 });
    other = await PgSqlClient.open({ url: db.url, max: 2 });
    await SqlEventStore.open(sql);
  });
  afterAll(async () => {
    await other?.close();
    await sql?.close();
    await db?.drop();
  });
  eventStoreContract({ open: async (o) => new SqlEventStore(sql, o) });
  sqlOnly(() => sql);

  it('never lets a reader pass an event whose transaction commits later with a lower position', async () => {
    const store = new SqlEventStore(sql);
    const start = (await store.readAll({ after: 0, limit: 100_000 })).next;
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let slowPosition = 0;
    let appended!: () => void;
    const appendedP = new Promise<void>((r) => {
      appended = r;
    });
    // A takes a position, then waits before committing.
    const slow = other.transaction(async (tx) => {
      const r = await new SqlEventStore(other).append(sid('slow'), [{ type: 'Slow', data: 1 }], {
        tx,
      });
      slowPosition = r.position;
      appended();
      await gate;
    });
    await appendedP;
    // B commits a higher position first.
    const fast = await store.append(sid('fast'), [{ type: 'Fast', data: 2 }]);
    expect(fast.position).toBeGreaterThan(slowPosition);
    const types = ['Slow', 'Fast'];
    const before = await store.readAll({ after: start, types });
    expect(before.events.map((e) => e.type)).toEqual([]);
    expect(before.next).toBeLessThan(slowPosition);
    expect(store.readerStatus().heldBack).toBe(true);
    release();
    await slow;
    await waitReadable(store, fast.position);
    const after = await store.readAll({ after: before.next, types });
    expect(after.events.map((e) => e.type)).toEqual(['Slow', 'Fast']);
  });

  it('reports an open transaction that holds readers back, with its pid and age, and still waits for it', async () => {
    const clock = new ManualClock(0);
    const registry = createRegistry();
    const { logger, lines } = capturingLogger();
    const store = new SqlEventStore(sql, { clock, registry, logger, stallReportMs: 1000 });
    const start = (await store.readAll({ after: 0, limit: 100_000 })).next;
    let laterPosition = 0;
    const idle = await other.pool.connect();
    try {
      await idle.query('BEGIN');
      const { rows } = await idle.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      const pid = rows[0]!.pid;
      await idle.query(
        "SELECT cdp_events_append($1, 'any', ARRAY[gen_random_uuid()], ARRAY['Idle'], ARRAY['1'::jsonb], ARRAY['{}'::jsonb], ARRAY[1], now(), false)",
        [sid('idle')],
      );
      laterPosition = (await store.append(sid('later'), [{ type: 'Later', data: 1 }])).position;
      expect((await store.readAll({ after: start, types: ['Idle', 'Later'] })).events).toEqual([]);
      await clock.advance(1500);
      expect((await store.readAll({ after: start, types: ['Idle', 'Later'] })).events).toEqual([]);
      const status = store.readerStatus();
      expect(status.heldBack).toBe(true);
      // The blocker is the oldest transaction holding an id on the server: ours, or an older
      // one (the server is shared with other databases).
      const blocker = status.blocker!;
      expect(blocker).toBeDefined();
      expect(blocker.ageSeconds).toBeGreaterThanOrEqual(0);
      // (When another server transaction is older, it is the one named: ages change too fast
      // between two queries on a shared server to compare them here.)
      expect(typeof blocker.pid).toBe('number');
      const { rows: mine } = await sql.query<{ has: boolean }>(
        'SELECT backend_xid IS NOT NULL AS has FROM pg_stat_activity WHERE pid = $1',
        [pid],
      );
      expect(mine[0]?.has).toBe(true);
      const warn = lines.find((l) => l.msg.includes('held back'));
      expect(warn?.msg).toContain(`pid ${blocker.pid}`);
      const metrics = await registry.getSingleMetricAsString(
        'cdp_events_readers_held_back_seconds',
      );
      expect(metrics).toMatch(/cdp_events_readers_held_back_seconds\{engine="postgres"\} 1\.5/);
      await idle.query('COMMIT');
    } finally {
      idle.release();
    }
    await waitReadable(store, laterPosition);
    const after = await store.readAll({ after: start, types: ['Idle', 'Later'] });
    expect(after.events.map((e) => e.type)).toEqual(['Idle', 'Later']);
  });

  it("gives a stream's events positions in version order under concurrent appenders", async () => {
    // Before migration 4, an appender took its position before it waited for the stream: two
    // appenders of one stream could commit version 7 at a lower position than version 6.
    const store = new SqlEventStore(sql);
    const streams = [sid('ord'), sid('ord'), sid('ord')];
    const start = (await store.readAll({ after: 0, limit: 100_000 })).next;
    let highest = 0;
    await Promise.all(
      Array.from({ length: 8 }, async (_, w) => {
        for (let i = 0; i < 250; i++) {
          const r = await store.append(streams[(w + i) % 3]!, [
            { type: 'Ordered', data: { w, i } },
          ]);
          highest = Math.max(highest, r.position);
        }
      }),
    );
    // The reader horizon is the server's oldest running transaction, in any database: wait
    // until no transaction open elsewhere on the server holds the last append back.
    await waitReadable(store, highest);
    const read = await store.readAll({ after: start, types: ['Ordered'], limit: 100_000 });
    expect(read.events).toHaveLength(2000);
    const last = new Map<string, number>();
    let inversions = 0;
    for (const e of read.events) {
      if ((last.get(e.streamId) ?? 0) > e.version) inversions++;
      last.set(e.streamId, e.version);
    }
    expect(inversions).toBe(0);
    for (const s of streams) expect(last.get(s)).toBe(await store.streamVersion(s));
  });

  it('reports the actual version when an exact-version append loses a race', async () => {
    const store = new SqlEventStore(sql);
    const s = sid();
    await store.append(s, [{ type: 'A', data: 0 }]);
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, (_, i) =>
        store.append(s, [{ type: 'A', data: i }], { expected: 1 }),
      ),
    );
    const ok = results.filter((r) => r.status === 'fulfilled');
    const failed = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
    expect(ok).toHaveLength(1);
    for (const f of failed) {
      expect(f.reason).toBeInstanceOf(ConcurrencyError);
      expect((f.reason as ConcurrencyError).actual).toBe(2);
    }
  });

  it('refuses, as a retryable serialization failure, an append whose repeatable-read snapshot predates another append to the stream', async () => {
    const store = new SqlEventStore(sql);
    const s = sid();
    await store.append(s, [{ type: 'A', data: 1 }]);
    const err = await sql
      .transaction(
        async (tx) => {
          await tx.query('SELECT 1'); // the transaction's snapshot is taken here
          await store.append(s, [{ type: 'A', data: 2 }]); // commits version 2 meanwhile
          await store.append(s, [{ type: 'B', data: 3 }], { tx });
        },
        { isolation: 'repeatable read' },
      )
      .catch((e: unknown) => e);
    expect((err as { sqlState?: string }).sqlState).toBe('40001');
    expect((err as { retryable?: boolean }).retryable).toBe(true);
    expect(String(err)).toMatch(/retry the transaction/);
    const events = await store.readStream(s);
    expect(events.map((e) => [e.version, e.type])).toEqual([
      [1, 'A'],
      [2, 'A'],
    ]);
    // Retried, the transaction sees version 2 and appends version 3.
    await sql.transaction(
      async (tx) => {
        await store.append(s, [{ type: 'B', data: 3 }], { tx, expected: 2 });
      },
      { isolation: 'repeatable read' },
    );
    expect(await store.streamVersion(s)).toBe(3);
  });

  it('keeps every stream version across migration 5, which drops the stream table', async () => {
    const old = await createTempDatabase(url, { prefix: 'cdp_ev_m4' });
    const c = await PgSqlClient.open({ url: old.url, max: 4 });
    try {
      // A database at migration 4, written by that version's function (stream row included).
      await migrate(c, eventStoreMigrations.slice(0, 4));
      const append = (stream: string, expected: string, types: string[]) =>
        c.query(
          'SELECT status, stream_version FROM cdp_events_append($1, $2, $3::uuid[], $4::text[], $5::jsonb[], $6::jsonb[], $7::int[], $8, false)',
          [
            stream,
            expected,
            types.map(() => crypto.randomUUID()),
            types,
            types.map(() => '{}'),
            types.map(() => '{}'),
            types.map(() => 1),
            new Date().toISOString(),
          ],
        );
      await append('m-a', 'no_stream', ['A', 'B', 'C']);
      await append('m-b', 'any', ['A']);
      const store = await SqlEventStore.open(c);
      const tables = await c.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM pg_tables WHERE tablename = 'cdp_event_streams'",
      );
      expect(tables.rows[0]!.n).toBe(0);
      expect(await store.streamVersion('m-a')).toBe(3);
      await expect(store.append('m-a', [{ type: 'D', data: 1 }], { expected: 2 })).rejects.toThrow(
        ConcurrencyError,
      );
      expect((await store.append('m-a', [{ type: 'D', data: 1 }], { expected: 3 })).version).toBe(
        4,
      );
      await expect(
        store.append('m-b', [{ type: 'B', data: 1 }], { expected: 'no_stream' }),
      ).rejects.toThrow(ConcurrencyError);
      expect(
        (await store.append('m-b', [{ type: 'B', data: 1 }], { expected: 'stream_exists' }))
          .version,
      ).toBe(2);
      expect((await store.readStream('m-a')).map((e) => [e.version, e.type])).toEqual([
        [1, 'A'],
        [2, 'B'],
        [3, 'C'],
        [4, 'D'],
      ]);
    } finally {
      await c.close();
      await old.drop();
    }
  });
});

/**
 * A SqlClient with only the port's required members: the optional prepared-statement
 * capabilities are absent, as in an adapter that does not offer them. Does not close `inner`.
 */
function withoutCapabilities(inner: SqlClient): SqlClient {
  return {
    engine: inner.engine,
    query: (text, params) => inner.query(text, params),
    exec: (script) => inner.exec(script),
    transaction: (fn, options) => inner.transaction(fn, options),
    listen: (channel, handler, options) => inner.listen(channel, handler, options),
    notify: (channel, payload) => inner.notify(channel, payload),
    ping: () => inner.ping(),
    close: async () => {},
  };
}

describeServer(
  'SqlEventStore on PostgreSQL through the port, with and without its capabilities',
  'CDP_DATABASE_URL',
  (url) => {
    let db: { url: string; drop: () => Promise<void> };
    let sql: PgSqlClient;
    beforeAll(async () => {
      db = await createTempDatabase(url, { prefix: 'cdp_evcap' });
      sql = await PgSqlClient.open({ url: db.url, max: 8 });
      await SqlEventStore.open(sql);
    });
    afterAll(async () => {
      await sql?.close();
      await db?.drop();
    });

    // Every append goes through the append function: the contract holds on that path too.
    eventStoreContract({ open: async (o) => new SqlEventStore(withoutCapabilities(sql), o) });

    it('appends through the client’s preparedPipeline when the client has the capabilities, and never without them', async () => {
      let pipelines = 0;
      const counting: SqlClient = {
        ...withoutCapabilities(sql),
        preparedRows: (statement, values) => sql.preparedRows(statement, values),
        preparedPipeline: (steps) => {
          pipelines++;
          return sql.preparedPipeline(steps);
        },
      };
      const s = sid('cap');
      const fast = new SqlEventStore(counting);
      await fast.append(s, [{ type: 'A', data: 1 }], { expected: 'no_stream' });
      await fast.append(s, [{ type: 'B', data: 2 }], { expected: 1 });
      expect(pipelines).toBe(2);
      const plain = new SqlEventStore(withoutCapabilities(sql));
      const r = await plain.append(s, [{ type: 'C', data: 3 }], { expected: 2 });
      expect(r.version).toBe(3);
      expect(pipelines).toBe(2);
      expect((await plain.readStream(s)).map((e) => e.type)).toEqual(['A', 'B', 'C']);
    });
  },
);
