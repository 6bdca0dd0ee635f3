import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import PgBoss from 'pg-boss';
import { connectAmqp } from '../../engines/amqp/amqp-connection.js';
import { connectNats } from '../../engines/nats/nats-connection.js';
import { migrate } from '../../engines/sql/migrations.js';
import { PgSqlClient } from '../../engines/sql/pg-sql-client.js';
import type { Broker } from '../../messaging/broker.js';
import { NatsBroker } from '../../messaging/nats.js';
import { RabbitMqBroker } from '../../messaging/rabbitmq.js';
import { messagingMigrations } from '../../messaging/sql-migrations.js';
import { Outbox } from '../../messaging/sql-outbox.js';
import { OutboxRelay } from '../../messaging/sql-outbox-relay.js';
import { createTempDatabase } from '../../testing/temp-database.js';
import { type BenchSuite, interleave, percentile, result } from '../harness.js';

const KEYS = 100;

const outbox = new Outbox({ source: '/bench' });

async function fillOutbox(sql: PgSqlClient, n: number, topic: string): Promise<void> {
  for (let i = 0; i < n; i += 100) {
    await sql.transaction((tx) =>
      outbox.addMany(
        tx,
        Array.from({ length: Math.min(100, n - i) }, (_, j) => ({
          topic,
          type: 'bench.happened',
          key: `k${(i + j) % KEYS}`,
          data: { i: i + j },
        })),
      ),
    );
  }
}

/** Relay throughput: N rows waiting in the outbox, published to the broker; msg/s. */
async function relayThroughput(sql: PgSqlClient, broker: Broker, n: number): Promise<number> {
  await fillOutbox(sql, n, 'bench.throughput');
  const relay = new OutboxRelay({ sql, broker, mode: 'poll', batchSize: 200, perKey: 50 });
  const start = process.hrtime.bigint();
  let done = 0;
  while (done < n) {
    const k = await relay.runOnce();
    if (k === 0) throw new Error(`relay stalled at ${done} of ${n}`);
    done += k;
  }
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  await relay.close();
  return n / secs;
}

/** pg-boss: N jobs waiting, handled by workers; jobs/s. */
async function pgBossThroughput(boss: PgBoss, queue: string, n: number): Promise<number> {
  for (let i = 0; i < n; i += 1000) {
    await boss.insert(
      Array.from({ length: Math.min(1000, n - i) }, (_, j) => ({
        name: queue,
        data: { i: i + j },
      })),
    );
  }
  let handled = 0;
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => {
    resolveDone = r;
  });
  const start = process.hrtime.bigint();
  const ids: string[] = [];
  for (let w = 0; w < 4; w++) {
    ids.push(
      await boss.work(
        queue,
        { batchSize: 250, pollingIntervalSeconds: 0.5 },
        async (jobs: unknown[]) => {
          handled += jobs.length;
          if (handled >= n) resolveDone();
        },
      ),
    );
  }
  await done;
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  void ids;
  await boss.offWork(queue).catch(() => {});
  return n / secs;
}

/** One clock for both processes: CLOCK_MONOTONIC (system-wide on Linux), in ms. */
const monoMs = () => Number(process.hrtime.bigint()) / 1e6;

interface LoadSpec {
  url: string;
  rate: number;
  ms: number;
}
type LoadMessage =
  | { committed: [string, number][] }
  | { done: { sent: number; elapsedMs: number } };

/**
 * The load generator of the latency runs: one message per transaction at `rate` msg/s (at
 * most 48 transactions in flight), reporting each message's id and commit time (when COMMIT
 * returned) to the parent. It runs in its own process, so the relay's event loop measures the
 * relay and not the generator.
 */
async function generateLoad(spec: LoadSpec, report: (m: LoadMessage) => void): Promise<void> {
  const sql = await PgSqlClient.open({ url: spec.url, max: 50 });
  const start = monoMs();
  let sent = 0;
  let pending: [string, number][] = [];
  const inflight = new Set<Promise<void>>();
  while (monoMs() - start < spec.ms) {
    const target = Math.floor(((monoMs() - start) / 1000) * spec.rate);
    while (sent < target && inflight.size < 48) {
      const i = sent++;
      const p = sql
        .transaction((tx) =>
          outbox.add(tx, {
            topic: 'bench.latency',
            type: 'bench.happened',
            key: `k${i % KEYS}`,
            data: { i },
          }),
        )
        .then((env) => {
          pending.push([env.id, monoMs()]);
        });
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
    }
    if (pending.length >= 100) {
      report({ committed: pending });
      pending = [];
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  await Promise.all(inflight);
  report({ committed: pending });
  report({ done: { sent, elapsedMs: monoMs() - start } });
  await sql.close();
}

if (process.env.CDP_BENCH_MESSAGING_LOAD) {
  const spec = JSON.parse(process.env.CDP_BENCH_MESSAGING_LOAD) as LoadSpec;
  await generateLoad(spec, (m) => process.send!(m));
  process.disconnect();
}

/** Run generateLoad in a child process (this file, with the parent's loader flags). */
function loadInChildProcess(spec: LoadSpec, onCommitted: (id: string, at: number) => void) {
  return new Promise<{ sent: number; elapsedMs: number }>((resolve, reject) => {
    const child = fork(fileURLToPath(import.meta.url), [], {
      env: { ...process.env, CDP_BENCH_MESSAGING_LOAD: JSON.stringify(spec) },
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    let done: { sent: number; elapsedMs: number } | undefined;
    child.on('message', (m: LoadMessage) => {
      if ('committed' in m) for (const [id, at] of m.committed) onCommitted(id, at);
      else done = m.done;
    });
    child.on('error', reject);
    child.on('exit', (code) =>
      done ? resolve(done) : reject(new Error(`load generator exited with ${code}`)),
    );
  });
}

/**
 * Commit-to-publish latency at `rate` msg/s for `ms`: the generator (another process) commits
 * one message per transaction; latency = the relay's publish confirmation (PubAck) minus the
 * commit, both on CLOCK_MONOTONIC. A message confirmed before its COMMIT reply reached the
 * generator counts as 0.
 */
async function relayLatency(
  sql: PgSqlClient,
  url: string,
  broker: Broker,
  mode: 'notify' | 'poll',
  rate: number,
  ms: number,
): Promise<{ p50: number; p99: number; achieved: number }> {
  const published = new Map<string, number>();
  const committed = new Map<string, number>();
  const relay = new OutboxRelay({
    sql,
    broker,
    mode,
    pollIntervalMs: mode === 'poll' ? 100 : 1000,
    onPublished: (r) => {
      published.set(r.messageId, monoMs());
    },
  });
  await relay.start();
  let load: { sent: number; elapsedMs: number };
  try {
    load = await loadInChildProcess({ url, rate, ms }, (id, at) => committed.set(id, at));
    const deadline = monoMs() + 10_000;
    while (published.size < load.sent && monoMs() < deadline)
      await new Promise((r) => setTimeout(r, 20));
  } finally {
    await relay.close();
  }
  const latencies: number[] = [];
  for (const [id, at] of committed) {
    const pub = published.get(id);
    if (pub === undefined) throw new Error(`message ${id} was committed but never published`);
    latencies.push(Math.max(0, pub - at));
  }
  return {
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    achieved: (load.sent / load.elapsedMs) * 1000,
  };
}

const suite: BenchSuite = {
  name: 'messaging',
  description:
    'transactional outbox relay (PostgreSQL) to NATS JetStream and RabbitMQ vs pg-boss jobs on the same PostgreSQL; commit-to-publish latency with LISTEN/NOTIFY vs polling',
  requires: ['CDP_DATABASE_URL', 'CDP_NATS_URL', 'CDP_AMQP_URL'],
  async run(ctx) {
    const url = ctx.env.CDP_DATABASE_URL!;
    const n = ctx.quick ? 4000 : 20_000;
    const rounds = ctx.quick ? 1 : 3;
    const latencyMs = ctx.quick ? 3000 : 10_000;
    const rate = 1000;
    const ours = await createTempDatabase(url, { prefix: 'cdp_bench_msg' });
    const peerDb = await createTempDatabase(url, { prefix: 'cdp_bench_boss' });
    const sql = await PgSqlClient.open({ url: ours.url, max: 50 });
    const prefix = `cdpb_${randomBytes(4).toString('hex')}`;
    const nc = await connectNats({ url: ctx.env.CDP_NATS_URL! });
    const amqp = await connectAmqp({ url: ctx.env.CDP_AMQP_URL! });
    const nats = await NatsBroker.open({ nc, prefix, storage: 'file' });
    const rabbit = await RabbitMqBroker.open({ connection: amqp, prefix });
    const boss = new PgBoss({ connectionString: peerDb.url, max: 10 });
    boss.on('error', () => {});
    try {
      await migrate(sql, messagingMigrations);
      await boss.start();
      const queue = 'bench';
      await boss.createQueue(queue);
      ctx.progress(`throughput: ${n} messages, ${rounds} interleaved round(s)`);
      const tp = await interleave(
        {
          nats: () => relayThroughput(sql, nats, n),
          rabbitmq: () => relayThroughput(sql, rabbit, n),
          pgboss: () => pgBossThroughput(boss, queue, n),
        },
        rounds,
        ctx.quick ? 0 : 1,
      );
      ctx.progress(`latency: ${rate} msg/s for ${latencyMs} ms, notify and poll`);
      const lat = await interleave(
        {
          notify: async () => {
            const r = await relayLatency(sql, ours.url, nats, 'notify', rate, latencyMs);
            latNotify.push(r);
            return r.p99;
          },
          poll: async () => {
            const r = await relayLatency(sql, ours.url, nats, 'poll', rate, latencyMs);
            latPoll.push(r);
            return r.p99;
          },
        },
        rounds,
        0,
      );
      const p50 = (xs: { p50: number }[]) =>
        Math.round(
          percentile(
            xs.map((x) => x.p50),
            50,
          ) * 100,
        ) / 100;
      const achieved = (xs: { achieved: number }[]) =>
        Math.round(
          percentile(
            xs.map((x) => x.achieved),
            50,
          ),
        );
      const params = {
        messages: n,
        keys: KEYS,
        rounds,
        machine: '2 cores, loopback engines (shared with other work)',
        peer: 'pg-boss 10: 4 workers, batchSize 250, pollingIntervalSeconds 0.5 (its minimum), jobs inserted first',
        ours: 'one relay, batches of 200 key heads x 50 per key, 64 keys in flight, confirmed publishes',
      };
      return [
        result({
          id: 'relay.nats.throughput',
          metric: 'outbox rows published to NATS JetStream (PubAck) vs pg-boss jobs handled',
          unit: 'msg/s',
          ours: Math.round(tp.nats),
          peer: { name: 'pg-boss@10', value: Math.round(tp.pgboss) },
          higherIsBetter: true,
          params,
        }),
        result({
          id: 'relay.rabbitmq.throughput',
          metric: 'outbox rows published to RabbitMQ (publisher confirms) vs pg-boss jobs handled',
          unit: 'msg/s',
          ours: Math.round(tp.rabbitmq),
          peer: { name: 'pg-boss@10', value: Math.round(tp.pgboss) },
          higherIsBetter: true,
          params,
        }),
        result({
          id: 'relay.nats.notify.p99',
          metric:
            'commit-to-publish p99, LISTEN/NOTIFY (peer: the same relay polling every 100 ms)',
          unit: 'ms',
          ours: Math.round(lat.notify * 100) / 100,
          peer: { name: 'polling 100 ms', value: Math.round(lat.poll * 100) / 100 },
          higherIsBetter: false,
          params: {
            rate,
            durationMs: latencyMs,
            p50: p50(latNotify),
            achievedRate: achieved(latNotify),
            machine: params.machine,
          },
        }),
        result({
          id: 'relay.nats.poll.p99',
          metric: 'commit-to-publish p99, polling every 100 ms (no peer)',
          unit: 'ms',
          ours: Math.round(lat.poll * 100) / 100,
          higherIsBetter: false,
          params: {
            rate,
            durationMs: latencyMs,
            p50: p50(latPoll),
            achievedRate: achieved(latPoll),
            machine: params.machine,
          },
        }),
      ];
    } finally {
      await boss.stop({ graceful: false, wait: true }).catch(() => {});
      await nats.close();
      await nats.destroy();
      await rabbit.close();
      await rabbit.destroy();
      await nc.close();
      await amqp.close();
      await sql.close();
      await ours.drop();
      await peerDb.drop();
    }
  },
};

const latNotify: { p50: number; p99: number; achieved: number }[] = [];
const latPoll: { p50: number; p99: number; achieved: number }[] = [];

export default suite;
