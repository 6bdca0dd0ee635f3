import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../src/engines/sql/migrations.js';
import { PgSqlClient } from '../../src/engines/sql/pg-sql-client.js';
import { PgliteSqlClient } from '../../src/engines/sql/pglite-sql-client.js';
import type { SqlClient } from '../../src/engines/sql/sql-client.js';
import type { Broker } from '../../src/messaging/broker.js';
import { MemoryBroker } from '../../src/messaging/memory-broker.js';
import { messagingMigrations } from '../../src/messaging/sql-migrations.js';
import { pnCounterType } from '../../src/replication/crdt/counters.js';
import { orSetType } from '../../src/replication/crdt/or-set.js';
import { multiMasterMigrations } from '../../src/replication/multi-master/migrations.js';
import { RegionReplica } from '../../src/replication/multi-master/region-replica.js';
import { createTempDatabase, eventually } from '../../src/testing/index.js';
import { describeServer } from '../support/servers.js';

/** The broker as it is, except that publishes the `drop` predicate picks are lost. */
function lossy(inner: Broker, drop: (n: number) => boolean) {
  let n = 0;
  let lost = 0;
  const broker: Broker = {
    kind: inner.kind,
    dedupOnBroker: inner.dedupOnBroker,
    ping: () => inner.ping(),
    publish: async (m) => {
      if (drop(n++)) {
        lost++;
        return { id: m.id, duplicate: false };
      }
      return inner.publish(m);
    },
    subscribe: (o, h) => inner.subscribe(o, h),
    listDeadLetters: (o) => inner.listDeadLetters(o),
    replayDeadLetter: (id) => inner.replayDeadLetter(id),
    close: () => inner.close(),
  };
  return { broker, lost: () => lost };
}

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function region(sql: SqlClient, broker: Broker, name: string, group: string) {
  await migrate(sql, [...messagingMigrations, ...multiMasterMigrations]);
  const r = await RegionReplica.open({
    sql,
    broker,
    region: name,
    group,
    types: [orSetType, pnCounterType],
    antiEntropyIntervalMs: 0,
    relayPollIntervalMs: 50,
  });
  cleanup.push(() => r.close());
  return r;
}

/** Three embedded databases for the whole file (PGlite takes seconds to start on a busy machine). */
const embedded: SqlClient[] = [];
let nextDb = 0;
beforeAll(async () => {
  for (let i = 0; i < 3; i++) embedded.push(await PgliteSqlClient.open());
}, 120_000);
afterAll(async () => {
  for (const sql of embedded) await sql.close();
});
async function pglite(): Promise<SqlClient> {
  return embedded[nextDb++ % embedded.length]!;
}
let groups = 0;

async function converged(rs: RegionReplica[], what: string, antiEntropy = false) {
  await eventually(
    async () => {
      if (antiEntropy) for (const r of rs) await r.antiEntropy();
      const lists = await Promise.all(rs.map((r) => r.list()));
      const first = JSON.stringify(lists[0]!.map((o) => [o.key, o.digest]));
      return lists.every((l) => JSON.stringify(l.map((o) => [o.key, o.digest])) === first) && lists;
    },
    what,
    { timeoutMs: 20_000, intervalMs: antiEntropy ? 100 : 20 },
  );
}

function suite(open: () => Promise<SqlClient>, broker: () => Promise<Broker>) {
  it('updates in two regions reach each other through outbox, relay and inbox; an add concurrent with a remove wins', async () => {
    const b = await broker();
    const g = `w${groups++}`;
    const eu = await region(await open(), b, 'eu', g);
    const us = await region(await open(), b, 'us', g);
    await eu.update('s1', orSetType, (s) => s.add('c1'));
    await us.update('s1', orSetType, (s) => s.add('c2'));
    await eu.update('views', pnCounterType, (c) => c.add(3));
    await us.update('views', pnCounterType, (c) => c.add(-1));
    await converged([eu, us], 'both regions to hold the same states');
    expect((await eu.read('s1'))?.value).toEqual(['c1', 'c2']);
    expect((await us.read('views'))?.value).toBe(2);
    // Cut the link: eu removes c1 while us adds it again (concurrently).
    eu.partition(true);
    await eu.update('s1', orSetType, (s) => s.remove('c1'));
    await us.update('s1', orSetType, (s) => s.add('c1'));
    await us.update('s1', orSetType, (s) => s.remove('c2'));
    eu.partition(false);
    await converged([eu, us], 'anti-entropy to repair what the partition lost', true);
    expect((await eu.read('s1'))?.value).toEqual(['c1']);
    expect((await us.read('s1'))?.value).toEqual(['c1']);
    expect(eu.stats().dropped + us.stats().dropped).toBeGreaterThan(0);
    expect(eu.stats().repairs + us.stats().repairs).toBeGreaterThan(0);
    expect(eu.stats().conflictsResolved + us.stats().conflictsResolved).toBeGreaterThan(0);
  });
}

describe('multi-master regions on PGlite with the in-process broker', () => {
  suite(pglite, () => MemoryBroker.open());

  it('anti-entropy converges three regions after the broker lost a third of the messages', async () => {
    const { broker, lost } = lossy(await MemoryBroker.open(), (n) => n % 3 === 1);
    const g = `l${groups++}`;
    const rs = [
      await region(embedded[0]!, broker, 'a', g),
      await region(embedded[1]!, broker, 'b', g),
      await region(embedded[2]!, broker, 'c', g),
    ];
    for (let i = 0; i < 30; i++) {
      const r = rs[i % 3]!;
      if (i % 4 === 3) await r.update(`s${i % 5}`, orSetType, (s) => s.remove(`e${i % 7}`));
      else await r.update(`s${i % 5}`, orSetType, (s) => s.add(`e${i % 7}`));
      await r.update('n', pnCounterType, (c) => c.add(i % 2 === 0 ? 2 : -1));
    }
    // Let the relays publish everything, then check that the loss left them apart.
    await eventually(
      () => rs.every((r) => r.stats().messagesSent >= 20) && true,
      'the relays to publish',
    );
    expect(lost()).toBeGreaterThan(0);
    await converged(rs, 'anti-entropy to converge the regions', true);
    const values = await Promise.all(rs.map((r) => r.read('n')));
    expect(values.map((v) => v?.value)).toEqual([15, 15, 15]);
    expect(rs.reduce((a, r) => a + r.stats().repairs, 0)).toBeGreaterThan(0);
  });

  it('any interleaving, duplication and reordering of deliveries converges (PGlite, 25 runs)', async () => {
    const sql = embedded;
    const keep = cleanup.splice(0);
    let run = 0;
    // A broker whose deliveries a schedule controls: each published message is held, then
    // delivered to the schedule's regions, repeated and reordered; finally everything once more.
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.nat(1), fc.boolean(), fc.nat(3)), { minLength: 1, maxLength: 8 }),
        fc.array(fc.tuple(fc.nat(30), fc.nat(1)), { maxLength: 20 }),
        async (ops, deliveries) => {
          const held: { topic: string; body: string; id: string }[] = [];
          const handlers: ((m: { topic: string; body: string; id: string }) => Promise<void>)[] =
            [];
          const broker: Broker = {
            kind: 'memory',
            dedupOnBroker: false,
            ping: async () => {},
            publish: async (m) => {
              held.push({ topic: m.topic, body: m.body, id: m.id });
              return { id: m.id, duplicate: false };
            },
            subscribe: async (o, h) => {
              handlers.push(async (m) => {
                if (!o.topics.includes(m.topic)) return;
                await h({
                  ...m,
                  key: undefined,
                  headers: {},
                  attempt: 1,
                  maxDeliveries: 5,
                  group: o.group,
                });
              });
              return { group: o.group, close: async () => {} };
            },
            listDeadLetters: async () => [],
            replayDeadLetter: async () => 0,
            close: async () => {},
          };
          const group = `p${run++}`;
          const rs = [
            await region(sql[0]!, broker, 'x', group),
            await region(sql[1]!, broker, 'y', group),
          ];
          const published = () => rs.reduce((a, r) => a + r.stats().messagesSent, 0);
          for (const [at, add, e] of ops) {
            await rs[at]!.update('s', orSetType, (s) => (add ? s.add(`e${e}`) : s.remove(`e${e}`)));
            const expected = rs.reduce((a, r) => a + r.stats().updates, 0);
            await eventually(() => published() >= expected, 'the relay to publish');
            for (const [i, to] of deliveries.splice(0, 3))
              if (held.length > 0) await handlers[to]!(held[i % held.length]!);
          }
          for (const m of [...held].reverse()) for (const h of handlers) await h(m);
          const [a, b] = await Promise.all(rs.map((r) => r.list()));
          expect(a).toEqual(b);
          for (const f of cleanup.splice(0).reverse()) await f();
        },
      ),
      { numRuns: 25 },
    );
    cleanup.push(...keep);
  }, 120_000);
});

describeServer('multi-master regions on PostgreSQL databases', 'CDP_DATABASE_URL', (url) => {
  suite(
    async () => {
      const db = await createTempDatabase(url, { prefix: 'cdp_mm' });
      const sql = await PgSqlClient.open({ url: db.url, max: 4 });
      cleanup.push(() => db.drop());
      cleanup.push(() => sql.close());
      return sql;
    },
    () => MemoryBroker.open(),
  );
});

describeServer('multi-master regions over NATS JetStream', 'CDP_NATS_URL', (url) => {
  suite(pglite, async () => {
    const { openNatsBroker } = await import('../../src/messaging/nats.js');
    const b = await openNatsBroker({ url, prefix: `cdp_mm_${Date.now().toString(36)}` });
    cleanup.push(() => b.close());
    return b;
  });
});
