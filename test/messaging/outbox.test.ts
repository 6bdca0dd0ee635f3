import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { type Clock, ManualClock, systemClock } from '../../src/core/clock.js';
import { createRegistry } from '../../src/core/metrics.js';
import { migrate } from '../../src/engines/sql/migrations.js';
import { PgSqlClient } from '../../src/engines/sql/pg-sql-client.js';
import { PgliteSqlClient } from '../../src/engines/sql/pglite-sql-client.js';
import type { SqlClient } from '../../src/engines/sql/sql-client.js';
import type { Broker, OutgoingMessage } from '../../src/messaging/broker.js';
import { BrokerError } from '../../src/messaging/broker.js';
import { purgeMessageLog } from '../../src/messaging/choreography.js';
import { DocumentOutboxRelay, DocumentStore } from '../../src/messaging/document-outbox.js';
import {
  createEnvelope,
  decodeEnvelope,
  EventTypes,
  type MessageEnvelope,
} from '../../src/messaging/envelope.js';
import { MemoryBroker } from '../../src/messaging/memory-broker.js';
import { SqlInbox } from '../../src/messaging/sql-inbox.js';
import { messagingMigrations } from '../../src/messaging/sql-migrations.js';
import { listParked, Outbox, outboxStats } from '../../src/messaging/sql-outbox.js';
import { OutboxRelay } from '../../src/messaging/sql-outbox-relay.js';
import { createTempDatabase, eventually, uniq } from '../../src/testing/index.js';
import { describeServer } from '../support/servers.js';

async function reset(sql: SqlClient): Promise<void> {
  await sql.exec(
    'DROP TABLE IF EXISTS biz; CREATE TABLE biz (id text PRIMARY KEY); TRUNCATE cdp_outbox, cdp_outbox_keys, cdp_outbox_cursor, cdp_outbox_parked, cdp_inbox, cdp_inbox_keys',
  );
}

/** Collects what reaches a group of the broker, in arrival order. */
async function collect(broker: Broker, topics: string[]) {
  const got: MessageEnvelope[] = [];
  const sub = await broker.subscribe({ group: uniq('g'), topics, concurrency: 1 }, async (d) => {
    got.push(decodeEnvelope(d.body));
  });
  return { got, close: () => sub.close() };
}

/** A broker that refuses chosen message ids (a message the broker will not take). */
function refusing(inner: Broker, refuse: (m: OutgoingMessage) => boolean): Broker {
  return {
    kind: inner.kind,
    dedupOnBroker: inner.dedupOnBroker,
    ping: () => inner.ping(),
    publish: async (m) => {
      if (refuse(m)) throw new BrokerError(`message ${m.id} exceeds the maximum payload`);
      return inner.publish(m);
    },
    subscribe: (o, h) => inner.subscribe(o, h),
    listDeadLetters: (o) => inner.listDeadLetters(o),
    replayDeadLetter: (id) => inner.replayDeadLetter(id),
    close: () => inner.close(),
  };
}

function outboxSuite(getSql: () => SqlClient) {
  const outbox = new Outbox({ source: '/test/outbox' });
  let broker: MemoryBroker;
  beforeAll(async () => {
    broker = await MemoryBroker.open();
  });
  afterAll(() => broker.close());

  it('writes business rows and outbox rows in one transaction: both or neither', async () => {
    const sql = getSql();
    await reset(sql);
    await sql.transaction(async (tx) => {
      await tx.query("INSERT INTO biz VALUES ('a')");
      await outbox.add(tx, {
        topic: 'biz.created',
        type: 'biz.created',
        data: { id: 'a' },
        key: 'a',
      });
    });
    await expect(
      sql.transaction(async (tx) => {
        await tx.query("INSERT INTO biz VALUES ('b')");
        await outbox.add(tx, {
          topic: 'biz.created',
          type: 'biz.created',
          data: { id: 'b' },
          key: 'b',
        });
        throw new Error('business rule failed');
      }),
    ).rejects.toThrow('business rule failed');
    const biz = await sql.query<{ id: string }>('SELECT id FROM biz ORDER BY id');
    expect(biz.rows.map((r) => r.id)).toEqual(['a']);
    const rows = await sql.query<{ key: string; seq: number }>('SELECT key, seq FROM cdp_outbox');
    expect(rows.rows).toEqual([{ key: 'a', seq: 1 }]);
  });

  it('relays in order per key with ids and sequences, then deletes the published rows', async () => {
    const sql = getSql();
    await reset(sql);
    const topic = uniq('t.order.');
    const c = await collect(broker, [topic]);
    const written: MessageEnvelope[] = [];
    for (let i = 0; i < 30; i++) {
      await sql.transaction(async (tx) => {
        written.push(
          await outbox.add(tx, { topic, type: 'x.happened', data: { i }, key: `k${i % 3}` }),
        );
      });
    }
    const relay = new OutboxRelay({ sql, broker, mode: 'poll', batchSize: 2, perKey: 4 });
    await relay.start();
    try {
      await eventually(() => c.got.length === 30, 'all 30 messages');
      for (const k of ['k0', 'k1', 'k2']) {
        const seqs = c.got.filter((e) => e.partitionkey === k).map((e) => e.sequence);
        expect(seqs).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
        const prevs = c.got.filter((e) => e.partitionkey === k).map((e) => e.prevsequence);
        expect(prevs).toEqual(Array.from({ length: 10 }, (_, i) => i));
      }
      expect(new Set(c.got.map((e) => e.id))).toEqual(new Set(written.map((e) => e.id)));
      expect(c.got.every((e) => e.source === '/test/outbox' && e.specversion === '1.0')).toBe(true);
      await eventually(async () => (await outboxStats(sql)).backlog === 0, 'empty outbox');
    } finally {
      await relay.close();
      await c.close();
    }
  });

  it('is woken by LISTEN/NOTIFY (no polling for a minute)', async () => {
    const sql = getSql();
    await reset(sql);
    const topic = uniq('t.notify.');
    const c = await collect(broker, [topic]);
    const relay = new OutboxRelay({ sql, broker, mode: 'notify', pollIntervalMs: 60_000 });
    await relay.start();
    try {
      await relay.runOnce(); // settle: the loop is now idle for 60 s unless notified
      await sql.transaction((tx) => outbox.add(tx, { topic, type: 'x', data: 1, key: 'n' }));
      await eventually(() => c.got.length === 1, 'the notified message', { timeoutMs: 5_000 });
    } finally {
      await relay.close();
      await c.close();
    }
  });

  it('falls back to fast polling when rows appear without notifications', async () => {
    const sql = getSql();
    await reset(sql);
    const topic = uniq('t.silent.');
    const c = await collect(broker, [topic]);
    const registry = createRegistry();
    // The relay's clock runs ahead by a poll interval once it is listening, so that every row
    // it finds from then on was found after a whole poll interval without a notification, even
    // when its first claims run late (a loaded machine) and find the rows as they arrive.
    let ahead = 0;
    const clock: Clock = {
      now: () => systemClock.now() + ahead,
      sleep: (ms, signal) => systemClock.sleep(ms, signal),
    };
    const relay = new OutboxRelay({
      sql,
      broker,
      mode: 'notify',
      pollIntervalMs: 300,
      fallbackPollMs: 20,
      registry,
      clock,
    });
    await relay.start();
    ahead = 301;
    try {
      // Rows written as through a pooler that drops NOTIFY: inserted without notifying.
      for (let i = 0; i < 3; i++) {
        const env = createEnvelope({ type: 'x', source: '/s', data: i });
        await sql.query(
          'INSERT INTO cdp_outbox (message_id, topic, envelope) VALUES ($1, $2, $3)',
          [env.id, topic, JSON.stringify(env)],
        );
        await eventually(() => c.got.length === i + 1, `silent row ${i}`);
      }
      const fallbacks = await registry.getSingleMetricAsString(
        'cdp_messaging_relay_poll_fallbacks_total',
      );
      expect(fallbacks.split('\n').pop()).toBe('cdp_messaging_relay_poll_fallbacks_total 1');
    } finally {
      await relay.close();
      await c.close();
    }
  });

  it('shares the work among several relays: each message once, no key reordered', async () => {
    const sql = getSql();
    await reset(sql);
    const topic = uniq('t.multi.');
    const published: { id: string; key: string; seq: number }[] = [];
    const relays = [0, 1, 2].map(
      () =>
        new OutboxRelay({
          sql,
          broker,
          mode: 'poll',
          pollIntervalMs: 5,
          batchSize: 5,
          perKey: 3,
          onPublished: (r) => published.push({ id: r.messageId, key: r.key!, seq: r.seq! }),
        }),
    );
    for (const r of relays) await r.start();
    try {
      const keys = 20;
      const per = 15;
      await Promise.all(
        Array.from({ length: keys }, async (_, k) => {
          for (let i = 0; i < per; i++)
            await sql.transaction((tx) =>
              outbox.add(tx, { topic, type: 'x', data: i, key: `key-${k}` }),
            );
        }),
      );
      await eventually(() => published.length >= keys * per, 'all published', {
        timeoutMs: 30_000,
      });
      // The barrier: a relay's close waits for the batch in progress, so nothing is published
      // after this.
      for (const r of relays) await r.close();
      expect(published.length).toBe(keys * per);
      expect(new Set(published.map((p) => p.id)).size).toBe(keys * per);
      for (let k = 0; k < keys; k++) {
        const seqs = published.filter((p) => p.key === `key-${k}`).map((p) => p.seq);
        expect(seqs).toEqual(Array.from({ length: per }, (_, i) => i + 1));
      }
      expect(relays.filter((r) => r.published > 0).length).toBeGreaterThan(
        sql.engine === 'pglite' ? 0 : 1,
      );
    } finally {
      for (const r of relays) await r.close();
    }
  });

  it('parks poison rows (invalid at once, refused after maxAttempts) and keeps the key moving', async () => {
    const sql = getSql();
    await reset(sql);
    const topic = uniq('t.poison.');
    const c = await collect(broker, [topic]);
    const refusingBroker = refusing(broker, (m) => m.body.includes('"huge"'));
    const envs: MessageEnvelope[] = [];
    await sql.transaction(async (tx) => {
      envs.push(await outbox.add(tx, { topic, type: 'x', data: 'ok-1', key: 'p' }));
      envs.push(await outbox.add(tx, { topic, type: 'x', data: 'huge', key: 'p' }));
      envs.push(await outbox.add(tx, { topic, type: 'x', data: 'ok-3', key: 'p' }));
      envs.push(await outbox.add(tx, { topic, type: 'x', data: 'ok-other', key: 'q' }));
    });
    const bad = createEnvelope({ type: 'x', source: '/s', data: 0 });
    await sql.query('INSERT INTO cdp_outbox (message_id, topic, envelope) VALUES ($1, $2, $3)', [
      bad.id,
      topic,
      '{"not":"an envelope"}',
    ]);
    const relay = new OutboxRelay({
      sql,
      broker: refusingBroker,
      mode: 'poll',
      pollIntervalMs: 5,
      maxAttempts: 3,
    });
    await relay.start();
    try {
      await eventually(() => c.got.length === 3, 'the three good messages');
      const parked = await listParked(sql);
      expect(parked.map((p) => p.messageId).sort()).toEqual([bad.id, envs[1]!.id].sort());
      const huge = parked.find((p) => p.messageId === envs[1]!.id)!;
      expect(huge.attempts).toBe(3);
      expect(huge.lastError).toContain('maximum payload');
      expect(parked.find((p) => p.messageId === bad.id)!.lastError).toContain('CloudEvents');
      const p = c.got.filter((e) => e.partitionkey === 'p');
      expect(p.map((e) => [e.sequence, e.prevsequence])).toEqual([
        [1, 0],
        [3, 1],
      ]);
      // A message can reach the consumer before the relay's transaction that deletes its row
      // has committed.
      await eventually(async () => (await outboxStats(sql)).backlog === 0, 'the outbox drained');
      expect(await outboxStats(sql)).toMatchObject({ backlog: 0, parked: 2 });
    } finally {
      await relay.close();
      await c.close();
    }
  });

  it('exposes backlog, oldest age and publish rate as cdp_messaging_* metrics', async () => {
    const sql = getSql();
    await reset(sql);
    const registry = createRegistry();
    const topic = uniq('t.metrics.');
    await sql.transaction(async (tx) => {
      for (let i = 0; i < 5; i++) await outbox.add(tx, { topic, type: 'x', data: i, key: 'm' });
    });
    const relay = new OutboxRelay({ sql, broker, mode: 'poll', registry });
    const before = await relay.refreshMetrics();
    expect(before.backlog).toBe(5);
    expect(before.oldestAgeMs).toBeGreaterThanOrEqual(0);
    expect(await registry.getSingleMetricAsString('cdp_messaging_outbox_backlog_rows')).toMatch(
      / 5$/m,
    );
    expect(await relay.runOnce()).toBe(5);
    await relay.refreshMetrics();
    expect(await registry.getSingleMetricAsString('cdp_messaging_outbox_backlog_rows')).toMatch(
      / 0$/m,
    );
    expect(await registry.getSingleMetricAsString('cdp_messaging_relay_published_total')).toMatch(
      / 5$/m,
    );
    await relay.close();
  });

  it('inbox: records the id with the effects, so redelivery has no second effect', async () => {
    const sql = getSql();
    await reset(sql);
    const inbox = new SqlInbox({ sql, consumer: 'c1' });
    const env = createEnvelope({
      type: 'x',
      source: '/s',
      data: 1,
      key: 'a',
      sequence: 1,
      prevsequence: 0,
    });
    const effect = async (tx: { query: SqlClient['query'] }) => {
      await tx.query("INSERT INTO biz VALUES ('effect')");
    };
    expect(await inbox.handle(env, effect)).toBe('applied');
    expect(await inbox.handle(env, effect)).toBe('duplicate');
    // A failing handler rolls back its effects and the id together.
    const env2 = createEnvelope({
      type: 'x',
      source: '/s',
      data: 2,
      key: 'a',
      sequence: 2,
      prevsequence: 1,
    });
    await expect(
      inbox.handle(env2, async (tx) => {
        await tx.query("INSERT INTO biz VALUES ('half')");
        throw new Error('handler failed');
      }),
    ).rejects.toThrow('handler failed');
    expect((await sql.query('SELECT id FROM biz ORDER BY id')).rows).toEqual([{ id: 'effect' }]);
    const env3 = createEnvelope({
      type: 'x',
      source: '/s',
      data: 3,
      key: 'a',
      sequence: 3,
      prevsequence: 2,
    });
    expect(await inbox.handle(env3, effect)).toBe('deferred');
    expect(await inbox.handle(env2, async () => {})).toBe('applied');
  });

  it('stays small under a long soak: published rows deleted, bookkeeping bounded by the keys, inbox and trace purged', async () => {
    const sql = getSql();
    await reset(sql);
    await sql.exec('TRUNCATE cdp_message_log');
    const topic = uniq('t.soak.');
    const traced = new Outbox({ source: '/test/soak', trace: true });
    const types = new EventTypes();
    types.define('soak.tick', z.object({ r: z.number(), i: z.number() }));
    const inbox = new SqlInbox({ sql, consumer: 'soak', deferMs: 5 });
    let applied = 0;
    const sub = await broker.subscribe(
      { group: uniq('g'), topics: [topic], concurrency: 1, maxDeliveries: 1000 },
      inbox.handler(types, async () => {
        applied++;
      }),
    );
    const relay = new OutboxRelay({ sql, broker, mode: 'notify' });
    await relay.start();
    const rounds = 12;
    const perRound = 40;
    const keys = 10;
    const total = rounds * perRound;
    const count = async (table: string) =>
      (await sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`)).rows[0]!.n;
    try {
      for (let r = 0; r < rounds; r++) {
        await sql.transaction((tx) =>
          traced.addMany(
            tx,
            Array.from({ length: perRound }, (_, i) => ({
              topic,
              type: 'soak.tick',
              key: `s${i % keys}`,
              data: { r, i },
            })),
          ),
        );
        await eventually(async () => (await count('cdp_outbox')) === 0, `round ${r} relayed`);
      }
      await eventually(() => applied === total, 'every message applied');
      expect(relay.published).toBe(total);
      // The outbox holds nothing once published; the per-key rows grow with keys, not messages.
      const ids = await sql.query<{ last: number }>(
        "SELECT last_value::int AS last FROM pg_sequences WHERE sequencename = 'cdp_outbox_id_seq'",
      );
      expect(ids.rows[0]!.last).toBeGreaterThanOrEqual(total);
      expect(await count('cdp_outbox')).toBe(0);
      expect(await count('cdp_outbox_keys')).toBe(keys);
      expect(await count('cdp_outbox_cursor')).toBe(keys);
      expect(await count('cdp_outbox_parked')).toBe(0);
      // The consumer side grows per message until purged (dedup holds within the window).
      expect(await count('cdp_inbox')).toBe(total);
      expect(await count('cdp_message_log')).toBe(total);
      expect(await inbox.purge(60_000)).toBe(0);
      expect(await inbox.purge(0)).toBe(total);
      expect(await purgeMessageLog(sql, 0)).toBe(total);
      expect(await count('cdp_inbox')).toBe(0);
      expect(await count('cdp_message_log')).toBe(0);
      expect(await count('cdp_inbox_keys')).toBe(keys);
    } finally {
      await relay.close();
      await sub.close();
    }
  });

  it('backs off after a failed batch (broker down): no retry before the backoff, nothing counted against the rows', async () => {
    const sql = getSql();
    await reset(sql);
    const topic = uniq('t.down.');
    await sql.transaction((tx) => outbox.add(tx, { topic, type: 'x', data: 1, key: 'd' }));
    let attempts = 0;
    const down: Broker = {
      ...refusing(broker, () => true),
      ping: async () => {
        throw new BrokerError('connection refused');
      },
      publish: async () => {
        attempts++;
        throw new BrokerError('connection refused');
      },
    };
    const clock = new ManualClock(1_000_000);
    const relay = new OutboxRelay({
      sql,
      broker: down,
      clock,
      mode: 'poll',
      workers: 1,
      errorBackoffMs: 100,
      maxAttempts: 2,
    });
    await relay.start();
    try {
      const asleepAfter = async (n: number) =>
        eventually(() => attempts === n && clock.pendingSleeps === 1, `attempt ${n}, then asleep`);
      // Asleep on the manual clock: nothing runs until the clock is advanced.
      await asleepAfter(1);
      expect(attempts).toBe(1);
      await clock.advance(99);
      expect(attempts).toBe(1);
      await clock.advance(1);
      await asleepAfter(2);
      await clock.advance(199); // the backoff doubles
      expect(attempts).toBe(2);
      await clock.advance(1);
      await asleepAfter(3);
      // An outage is not the message's fault: it is neither counted nor parked.
      const { rows } = await sql.query<{ attempts: number }>('SELECT attempts FROM cdp_outbox');
      expect(rows).toEqual([{ attempts: 0 }]);
      expect((await outboxStats(sql)).parked).toBe(0);
    } finally {
      await relay.close();
    }
  });

  it('document variant: two relays share the documents, each message once and in order; what a failed publish left is sent on the next pass', async () => {
    const sql = getSql();
    const table = uniq('docs_');
    const store = new DocumentStore<{ v: number }>({ sql, table, source: '/test/docs' });
    await store.ensureTable();
    const topic = uniq('t.doc.');
    const c = await collect(broker, [topic]);
    const expected = new Map<string, string[]>();
    try {
      for (let d = 0; d < 10; d++) {
        let version = 0;
        const ids: string[] = [];
        for (let s = 0; s < 5; s++) {
          const events = Array.from({ length: 1 + (s % 2) }, () => ({
            topic,
            type: 'doc.changed',
            data: { d, s },
          }));
          version = await store.save(`d${d}`, { v: s }, events, version);
        }
        const pending = await sql.query<{ outbox: { envelope: MessageEnvelope }[] }>(
          `SELECT outbox FROM ${table} WHERE id = $1`,
          [`d${d}`],
        );
        for (const e of pending.rows[0]!.outbox) ids.push(e.envelope.id);
        expected.set(`d${d}`, ids);
      }
      // Document d3's fourth message is refused once: its first three are cleared, the rest wait.
      let refused = 0;
      const flaky = refusing(broker, (m) => {
        if (refused === 0 && m.key === 'd3' && decodeEnvelope(m.body).sequence === 4) {
          refused++;
          return true;
        }
        return false;
      });
      const r1 = new DocumentOutboxRelay({ sql, broker: flaky, table, batchSize: 3 });
      const r2 = new DocumentOutboxRelay({ sql, broker: flaky, table, batchSize: 3 });
      let published = 0;
      for (;;) {
        const [a, b] = await Promise.all([r1.runOnce(), r2.runOnce()]);
        if (a + b === 0) break;
        published += a + b;
      }
      expect(refused).toBe(1);
      const all = [...expected.values()].flat();
      expect(published).toBe(all.length);
      await eventually(() => c.got.length === all.length, 'every document message');
      expect(c.got.map((e) => e.id).sort()).toEqual([...all].sort());
      for (const [doc, ids] of expected) {
        const got = c.got.filter((e) => e.partitionkey === doc);
        expect(got.map((e) => e.id)).toEqual(ids);
        expect(got.map((e) => [e.sequence, e.prevsequence])).toEqual(ids.map((_, i) => [i + 1, i]));
        expect((await store.get(doc))!.pending).toBe(0);
      }
    } finally {
      await c.close();
      await sql.exec(`DROP TABLE IF EXISTS ${table}`);
    }
  });
}

describe('outbox on PGlite', () => {
  let sql: PgliteSqlClient;
  beforeAll(async () => {
    sql = await PgliteSqlClient.open({});
    await migrate(sql, messagingMigrations);
  });
  afterAll(() => sql.close());
  outboxSuite(() => sql);

  it('inbox property: any delivery order with repeats applies each message once, in key order', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: 2 }), { minLength: 1, maxLength: 12 }),
        fc.array(fc.nat(), { minLength: 30, maxLength: 30 }),
        async (keysOfMessages, shuffle) => {
          await reset(sql);
          const consumer = uniq('prop');
          const inbox = new SqlInbox({ sql, consumer });
          const seq = new Map<number, number>();
          const msgs = keysOfMessages.map((k) => {
            const s = (seq.get(k) ?? 0) + 1;
            seq.set(k, s);
            return createEnvelope({
              type: 'x',
              source: '/s',
              data: s,
              key: `k${k}`,
              sequence: s,
              prevsequence: s - 1,
            });
          });
          // Deliveries: every message once plus some repeats, in a shuffled order.
          let queue = [...msgs, ...msgs.filter((_, i) => shuffle[i]! % 3 === 0)];
          queue = queue
            .map((m, i) => ({ m, r: shuffle[i % shuffle.length]! + i * 7919 }))
            .sort((a, b) => (a.r % 97) - (b.r % 97))
            .map((x) => x.m);
          const applied: MessageEnvelope[] = [];
          let guard = 0;
          while (queue.length > 0 && guard++ < 10_000) {
            const m = queue.shift()!;
            const r = await inbox.handle(m, async () => {
              applied.push(m);
            });
            if (r === 'deferred') queue.push(m);
          }
          expect(applied.length).toBe(msgs.length);
          for (const [k, n] of seq) {
            expect(
              applied.filter((e) => e.partitionkey === `k${k}`).map((e) => e.sequence),
            ).toEqual(Array.from({ length: n }, (_, i) => i + 1));
          }
        },
      ),
      { numRuns: 25 },
    );
  });
});

describeServer('outbox on PostgreSQL', 'CDP_DATABASE_URL', (url) => {
  let db: Awaited<ReturnType<typeof createTempDatabase>>;
  let sql: PgSqlClient;
  beforeAll(async () => {
    db = await createTempDatabase(url);
    sql = await PgSqlClient.open({ url: db.url });
    await migrate(sql, messagingMigrations);
  });
  afterAll(async () => {
    await sql?.close();
    await db?.drop();
  });
  outboxSuite(() => sql);
});
