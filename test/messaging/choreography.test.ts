import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { formatDeadLetters, formatTrace } from '../../src/cli/messaging-text.js';
import { ConcurrencyError } from '../../src/core/errors.js';
import { migrate } from '../../src/engines/sql/migrations.js';
import { PgliteSqlClient } from '../../src/engines/sql/pglite-sql-client.js';
import { ChoreographyService, traceFlow } from '../../src/messaging/choreography.js';
import { dlqList, dlqReplay } from '../../src/messaging/dead-letters.js';
import { DocumentOutboxRelay, DocumentStore } from '../../src/messaging/document-outbox.js';
import {
  createEnvelope,
  decodeEnvelope,
  EventTypes,
  type MessageEnvelope,
} from '../../src/messaging/envelope.js';
import { eventHandler, publishEnvelope } from '../../src/messaging/event-handler.js';
import { MemoryBroker } from '../../src/messaging/memory-broker.js';
import { openBroker } from '../../src/messaging/open-broker.js';
import { messagingMigrations } from '../../src/messaging/sql-migrations.js';
import { OutboxRelay } from '../../src/messaging/sql-outbox-relay.js';
import { eventually } from '../../src/testing/index.js';

let sql: PgliteSqlClient;
beforeAll(async () => {
  sql = await PgliteSqlClient.open({});
  await migrate(sql, messagingMigrations);
});
afterAll(() => sql.close());

describe('choreography', () => {
  it('services react and emit without a coordinator; ids flow; the flow can be traced', async () => {
    const broker = await MemoryBroker.open();
    const types = new EventTypes();
    types.define('enrollment.requested', z.object({ student: z.string(), course: z.string() }));
    types.define('email.sent', z.object({ to: z.string() }));
    types.define('stats.updated', z.object({ course: z.string(), enrolled: z.number() }));
    await sql.exec(
      'CREATE TABLE emails (student text); CREATE TABLE stats (course text PRIMARY KEY, enrolled int NOT NULL)',
    );
    const enrollment = new ChoreographyService({ name: 'enrollment', sql, broker, types });
    const email = new ChoreographyService({ name: 'email', sql, broker, types }).on(
      'enrollment.requested',
      async ({ event, tx, emit }) => {
        const d = event.data as { student: string };
        await tx.query('INSERT INTO emails VALUES ($1)', [d.student]);
        await emit({ type: 'email.sent', data: { to: d.student }, key: d.student });
      },
    );
    const stats = new ChoreographyService({ name: 'stats', sql, broker, types }).on(
      'enrollment.requested',
      async ({ event, tx, emit }) => {
        const d = event.data as { course: string };
        const { rows } = await tx.query<{ enrolled: number }>(
          `INSERT INTO stats VALUES ($1, 1) ON CONFLICT (course) DO UPDATE SET enrolled = stats.enrolled + 1 RETURNING enrolled`,
          [d.course],
        );
        await emit({
          type: 'stats.updated',
          data: { course: d.course, enrolled: rows[0]!.enrolled },
          key: d.course,
        });
      },
    );
    const seen: MessageEnvelope[] = [];
    const audit = await broker.subscribe(
      { group: 'audit', topics: ['enrollment.requested', 'email.sent', 'stats.updated'] },
      eventHandler(types, async (env) => {
        seen.push(env);
      }),
    );
    const relay = new OutboxRelay({ sql, broker, mode: 'notify' });
    await Promise.all([email.start(), stats.start(), relay.start()]);
    try {
      const first = await sql.transaction((tx) =>
        enrollment.emit(tx, {
          type: 'enrollment.requested',
          data: { student: 'ada', course: 'db-101' },
          key: 'ada',
        }),
      );
      await eventually(() => seen.length === 3, 'the three events of the flow');
      expect(seen.every((e) => e.correlationid === first.id)).toBe(true);
      const reactions = seen.filter((e) => e.id !== first.id);
      expect(reactions.map((e) => e.causationid)).toEqual([first.id, first.id]);
      expect(reactions.map((e) => e.source).sort()).toEqual(['/services/email', '/services/stats']);
      // A redelivery of the request has no second effect in either service.
      await publishEnvelope(broker, 'enrollment.requested', { ...first, id: first.id });
      await broker.publish({
        topic: 'enrollment.requested',
        id: `${first.id}-again`,
        body: JSON.stringify(first),
      });
      // The barrier: the in-process broker hands each message to a free consumer as it is
      // published, and closing a service waits for the handlers in flight.
      await Promise.all([email.close(), stats.close()]);
      expect((await sql.query('SELECT * FROM emails')).rows).toHaveLength(1);
      expect((await sql.query('SELECT enrolled FROM stats')).rows).toEqual([{ enrolled: 1 }]);

      const trace = await traceFlow(sql, reactions[0]!.id);
      expect(trace.map((s) => [s.type, s.depth])).toEqual([
        ['enrollment.requested', 0],
        ...trace.slice(1).map((s) => [s.type, 1]),
      ]);
      expect(
        trace
          .map((s) => s.type)
          .slice(1)
          .sort(),
      ).toEqual(['email.sent', 'stats.updated']);
      expect(trace[0]!.handledBy).toEqual(['email', 'stats']);
      expect(formatTrace(trace)).toContain('- enrollment.requested');
    } finally {
      await Promise.all([email.close(), stats.close(), relay.close(), audit.close()]);
      await broker.close();
    }
  });

  it('a v1 consumer reads additive v2 events; a breaking payload is dead-lettered with the error', async () => {
    const broker = await MemoryBroker.open();
    const v1 = new EventTypes();
    v1.define('course.published', z.object({ id: z.string(), title: z.string() }));
    const got: unknown[] = [];
    const sub = await broker.subscribe(
      { group: 'v1-reader', topics: ['course.published'] },
      eventHandler(v1, async (env) => {
        got.push(env.data);
      }),
    );
    try {
      const v2 = createEnvelope({
        type: 'course.published',
        source: '/v2',
        data: { id: 'c1', title: 'SQL', language: 'en', tags: ['db'] },
      });
      await publishEnvelope(broker, 'course.published', v2);
      const broken = createEnvelope({
        type: 'course.published',
        source: '/v3',
        data: { id: 'c2' },
      });
      await publishEnvelope(broker, 'course.published', broken);
      const unknown = createEnvelope({ type: 'course.retired', source: '/v3', data: {} });
      await publishEnvelope(broker, 'course.published', unknown);
      await broker.publish({ topic: 'course.published', id: 'not-json', body: 'hello' });
      await eventually(
        async () => (await broker.listDeadLetters()).length === 3,
        'three dead letters',
      );
      expect(got).toEqual([{ id: 'c1', title: 'SQL' }]);
      const dead = await dlqList(broker);
      const byId = Object.fromEntries(dead.map((d) => [d.id, d]));
      expect(byId[broken.id]!.error).toMatch(/VALIDATION_FAILED.*title/);
      expect(byId[broken.id]!.attempts).toBe(1);
      expect(byId[unknown.id]!.error).toContain('MESSAGING_UNKNOWN_EVENT_TYPE');
      expect(byId['not-json']!.error).toContain('not JSON');
      expect(formatDeadLetters(dead)).toContain(broken.id);
      // Publishers reject unknown types and bad payloads before sending, when given the types.
      await expect(
        publishEnvelope(broker, 'course.published', unknown, { types: v1 }),
      ).rejects.toThrow(/no schema is registered/);
      await expect(
        publishEnvelope(broker, 'course.published', broken, { types: v1 }),
      ).rejects.toThrow(/fails its schema/);
      await expect(dlqReplay(broker, 'nope')).rejects.toThrow(/cdp dlq list/);
      expect(await dlqReplay(broker, 'not-json')).toEqual({ id: 'not-json', replayed: 1 });
    } finally {
      await sub.close();
      await broker.close();
    }
  });
});

describe('document outbox', () => {
  it('keeps messages in the document row, publishes them in order and clears them', async () => {
    const broker = await MemoryBroker.open();
    const store = new DocumentStore<{ title: string }>({
      sql,
      table: 'course_docs',
      source: '/docs',
    });
    await store.ensureTable();
    const got: MessageEnvelope[] = [];
    const sub = await broker.subscribe(
      { group: 'docs', topics: ['course.changed'], concurrency: 1 },
      async (d) => {
        got.push(decodeEnvelope(d.body));
      },
    );
    try {
      expect(
        await store.save(
          'c1',
          { title: 'A' },
          [{ topic: 'course.changed', type: 'course.changed', data: 1 }],
          0,
        ),
      ).toBe(1);
      expect(
        await store.save(
          'c1',
          { title: 'B' },
          [
            { topic: 'course.changed', type: 'course.changed', data: 2 },
            { topic: 'course.changed', type: 'course.changed', data: 3 },
          ],
          1,
        ),
      ).toBe(2);
      await expect(store.save('c1', { title: 'C' }, [], 1)).rejects.toThrow(ConcurrencyError);
      expect(await store.get('c1')).toEqual({ doc: { title: 'B' }, version: 2, pending: 3 });
      const relay = new DocumentOutboxRelay({ sql, broker, table: 'course_docs' });
      expect(await relay.runOnce()).toBe(3);
      expect(await relay.runOnce()).toBe(0);
      await eventually(() => got.length === 3, 'three messages');
      expect(got.map((e) => [e.data, e.sequence, e.partitionkey])).toEqual([
        [1, 1, 'c1'],
        [2, 2, 'c1'],
        [3, 3, 'c1'],
      ]);
      expect((await store.get('c1'))!.pending).toBe(0);
    } finally {
      await sub.close();
      await broker.close();
    }
  });
});

describe('openBroker', () => {
  it('is the in-process broker without URLs, and names the variable for a bad URL', async () => {
    const b = await openBroker({});
    expect(b.kind).toBe('memory');
    await b.close();
    await expect(openBroker({ natsUrl: 'not a url' })).rejects.toThrow(/CDP_NATS_URL/);
    await expect(openBroker({ amqpUrl: 'http://x' })).rejects.toThrow(/CDP_AMQP_URL/);
  });
});
