import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import { type Platform, startPlatform } from '../../app/platform.js';
import { loadConfig } from '../../core/config.js';
import { silentLogger } from '../../core/logger.js';
import { migrate } from '../../engines/sql/migrations.js';
import { PgliteSqlClient } from '../../engines/sql/pglite-sql-client.js';
import type { SqlClient } from '../../engines/sql/sql-client.js';
import { fastifyIdempotency } from '../../idempotency/fastify.js';
import {
  Idempotency,
  type IdempotencyStore,
  idempotencyMigrations,
  SqlIdempotencyStore,
} from '../../idempotency/index.js';
import { createTempDatabase, type TempDatabase } from '../../testing/temp-database.js';
import {
  type BenchResult,
  type BenchSuite,
  benchDatabaseName,
  median,
  result,
  roundRatios,
  timeMs,
} from '../harness.js';

/** A POST route whose effect is one INSERT, behind the plugin (the header decides if it is used). */
async function app(sql: SqlClient, store: IdempotencyStore): Promise<FastifyInstance> {
  await sql.exec(
    'CREATE TABLE IF NOT EXISTS cdp_bench_idem_things (id serial PRIMARY KEY, name text NOT NULL)',
  );
  const http = Fastify();
  await http.register(fastifyIdempotency, { idempotency: new Idempotency({ store }) });
  http.post('/things', async (req, reply) => {
    const { name } = req.body as { name: string };
    const { rows } = await sql.query<{ id: number }>(
      'INSERT INTO cdp_bench_idem_things (name) VALUES ($1) RETURNING id',
      [name],
    );
    return reply
      .code(201)
      .header('location', `/things/${rows[0]!.id}`)
      .send({ id: rows[0]!.id, name });
  });
  await http.ready();
  return http;
}

/** One POST, with a new Idempotency-Key or none; throws unless it created something. */
type Send = (withKey: boolean) => Promise<void>;

function sender(
  http: FastifyInstance,
  url: string,
  authorization: string,
  body: () => string,
): Send {
  return async (withKey) => {
    const headers: Record<string, string> = { 'content-type': 'application/json', authorization };
    if (withKey) headers['idempotency-key'] = randomUUID();
    const r = await http.inject({ method: 'POST', url, headers, payload: body() });
    if (r.statusCode !== 201)
      throw new Error(`bench POST ${url} answered ${r.statusCode}: ${r.body}`);
  };
}

/**
 * One round: `n` pairs of sequential POSTs, keyed and plain alternating (which goes first
 * alternates too), so that a load spike of the shared machine hits both alike. Returns the
 * median latency (ms) of each.
 */
async function round(send: Send, n: number): Promise<{ keyed: number; plain: number }> {
  const keyed: number[] = [];
  const plain: number[] = [];
  for (let i = 0; i < n; i++) {
    const order = i % 2 === 0 ? [true, false] : [false, true];
    for (const withKey of order) (withKey ? keyed : plain).push(await timeMs(() => send(withKey)));
  }
  return { keyed: median(keyed), plain: median(plain) };
}

/** The platform on the given engines, and an admin key's Authorization header. */
async function platform(env: Record<string, string>): Promise<{ p: Platform; auth: string }> {
  const p = await startPlatform({
    config: loadConfig({ CDP_DATA_DIR: 'memory://', CDP_PORT: '0', ...env }),
    logger: silentLogger(),
  });
  const key = await p.auth.issue({ role: 'admin', subject: 'bench-admin' });
  return { p, auth: `Bearer ${key.token}` };
}

let n = 0;
const courseBody = () =>
  JSON.stringify({
    title: `Bench course ${n++}`,
    topic: 'bench',
    instructor: 'Ada Park',
    priceCents: 1200,
  });

async function measure(
  id: string,
  route: string,
  params: Record<string, unknown>,
  send: Send,
  o: { rounds: number; requests: number; quick: boolean },
): Promise<BenchResult> {
  const samples = { keyed: [] as number[], plain: [] as number[] };
  await round(send, Math.min(20, o.requests)); // warm-up
  for (let r = 0; r < o.rounds; r++) {
    const x = await round(send, o.requests);
    samples.keyed.push(x.keyed);
    samples.plain.push(x.plain);
  }
  const keyed = median(samples.keyed);
  const plain = median(samples.plain);
  const round3 = (x: number) => Math.round(x * 1000) / 1000;
  return result({
    id,
    metric: `${route} latency p50, with a new Idempotency-Key vs without`,
    unit: 'ms',
    ours: round3(keyed),
    peer: { name: 'same route without key', value: round3(plain) },
    higherIsBetter: false,
    params: {
      ...params,
      transport: 'fastify.inject (in process, no socket: the strictest ratio)',
      rounds: o.rounds,
      pairsPerRound: o.requests,
      order: 'keyed and plain requests alternate within each round',
      slowdownPerRound: roundRatios(samples.keyed, samples.plain),
      goal: 'keyed / plain <= 1.3',
      mode: o.quick ? 'quick' : 'full',
    },
  });
}

const suite: BenchSuite = {
  name: 'idempotency',
  description:
    "What an Idempotency-Key costs a POST: the platform's POST /api/catalog/courses with a new key vs without, with the key store in SQL (PGlite; PostgreSQL with CDP_DATABASE_URL) and in Redis (CDP_REDIS_URL), and a bare one-INSERT route (the worst case)",
  async run(ctx) {
    const o = { rounds: ctx.quick ? 5 : 15, requests: ctx.quick ? 60 : 400, quick: ctx.quick };
    const out: BenchResult[] = [];
    const dbUrl = ctx.env.CDP_DATABASE_URL;
    const redisUrl = ctx.env.CDP_REDIS_URL;
    const route = 'POST /api/catalog/courses';
    const onPlatform = async (
      id: string,
      env: Record<string, string>,
      params: Record<string, unknown>,
    ) => {
      const { p, auth } = await platform(env);
      try {
        out.push(
          await measure(
            id,
            route,
            params,
            sender(p.http, '/api/catalog/courses', auth, courseBody),
            o,
          ),
        );
      } finally {
        await p.close();
      }
    };

    ctx.progress(
      `platform on PGlite: ${o.rounds} interleaved rounds of ${o.requests} POSTs each way`,
    );
    await onPlatform('idempotency.overhead', {}, { store: 'sql (PGlite)', sql: 'PGlite' });

    let db: TempDatabase | undefined;
    try {
      if (dbUrl) {
        db = await createTempDatabase(dbUrl, { name: benchDatabaseName('idem') });
        ctx.progress('platform on PostgreSQL');
        await onPlatform(
          'idempotency.overhead.postgres',
          { CDP_DATABASE_URL: db.url },
          { store: 'sql (PostgreSQL)', sql: 'PostgreSQL' },
        );
      } else ctx.progress('PostgreSQL skipped (set CDP_DATABASE_URL)');
      if (redisUrl) {
        ctx.progress('platform with Redis');
        await onPlatform(
          'idempotency.overhead.redis',
          { CDP_REDIS_URL: redisUrl, ...(db ? { CDP_DATABASE_URL: db.url } : {}) },
          { store: 'redis', sql: db ? 'PostgreSQL' : 'PGlite' },
        );
      } else ctx.progress('Redis skipped (set CDP_REDIS_URL)');
    } finally {
      await db?.drop();
    }

    ctx.progress('bare one-INSERT route on PGlite');
    const lite = await PgliteSqlClient.open({});
    try {
      await migrate(lite, idempotencyMigrations);
      const http = await app(lite, new SqlIdempotencyStore({ sql: lite }));
      try {
        out.push(
          await measure(
            'idempotency.overhead.bare',
            'POST of a one-INSERT route',
            { store: 'sql (PGlite)', sql: 'PGlite', effect: 'one INSERT, no auth: the worst case' },
            sender(http, '/things', 'Bearer bench', () => '{"name":"bench thing"}'),
            o,
          ),
        );
      } finally {
        await http.close();
      }
    } finally {
      await lite.close();
    }
    return out;
  },
};

export default suite;
