import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { connectNats, type NatsConnection } from '../../src/engines/nats/index.js';
import { migrate } from '../../src/engines/sql/migrations.js';
import { PgSqlClient } from '../../src/engines/sql/pg-sql-client.js';
import { PgliteSqlClient } from '../../src/engines/sql/pglite-sql-client.js';
import type { SqlClient } from '../../src/engines/sql/sql-client.js';
import {
  type Broker,
  ChoreographyService,
  createEnvelope,
  EventTypes,
  MemoryBroker,
  messagingMigrations,
  OutboxRelay,
  publishEnvelope,
} from '../../src/messaging/index.js';
import { NatsBroker } from '../../src/messaging/nats.js';
import { createTempDatabase, eventually, uniq } from '../../src/testing/index.js';
import {
  type ChoreographedSagaDefinition,
  ChoreographedSagaMonitor,
  choreographedSagaMigrations,
} from '../../src/workflow/index.js';
import { describeServer } from '../support/servers.js';

/**
 * A purchase as a choreographed saga: no service calls another; each reacts to an event and
 * emits the next, and a refusal is answered by compensating events.
 *
 *   purchase.requested -> seats: seat.reserved | seat.refused
 *   seat.reserved      -> wallet: payment.charged | payment.declined
 *   payment.charged    -> access: access.granted                     (completed)
 *   payment.declined   -> seats: seat.released                       (compensation)
 *   seat.released | seat.refused -> purchases: purchase.cancelled    (compensated)
 */
const purchase = z.object({
  purchase: z.string(),
  buyer: z.string(),
  item: z.string(),
  price: z.number(),
});

function sagaTypes(): EventTypes {
  const types = new EventTypes();
  for (const t of [
    'purchase.requested',
    'seat.reserved',
    'seat.refused',
    'payment.charged',
    'payment.declined',
    'seat.released',
    'access.granted',
    'purchase.cancelled',
  ]) {
    types.define(t, purchase);
  }
  return types;
}

const definition: ChoreographedSagaDefinition = {
  name: 'purchase',
  startedBy: 'purchase.requested',
  steps: ['seat.reserved', 'payment.charged'],
  failedBy: ['seat.refused', 'payment.declined'],
  compensations: ['seat.released'],
  completedBy: ['access.granted'],
  compensatedBy: ['purchase.cancelled'],
};

type P = z.infer<typeof purchase>;

async function runFlow(sql: SqlClient, broker: Broker): Promise<void> {
  await migrate(sql, [...messagingMigrations, ...choreographedSagaMigrations]);
  await sql.exec(`
    CREATE TABLE seats (item text PRIMARY KEY, free int NOT NULL CHECK (free >= 0));
    CREATE TABLE reservations (purchase text PRIMARY KEY, item text NOT NULL, released boolean NOT NULL DEFAULT false);
    CREATE TABLE wallets (buyer text PRIMARY KEY, balance int NOT NULL CHECK (balance >= 0));
    CREATE TABLE charges (purchase text PRIMARY KEY, amount int NOT NULL);
    CREATE TABLE grants (purchase text PRIMARY KEY);
    INSERT INTO seats VALUES ('sql-101', 2), ('full', 0);
    INSERT INTO wallets VALUES ('ada', 100), ('bob', 5);
  `);
  const types = sagaTypes();
  const service = (name: string) => new ChoreographyService({ name, sql, broker, types });
  const purchases = service('purchases');
  purchases.on('seat.refused', async ({ event, emit }) => {
    await emit({ type: 'purchase.cancelled', data: event.data });
  });
  purchases.on('seat.released', async ({ event, emit }) => {
    await emit({ type: 'purchase.cancelled', data: event.data });
  });
  const seats = service('seats')
    .on('purchase.requested', async ({ event, tx, emit }) => {
      const d = event.data as P;
      const taken = await tx.query(
        'UPDATE seats SET free = free - 1 WHERE item = $1 AND free > 0 RETURNING free',
        [d.item],
      );
      if (taken.rowCount === 0) {
        await emit({ type: 'seat.refused', data: d });
        return;
      }
      await tx.query('INSERT INTO reservations (purchase, item) VALUES ($1, $2)', [
        d.purchase,
        d.item,
      ]);
      await emit({ type: 'seat.reserved', data: d });
    })
    .on('payment.declined', async ({ event, tx, emit }) => {
      const d = event.data as P;
      await tx.query('UPDATE reservations SET released = true WHERE purchase = $1', [d.purchase]);
      await tx.query('UPDATE seats SET free = free + 1 WHERE item = $1', [d.item]);
      await emit({ type: 'seat.released', data: d });
    });
  const wallet = service('wallet').on('seat.reserved', async ({ event, tx, emit }) => {
    const d = event.data as P;
    const paid = await tx.query(
      'UPDATE wallets SET balance = balance - $2 WHERE buyer = $1 AND balance >= $2',
      [d.buyer, d.price],
    );
    if (paid.rowCount === 0) {
      await emit({ type: 'payment.declined', data: d });
      return;
    }
    await tx.query('INSERT INTO charges VALUES ($1, $2)', [d.purchase, d.price]);
    await emit({ type: 'payment.charged', data: d });
  });
  const access = service('access').on('payment.charged', async ({ event, tx, emit }) => {
    const d = event.data as P;
    await tx.query('INSERT INTO grants VALUES ($1)', [d.purchase]);
    await emit({ type: 'access.granted', data: d });
  });
  const monitor = await ChoreographedSagaMonitor.open({ sql, broker, types, definition });
  const relay = new OutboxRelay({ sql, broker, mode: 'notify' });
  const services = [purchases, seats, wallet, access];
  await Promise.all([...services.map((s) => s.start()), relay.start()]);
  try {
    const start = (d: P) =>
      sql.transaction((tx) =>
        purchases.emit(tx, {
          type: 'purchase.requested',
          data: d,
          correlationid: d.purchase,
        }),
      );
    await start({ purchase: 'p-ok', buyer: 'ada', item: 'sql-101', price: 30 });
    await start({ purchase: 'p-declined', buyer: 'bob', item: 'sql-101', price: 30 });
    await start({ purchase: 'p-full', buyer: 'ada', item: 'full', price: 30 });

    // Events of different topics may reach the monitor out of their causal order (a broker
    // delivers each topic on its own): wait for all twelve, and compare histories as sets.
    await eventually(async () => {
      const c = await monitor.counts();
      const all = await monitor.list();
      const seen = all.reduce((n, i) => n + i.events.length, 0);
      return c.completed === 1 && c.compensated === 2 && seen === 12;
    }, 'one purchase completed and two compensated, with their twelve events');
    const types = (i: { events: { type: string }[] } | undefined) =>
      (i?.events ?? []).map((e) => e.type).sort();

    const ok = await monitor.get('p-ok');
    expect(ok?.state).toBe('completed');
    expect(types(ok)).toEqual(
      ['purchase.requested', 'seat.reserved', 'payment.charged', 'access.granted'].sort(),
    );
    const declined = await monitor.get('p-declined');
    expect(declined?.state).toBe('compensated');
    expect(types(declined)).toEqual(
      [
        'purchase.requested',
        'seat.reserved',
        'payment.declined',
        'seat.released',
        'purchase.cancelled',
      ].sort(),
    );
    expect(types(await monitor.get('p-full'))).toEqual(
      ['purchase.requested', 'seat.refused', 'purchase.cancelled'].sort(),
    );
    expect(await monitor.list({ stuckForMs: 0 })).toEqual([]);

    // The effects: one seat taken (the declined purchase's seat was given back), one charge,
    // one grant, and the money moved only for the completed purchase.
    const rows = async (q: string) => (await sql.query(q)).rows;
    expect(await rows("SELECT free FROM seats WHERE item = 'sql-101'")).toEqual([{ free: 1 }]);
    expect(await rows('SELECT purchase, released FROM reservations ORDER BY purchase')).toEqual([
      { purchase: 'p-declined', released: true },
      { purchase: 'p-ok', released: false },
    ]);
    expect(await rows('SELECT purchase, amount FROM charges')).toEqual([
      { purchase: 'p-ok', amount: 30 },
    ]);
    expect(await rows('SELECT buyer, balance FROM wallets ORDER BY buyer')).toEqual([
      { buyer: 'ada', balance: 70 },
      { buyer: 'bob', balance: 5 },
    ]);
    expect(await rows('SELECT purchase FROM grants')).toEqual([{ purchase: 'p-ok' }]);

    // A redelivered refusal is neither compensated twice nor recorded twice.
    const declinedEvent = declined!.events.find((e) => e.type === 'payment.declined')!;
    await publishEnvelope(
      broker,
      'payment.declined',
      createEnvelope({
        id: declinedEvent.id,
        type: 'payment.declined',
        source: declinedEvent.source,
        correlationid: 'p-declined',
        data: { purchase: 'p-declined', buyer: 'bob', item: 'sql-101', price: 30 },
      }),
    );
    // Barrier: closing the services and the monitor waits for the handlers in flight.
    await Promise.all([...services.map((s) => s.close()), monitor.close()]);
    expect(await rows("SELECT free FROM seats WHERE item = 'sql-101'")).toEqual([{ free: 1 }]);
    expect((await monitor.get('p-declined'))?.events).toHaveLength(5);
  } finally {
    await Promise.all([...services.map((s) => s.close()), monitor.close(), relay.close()]);
  }
}

describe('choreographed saga: PGlite and the in-process broker', () => {
  let sql: PgliteSqlClient;
  let broker: MemoryBroker;
  beforeAll(async () => {
    sql = await PgliteSqlClient.open({});
    broker = await MemoryBroker.open();
  });
  afterAll(async () => {
    await broker?.close();
    await sql?.close();
  });

  it('completes one purchase and compensates a declined payment and a full course, recording each', async () => {
    await runFlow(sql, broker);
  });

  it('refuses a definition that cannot end, that gives a type two roles, or names an unknown type', async () => {
    const types = sagaTypes();
    await expect(
      ChoreographedSagaMonitor.open({
        sql,
        broker,
        types,
        definition: { ...definition, compensatedBy: [] },
      }),
    ).rejects.toThrow(/at least one completedBy and one compensatedBy/);
    await expect(
      ChoreographedSagaMonitor.open({
        sql,
        broker,
        types,
        definition: { ...definition, compensations: ['seat.released', 'seat.reserved'] },
      }),
    ).rejects.toThrow(/seat.reserved has two roles/);
    await expect(
      ChoreographedSagaMonitor.open({
        sql,
        broker,
        types,
        definition: { ...definition, steps: ['seat.reserved', 'nope.happened'] },
      }),
    ).rejects.toThrow(/nope.happened, which has no registered schema/);
    await expect(
      ChoreographedSagaMonitor.open({
        sql,
        broker,
        types,
        definition: { ...definition, name: 'a b' },
      }),
    ).rejects.toThrow(/saga name "a b"/);
  });
});

describeServer('choreographed saga: PostgreSQL and NATS JetStream', 'CDP_NATS_URL', (natsUrl) => {
  const dbUrl = process.env.CDP_DATABASE_URL;
  let nc: NatsConnection;
  let broker: NatsBroker;
  let sql: PgSqlClient;
  let drop: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    if (!dbUrl) throw new Error('this suite needs CDP_DATABASE_URL beside CDP_NATS_URL');
    const db = await createTempDatabase(dbUrl);
    drop = db.drop;
    sql = await PgSqlClient.open({ url: db.url });
    nc = await connectNats({ url: natsUrl });
    broker = await NatsBroker.open({ nc, prefix: uniq('cdps_'), storage: 'memory' });
  });
  afterAll(async () => {
    await broker?.close();
    await broker?.destroy();
    await nc?.close();
    await sql?.close();
    await drop?.();
  });

  it('completes one purchase and compensates a declined payment and a full course, recording each', async () => {
    await runFlow(sql, broker);
  });
});
