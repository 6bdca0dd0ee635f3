import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { migrate } from '../../src/engines/sql/migrations.js';
import { PgSqlClient } from '../../src/engines/sql/pg-sql-client.js';
import { PgliteSqlClient } from '../../src/engines/sql/pglite-sql-client.js';
import type { SqlClient } from '../../src/engines/sql/sql-client.js';
import type { Broker } from '../../src/messaging/broker.js';
import { ChoreographyService } from '../../src/messaging/choreography.js';
import { DocumentOutboxRelay, DocumentStore } from '../../src/messaging/document-outbox.js';
import { EventTypes } from '../../src/messaging/envelope.js';
import { MemoryBroker } from '../../src/messaging/memory-broker.js';
import { messagingMigrations } from '../../src/messaging/sql-migrations.js';
import { OutboxRelay } from '../../src/messaging/sql-outbox-relay.js';
import { createTempDatabase, eventually } from '../../src/testing/index.js';
import { describeServer } from '../support/servers.js';
import { capturingLogger } from './log-capture.js';

/**
 * The broker as it is, with every delivery recorded per group and message id (its attempt
 * number) and every failed one (the handler threw or asked for a retry). A deferral ("not yet":
 * the inbox holds a key's message until its predecessor is applied) is neither: it keeps the
 * attempt number and logs nothing.
 */
function countingDeliveries(inner: Broker) {
  const attempts = new Map<string, number[]>();
  const failures: { delivery: string; error: string }[] = [];
  const broker: Broker = {
    kind: inner.kind,
    dedupOnBroker: inner.dedupOnBroker,
    ping: () => inner.ping(),
    publish: (m) => inner.publish(m),
    subscribe: (o, handler) =>
      inner.subscribe(o, async (d) => {
        const k = `${d.group} ${d.id}`;
        attempts.set(k, [...(attempts.get(k) ?? []), d.attempt]);
        try {
          const result = await handler(d);
          if (result?.action === 'retry') failures.push({ delivery: k, error: `${result.error}` });
          return result;
        } catch (err) {
          failures.push({ delivery: k, error: String(err) });
          throw err;
        }
      }),
    listDeadLetters: (o) => inner.listDeadLetters(o),
    replayDeadLetter: (id) => inner.replayDeadLetter(id),
    close: () => inner.close(),
  };
  return { broker, attempts, failures };
}

function relayDeliverySuite(getSql: () => SqlClient) {
  it('a handler that opens its own transaction succeeds on its first delivery from the relay: no retry, no warning', async () => {
    const sql = getSql();
    await sql.exec(
      'DROP TABLE IF EXISTS seen; CREATE TABLE seen (service text, item text, PRIMARY KEY (service, item))',
    );
    const { logger, warnings } = capturingLogger();
    const memory = await MemoryBroker.open({ logger });
    const { broker, attempts, failures } = countingDeliveries(memory);
    const types = new EventTypes();
    types.define('item.added', z.object({ item: z.string() }));
    types.define('item.noted', z.object({ item: z.string() }));
    const common = { sql, broker, types, logger };
    const origin = new ChoreographyService({ name: 'origin', ...common });
    const record =
      (service: string) =>
      async (item: string, tx: { query: SqlClient['query'] }): Promise<void> => {
        await tx.query('INSERT INTO seen VALUES ($1, $2)', [service, item]);
      };
    // Two hops, as a choreography runs them: each reaction writes in its inbox transaction and
    // emits through the outbox, so the relay publishes the second hop too.
    const noter = new ChoreographyService({ name: 'noter', ...common }).on(
      'item.added',
      async ({ event, tx, emit }) => {
        const { item } = event.data as { item: string };
        await record('noter')(item, tx);
        await emit({ type: 'item.noted', data: { item }, key: item });
      },
    );
    const counter = new ChoreographyService({ name: 'counter', ...common }).on(
      'item.added',
      async ({ event, tx }) => record('counter')((event.data as { item: string }).item, tx),
    );
    const reader = new ChoreographyService({ name: 'reader', ...common }).on(
      'item.noted',
      async ({ event, tx }) => record('reader')((event.data as { item: string }).item, tx),
    );
    const relay = new OutboxRelay({ sql, broker, logger });
    try {
      for (const s of [noter, counter, reader]) await s.start();
      await relay.start();
      const items = Array.from({ length: 12 }, (_, i) => `item-${i % 4}-${i}`);
      for (const [i, item] of items.entries()) {
        await sql.transaction((tx) =>
          origin.emit(tx, {
            type: 'item.added',
            data: { item },
            // Keyed and unkeyed messages: both paths of the relay's claim.
            ...(i % 3 === 0 ? {} : { key: item.slice(0, 6) }),
          }),
        );
      }
      await eventually(async () => {
        const { rows } = await sql.query<{ n: number }>('SELECT count(*)::int AS n FROM seen');
        return rows[0]!.n === items.length * 3;
      }, 'every item seen by the three services');
      expect(failures).toEqual([]);
      expect(warnings()).toEqual([]);
      // 12 item.added to two groups and 12 item.noted to one, every delivery on attempt 1 (a
      // failed delivery is followed by attempt 2).
      expect(attempts.size).toBe(items.length * 3);
      const retried = [...attempts].filter(([, a]) => a.some((n) => n !== 1));
      expect(retried).toEqual([]);
    } finally {
      await relay.close();
      for (const s of [noter, counter, reader]) await s.close();
      await memory.close();
    }
  });

  it('the document outbox relay too: a handler that opens its own transaction succeeds on its first delivery', async () => {
    const sql = getSql();
    await sql.exec('DROP TABLE IF EXISTS doc_seen; CREATE TABLE doc_seen (id text PRIMARY KEY)');
    const { logger, warnings } = capturingLogger();
    const memory = await MemoryBroker.open({ logger });
    const { broker, attempts, failures } = countingDeliveries(memory);
    const store = new DocumentStore<{ n: number }>({ sql, table: 'relay_docs', source: '/docs' });
    await store.ensureTable();
    const sub = await broker.subscribe({ group: 'docs', topics: ['doc.saved'] }, async (d) => {
      await sql.transaction(async (tx) => {
        await tx.query('INSERT INTO doc_seen VALUES ($1)', [d.id]);
      });
    });
    try {
      for (let i = 0; i < 6; i++) {
        await store.save(`d${i % 2}`, { n: i }, [
          { topic: 'doc.saved', type: 'doc.saved', data: i },
        ]);
      }
      const relay = new DocumentOutboxRelay({ sql, broker, table: 'relay_docs', logger });
      while ((await relay.runOnce()) > 0);
      await eventually(async () => {
        const { rows } = await sql.query<{ n: number }>('SELECT count(*)::int AS n FROM doc_seen');
        return rows[0]!.n === 6;
      }, 'six documents seen');
      expect(failures).toEqual([]);
      expect(warnings()).toEqual([]);
      expect([...attempts.values()]).toEqual(Array.from({ length: 6 }, () => [1]));
    } finally {
      await sub.close();
      await memory.close();
    }
  });
}

describe('relay to the in-process broker on PGlite', () => {
  let sql: PgliteSqlClient;
  beforeAll(async () => {
    sql = await PgliteSqlClient.open({});
    await migrate(sql, messagingMigrations);
  });
  afterAll(() => sql.close());
  relayDeliverySuite(() => sql);
});

describeServer('relay to the in-process broker on PostgreSQL', 'CDP_DATABASE_URL', (url) => {
  let sql: PgSqlClient;
  let drop: () => Promise<void>;
  beforeAll(async () => {
    const db = await createTempDatabase(url);
    drop = db.drop;
    sql = await PgSqlClient.open({ url: db.url });
    await migrate(sql, messagingMigrations);
  });
  afterAll(async () => {
    await sql?.close();
    await drop?.();
  });
  relayDeliverySuite(() => sql);
});
