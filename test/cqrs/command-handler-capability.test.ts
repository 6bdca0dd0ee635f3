import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/core/errors.js';
import { CommandHandler } from '../../src/cqrs/command-handler.js';
import type { Decider } from '../../src/cqrs/decider.js';
import type { SqlProjection } from '../../src/cqrs/projection.js';
import { PgliteSqlClient } from '../../src/engines/sql/index.js';
import { type EventStore, MemoryEventStore, SqlEventStore } from '../../src/events/index.js';

// Inline projections need the store's `transaction` capability (EventStore.transaction?), not
// a particular class: any store that has it is accepted, one without it is refused.

type Counted = { type: 'Counted'; data: { by: number } };
const counter: Decider<{ id: string; by: number }, Counted, number> = {
  name: 'counter',
  version: 1,
  initialState: () => 0,
  evolve: (n, e) => n + e.data.by,
  decide: (c) => [{ type: 'Counted', data: { by: c.by } }],
};

/** Writes each event's increment to a table, in the append's transaction; fails on by < 0. */
const totals: SqlProjection = {
  name: 'totals',
  async apply(event, tx) {
    const { by } = event.data as { by: number };
    if (by < 0) throw new Error('negative increment refused by the projection');
    await tx.query(
      'INSERT INTO cap_totals (stream_id, total) VALUES ($1, $2) ON CONFLICT (stream_id) DO UPDATE SET total = cap_totals.total + excluded.total',
      [event.streamId, by],
    );
  },
};

/** A third-party store: the SQL store behind an object of another class, with the capability. */
function wrapped(inner: SqlEventStore): EventStore {
  return {
    get schemaFingerprint() {
      return inner.schemaFingerprint;
    },
    append: (s, e, o) => inner.append(s, e, o),
    readStream: (s, o) => inner.readStream(s, o),
    readAll: (o) => inner.readAll(o),
    streamVersion: (s) => inner.streamVersion(s),
    saveSnapshot: (s, tx) => inner.saveSnapshot(s, tx),
    loadSnapshot: (s, k) => inner.loadSnapshot(s, k),
    transaction: (fn) => inner.transaction(fn),
    close: () => inner.close(),
  };
}

describe('CommandHandler inline projections and the store capability', () => {
  let sql: PgliteSqlClient;
  beforeAll(async () => {
    sql = await PgliteSqlClient.open({});
    await sql.exec('CREATE TABLE cap_totals (stream_id text PRIMARY KEY, total int NOT NULL)');
  });
  afterAll(() => sql.close());

  it('refuses inline projections on a store without transaction(), saying what it needs', () => {
    const open = () =>
      new CommandHandler({
        store: new MemoryEventStore(),
        decider: counter,
        streamId: (c) => c.id,
        inline: [totals],
      });
    expect(open).toThrow(ValidationError);
    expect(open).toThrow(/transaction\(\)/);
  });

  it('accepts any store with transaction(): events and projection rows commit, or roll back, together', async () => {
    const store = wrapped(await SqlEventStore.open(sql));
    const handler = new CommandHandler({
      store,
      decider: counter,
      streamId: (c) => c.id,
      inline: [totals],
    });
    await handler.handle({ id: 'cap-1', by: 2 });
    await handler.handle({ id: 'cap-1', by: 3 });
    await expect(handler.handle({ id: 'cap-1', by: -1 })).rejects.toThrow(/negative increment/);
    const { rows } = await sql.query<{ total: number }>(
      "SELECT total FROM cap_totals WHERE stream_id = 'cap-1'",
    );
    expect(rows).toEqual([{ total: 5 }]);
    expect(await store.streamVersion('cap-1')).toBe(2);
  });
});
