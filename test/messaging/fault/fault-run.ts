/**
 * Fault run: PostgreSQL outbox -> relay processes killed with SIGKILL at random -> broker
 * (NATS JetStream or RabbitMQ, restarted once mid-run) -> competing consumers with the SQL
 * inbox. Afterwards it checks: zero lost, zero duplicate effects, per-key order kept.
 *
 * In the test suite (small): test/messaging/fault.test.ts. Full size, once, by hand:
 *   CDP_DATABASE_URL=... CDP_NATS_URL=... npx tsx test/messaging/fault/fault-run.ts nats 100000
 *   CDP_DATABASE_URL=... CDP_AMQP_URL=... npx tsx test/messaging/fault/fault-run.ts rabbitmq 100000
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { connectAmqp } from '../../../src/engines/amqp/index.js';
import { connectNats } from '../../../src/engines/nats/index.js';
import { migrate } from '../../../src/engines/sql/migrations.js';
import { PgSqlClient } from '../../../src/engines/sql/pg-sql-client.js';
import type { Broker } from '../../../src/messaging/broker.js';
import { EventTypes } from '../../../src/messaging/envelope.js';
import { NatsBroker } from '../../../src/messaging/nats.js';
import { RabbitMqBroker } from '../../../src/messaging/rabbitmq.js';
import { SqlInbox } from '../../../src/messaging/sql-inbox.js';
import { messagingMigrations } from '../../../src/messaging/sql-migrations.js';
import { Outbox, outboxStats } from '../../../src/messaging/sql-outbox.js';
import { createTempDatabase } from '../../../src/testing/temp-database.js';
import { restartNats, restartRabbit } from '../broker-control.js';

export interface FaultRunOptions {
  broker: 'nats' | 'rabbitmq';
  databaseUrl: string;
  brokerUrl: string;
  messages: number;
  keys: number;
  relays?: number;
  /** Milliseconds between kills, uniformly random in [min, max]. */
  killEveryMs?: [number, number];
  timeoutMs?: number;
  log?: (line: string) => void;
}

export interface FaultRunReport {
  broker: string;
  messages: number;
  keys: number;
  kills: number;
  relayStarts: number;
  brokerRestarts: number;
  applied: number;
  lost: number;
  duplicateEffects: number;
  keysOutOfOrder: number;
  deferrals: number;
  parked: number;
  deadLetters: number;
  seconds: number;
}

const here = dirname(fileURLToPath(import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runFault(o: FaultRunOptions): Promise<FaultRunReport> {
  const log = o.log ?? (() => {});
  const started = Date.now();
  const prefix = `cdpf_${randomBytes(4).toString('hex')}`;
  const db = await createTempDatabase(o.databaseUrl, { prefix: 'cdp_fault' });
  const sql = await PgSqlClient.open({ url: db.url, max: 12 });
  let broker: Broker | undefined;
  let closeConn: () => Promise<void> = async () => {};
  const children = new Set<ChildProcess>();
  let kills = 0;
  let relayStarts = 0;
  let brokerRestarts = 0;
  let stopChaos = false;
  try {
    await migrate(sql, messagingMigrations);
    await sql.exec(
      'CREATE TABLE fx_effects (n bigserial PRIMARY KEY, key text NOT NULL, seq bigint NOT NULL, message_id text NOT NULL)',
    );
    if (o.broker === 'nats') {
      const nc = await connectNats({ url: o.brokerUrl });
      broker = await NatsBroker.open({ nc, prefix, storage: 'file' });
      closeConn = () => nc.close();
    } else {
      const conn = await connectAmqp({ url: o.brokerUrl });
      broker = await RabbitMqBroker.open({ connection: conn, prefix });
      closeConn = () => conn.close();
    }
    const b = broker;

    // Consumers: two competing subscribers of one group, each through the inbox.
    const types = new EventTypes();
    types.define('fx.happened', z.object({ k: z.number(), i: z.number() }));
    const inbox = new SqlInbox({ sql, consumer: 'fx', deferMs: 20 });
    let deferrals = 0;
    const handler = inbox.handler(types, async (env, tx) => {
      await tx.query('INSERT INTO fx_effects (key, seq, message_id) VALUES ($1, $2, $3)', [
        env.partitionkey!,
        env.sequence!,
        env.id,
      ]);
    });
    const counting: typeof handler = async (d) => {
      const r = await handler(d);
      if (r && r.action === 'defer') deferrals++;
      return r;
    };
    const subs = [
      await b.subscribe(
        { group: 'fx', topics: ['fx.happened'], concurrency: 16, maxDeliveries: 1000 },
        counting,
      ),
      await b.subscribe(
        { group: 'fx', topics: ['fx.happened'], concurrency: 16, maxDeliveries: 1000 },
        counting,
      ),
    ];

    // Relays: separate processes, killed and restarted at random.
    const relayEnv = {
      ...process.env,
      FAULT_DB_URL: db.url,
      FAULT_BROKER: o.broker,
      FAULT_BROKER_URL: o.brokerUrl,
      FAULT_PREFIX: prefix,
      CDP_LOG_LEVEL: 'silent',
    };
    const ready = new Set<ChildProcess>();
    const startRelay = () => {
      const child = spawn(process.execPath, ['--import', 'tsx', join(here, 'relay-process.ts')], {
        env: relayEnv,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child.stdout!.on('data', (chunk: Buffer) => {
        if (chunk.toString().includes('ready')) ready.add(child);
      });
      child.stderr!.resume();
      relayStarts++;
      children.add(child);
      child.on('exit', () => {
        children.delete(child);
        ready.delete(child);
      });
      return child;
    };
    const relayCount = o.relays ?? 2;
    for (let i = 0; i < relayCount; i++) startRelay();
    // Each relay is SIGKILLed a random time after it reported ready, then replaced.
    const [kmin, kmax] = o.killEveryMs ?? [400, 1500];
    const chaos = (async () => {
      const scheduled = new Set<ChildProcess>();
      while (!stopChaos) {
        for (const child of ready) {
          if (scheduled.has(child)) continue;
          scheduled.add(child);
          setTimeout(
            () => {
              if (stopChaos || child.exitCode !== null) return;
              child.kill('SIGKILL');
              kills++;
            },
            kmin + Math.random() * (kmax - kmin),
          );
        }
        for (const c of scheduled)
          if (c.exitCode !== null || c.signalCode !== null) scheduled.delete(c);
        while (children.size < relayCount) startRelay();
        await sleep(50);
      }
    })();

    // Writer: messages over keys, several per transaction, with business rows.
    const outbox = new Outbox({ source: '/fault/writer', types });
    const perTx = o.messages >= 20_000 ? 100 : 20;
    let written = 0;
    let restarted = false;
    const seqOf = new Array<number>(o.keys).fill(0);
    while (written < o.messages) {
      const n = Math.min(perTx, o.messages - written);
      await sql.transaction(async (tx) => {
        const msgs = Array.from({ length: n }, (_, j) => {
          const k = Math.floor(Math.random() * o.keys);
          return {
            topic: 'fx.happened',
            type: 'fx.happened',
            key: `key-${k}`,
            data: { k, i: written + j },
          };
        });
        await outbox.addMany(tx, msgs);
      });
      written += n;
      if (!restarted && written >= o.messages * 0.4) {
        restarted = true;
        log(`written ${written}: restarting ${o.broker}`);
        await (o.broker === 'nats' ? restartNats(500) : restartRabbit(500));
        brokerRestarts++;
        log(`${o.broker} is back`);
      }
      if (written % 10_000 === 0 || written % Math.max(perTx, Math.floor(o.messages / 5)) < perTx)
        log(`written ${written} (${Math.round((Date.now() - started) / 1000)} s)`);
    }
    void seqOf;
    log(`all ${o.messages} written; waiting for the effects`);
    const deadline = Date.now() + (o.timeoutMs ?? 600_000);
    let applied = 0;
    let polls = 0;
    for (;;) {
      const { rows } = await sql.query<{ n: number }>(
        'SELECT count(DISTINCT message_id)::int AS n FROM fx_effects',
      );
      applied = rows[0]!.n;
      const stats = await outboxStats(sql);
      if (applied >= o.messages && stats.backlog === 0) break;
      if (++polls % 10 === 0) log(`applied ${applied}, backlog ${stats.backlog}, kills ${kills}`);
      if (Date.now() > deadline) {
        log(`timeout: applied ${applied}, backlog ${stats.backlog}`);
        break;
      }
      await sleep(500);
    }
    stopChaos = true;
    await chaos;
    for (const c of children) c.kill('SIGKILL');
    await sleep(300); // let in-flight deliveries settle before counting
    for (const s of subs) await s.close();

    const { rows: total } = await sql.query<{ all: number; distinct: number }>(
      'SELECT count(*)::int AS all, count(DISTINCT message_id)::int AS distinct FROM fx_effects',
    );
    const { rows: disorder } = await sql.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM (
         SELECT key, seq, lag(seq) OVER (PARTITION BY key ORDER BY n) AS prev FROM fx_effects
       ) x WHERE prev IS NOT NULL AND seq <> prev + 1`,
    );
    const { rows: firsts } = await sql.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM (
         SELECT DISTINCT ON (key) key, seq FROM fx_effects ORDER BY key, n
       ) x WHERE seq <> 1`,
    );
    const { rows: dup } = await sql.query<{ n: number }>(
      'SELECT (count(*) - count(DISTINCT message_id))::int AS n FROM fx_effects',
    );
    const { rows: inboxRows } = await sql.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM cdp_inbox WHERE consumer = 'fx'",
    );
    void inboxRows;
    const stats = await outboxStats(sql);
    const dead = await b.listDeadLetters({ limit: 1000 });
    return {
      broker: o.broker,
      messages: o.messages,
      keys: o.keys,
      kills,
      relayStarts,
      brokerRestarts,
      applied: total[0]!.distinct,
      lost: o.messages - total[0]!.distinct,
      duplicateEffects: dup[0]!.n,
      keysOutOfOrder: disorder[0]!.n + firsts[0]!.n,
      deferrals,
      parked: stats.parked,
      deadLetters: dead.length,
      seconds: Math.round((Date.now() - started) / 100) / 10,
    };
  } finally {
    stopChaos = true;
    for (const c of children) c.kill('SIGKILL');
    if (broker) {
      await broker.close().catch(() => {});
      await (broker as NatsBroker | RabbitMqBroker).destroy().catch(() => {});
    }
    await closeConn().catch(() => {});
    await sql.close();
    await db.drop();
  }
}

// CLI: npx tsx test/messaging/fault/fault-run.ts <nats|rabbitmq> [messages] [keys]
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const kind = (process.argv[2] ?? 'nats') as 'nats' | 'rabbitmq';
  const messages = Number(process.argv[3] ?? process.env.CDP_FAULT_MESSAGES ?? 100_000);
  const keys = Number(process.argv[4] ?? 1000);
  const databaseUrl = process.env.CDP_DATABASE_URL;
  const brokerUrl = kind === 'nats' ? process.env.CDP_NATS_URL : process.env.CDP_AMQP_URL;
  if (!databaseUrl || !brokerUrl) {
    console.error('set CDP_DATABASE_URL and CDP_NATS_URL / CDP_AMQP_URL');
    process.exit(2);
  }
  const { lockBrokers } = await import('../broker-lock.js');
  const unlock = await lockBrokers();
  const report = await runFault({
    broker: kind,
    databaseUrl,
    brokerUrl,
    messages,
    keys,
    timeoutMs: 1_800_000,
    killEveryMs: [1000, 3000],
    log: (l) => console.error(`[fault ${kind}] ${l}`),
  });
  await unlock();
  console.log(JSON.stringify(report, null, 2));
  const ok = report.lost === 0 && report.duplicateEffects === 0 && report.keysOutOfOrder === 0;
  process.exit(ok ? 0 : 1);
}
