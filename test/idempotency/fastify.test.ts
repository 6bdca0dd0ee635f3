import { randomBytes } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { connectRedis, type RedisClient } from '../../src/engines/redis/index.js';
import { migrate, PgliteSqlClient, type SqlClient } from '../../src/engines/sql/index.js';
import { PgSqlClient } from '../../src/engines/sql/pg.js';
import { fastifyIdempotency } from '../../src/idempotency/fastify.js';
import {
  Idempotency,
  type IdempotencyStore,
  idempotencyMigrations,
  SqlIdempotencyStore,
} from '../../src/idempotency/index.js';
import { RedisIdempotencyStore } from '../../src/idempotency/redis.js';
import { eventually, type TempDatabase } from '../../src/testing/index.js';
import { openRaw } from '../support/raw-socket.js';
import { createTempDatabase, describeServer } from '../support/servers.js';

const T0 = 1_700_000_000_000;

/**
 * A small API on the plugin: POST /things inserts a row (the effect counted), POST /slow waits
 * for the test to open its gate, POST /boom fails with a 500.
 */
async function buildApp(store: IdempotencyStore, sql: SqlClient, clock = new ManualClock(T0)) {
  const idempotency = new Idempotency({ store, clock, waitMs: 5_000, pollMs: 60_000 });
  const app = Fastify();
  await app.register(fastifyIdempotency, { idempotency });
  const gate = { open: () => {}, running: 0 };
  let opened = new Promise<void>((r) => {
    gate.open = r;
  });
  let booms = 0;
  app.post('/things', async (req, reply) => {
    const body = req.body as { name?: unknown } | undefined;
    if (typeof body?.name !== 'string')
      return reply.code(400).send({ error: { code: 'NAME_MISSING', message: 'send a name' } });
    const { rows } = await sql.query<{ id: number }>(
      'INSERT INTO things (name) VALUES ($1) RETURNING id',
      [body.name],
    );
    const id = rows[0]!.id;
    return reply.code(201).header('location', `/things/${id}`).send({ id, name: body.name });
  });
  app.post('/slow', async () => {
    gate.running++;
    await opened;
    return { done: true };
  });
  app.post('/boom', async () => {
    booms++;
    throw new Error(`boom ${booms}`);
  });
  app.get(
    '/things',
    async () => (await sql.query('SELECT count(*)::int AS n FROM things')).rows[0],
  );
  return {
    app,
    clock,
    gate,
    booms: () => booms,
    reset: () => {
      opened = new Promise<void>((r) => {
        gate.open = r;
      });
    },
  };
}

type Built = Awaited<ReturnType<typeof buildApp>>;

const post = (
  app: FastifyInstance,
  url: string,
  key: string | undefined,
  body: unknown,
  auth = 'Bearer alice',
) =>
  app.inject({
    method: 'POST',
    url,
    headers: {
      'content-type': 'application/json',
      authorization: auth,
      ...(key === undefined ? {} : { 'idempotency-key': key }),
    },
    payload: JSON.stringify(body),
  });

const count = async (sql: SqlClient) =>
  (await sql.query<{ n: number }>('SELECT count(*)::int AS n FROM things')).rows[0]!.n;

function pluginSuite(
  open: () => Promise<{ store: IdempotencyStore; sql: SqlClient; close(): Promise<void> }>,
) {
  let built: Built;
  let sql: SqlClient;
  let close: () => Promise<void>;
  beforeAll(async () => {
    const opened = await open();
    sql = opened.sql;
    close = opened.close;
    await sql.exec('CREATE TABLE IF NOT EXISTS things (id serial PRIMARY KEY, name text NOT NULL)');
    built = await buildApp(opened.store, sql);
  });
  afterAll(async () => {
    await built?.app.close();
    await close?.();
  });
  const key = () => `key-${randomBytes(8).toString('hex')}`;

  it('100 concurrent identical requests make one row and 100 identical responses', async () => {
    const before = await count(sql);
    const k = key();
    const responses = await Promise.all(
      Array.from({ length: 100 }, () => post(built.app, '/things', k, { name: 'once' })),
    );
    expect(await count(sql)).toBe(before + 1);
    const first = responses[0]!;
    expect(first.statusCode).toBe(201);
    for (const r of responses) {
      expect(r.statusCode).toBe(201);
      expect(r.body).toBe(first.body);
      expect(r.headers.location).toBe(first.headers.location);
      expect(r.headers['content-type']).toBe(first.headers['content-type']);
    }
    expect(responses.filter((r) => r.headers['idempotent-replayed'] === 'true')).toHaveLength(99);
  });

  it('without a key every request runs; GET ignores the header', async () => {
    const before = await count(sql);
    await post(built.app, '/things', undefined, { name: 'a' });
    await post(built.app, '/things', undefined, { name: 'a' });
    expect(await count(sql)).toBe(before + 2);
    const k = key();
    for (let i = 0; i < 2; i++) {
      const r = await built.app.inject({
        method: 'GET',
        url: '/things',
        headers: { 'idempotency-key': k },
      });
      expect(r.headers['idempotent-replayed']).toBeUndefined();
    }
  });

  it('the same key with another body is a 422; key order and whitespace of JSON do not count', async () => {
    const k = key();
    const a = await post(built.app, '/things', k, { name: 'x', tag: 1 });
    expect(a.statusCode).toBe(201);
    const reordered = await built.app.inject({
      method: 'POST',
      url: '/things',
      headers: {
        'content-type': 'application/json',
        authorization: 'Bearer alice',
        'idempotency-key': k,
      },
      payload: '{ "tag": 1,\n "name": "x" }',
    });
    expect(reordered.statusCode).toBe(201);
    expect(reordered.headers['idempotent-replayed']).toBe('true');
    const other = await post(built.app, '/things', k, { name: 'y', tag: 1 });
    expect(other.statusCode).toBe(422);
    expect(other.json().code).toBe('IDEMPOTENCY_KEY_REUSED');
    expect(other.json().message).toMatch(/different request/);
  });

  it('keys of different principals never meet', async () => {
    const before = await count(sql);
    const k = key();
    const alice = await post(built.app, '/things', k, { name: 'shared' }, 'Bearer alice');
    const bob = await post(built.app, '/things', k, { name: 'shared' }, 'Bearer bob');
    expect(await count(sql)).toBe(before + 2);
    expect(bob.headers['idempotent-replayed']).toBeUndefined();
    expect(bob.json().id).not.toBe(alice.json().id);
  });

  it('keeps and replays refusals and failures: a 400 and a 500 come back the same', async () => {
    const k = key();
    const bad = await post(built.app, '/things', k, { nope: 1 });
    const again = await post(built.app, '/things', k, { nope: 1 });
    expect(bad.statusCode).toBe(400);
    expect(again.statusCode).toBe(400);
    expect(again.body).toBe(bad.body);
    expect(again.headers['idempotent-replayed']).toBe('true');
    const b = key();
    const booms = built.booms();
    const first = await post(built.app, '/boom', b, {});
    const second = await post(built.app, '/boom', b, {});
    expect(first.statusCode).toBe(500);
    expect(second.body).toBe(first.body);
    expect(built.booms()).toBe(booms + 1);
  });

  it('a duplicate waits for the first, then gets 409 with Retry-After once it waited 5 s', async () => {
    built.reset();
    const k = key();
    const running = built.gate.running;
    const first = post(built.app, '/slow', k, {});
    await eventually(() => built.gate.running === running + 1, 'the first request to run');
    const sleeps = built.clock.pendingSleeps;
    const second = post(built.app, '/slow', k, {});
    await eventually(() => built.clock.pendingSleeps > sleeps, 'the duplicate to wait');
    await built.clock.advance(5_000);
    const refused = await second;
    expect(refused.statusCode).toBe(409);
    expect(refused.json().code).toBe('IDEMPOTENCY_KEY_IN_PROGRESS');
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
    built.gate.open();
    expect((await first).statusCode).toBe(200);
    const third = await post(built.app, '/slow', k, {});
    expect(third.headers['idempotent-replayed']).toBe('true');
    expect(built.gate.running).toBe(running + 1);
  });

  it('a key expires after 24 hours: the same key runs again', async () => {
    const before = await count(sql);
    const k = key();
    await post(built.app, '/things', k, { name: 'day' });
    // The response is kept while it is sent: a retry waits for that write, so the clock moves
    // only once the key holds its response (not while the first request still holds a lease).
    const retry = await post(built.app, '/things', k, { name: 'day' });
    expect(retry.headers['idempotent-replayed']).toBe('true');
    await built.clock.advance(24 * 3_600_000 - 1);
    expect(
      (await post(built.app, '/things', k, { name: 'day' })).headers['idempotent-replayed'],
    ).toBe('true');
    await built.clock.advance(1);
    const later = await post(built.app, '/things', k, { name: 'other day' });
    expect(later.statusCode).toBe(201);
    expect(later.headers['idempotent-replayed']).toBeUndefined();
    expect(await count(sql)).toBe(before + 2);
  });

  it('refuses malformed keys with 400 and a message, and accepts odd printable ones', async () => {
    const refused = ['x'.repeat(256), 'caf\u00e9', 'a"b', 'a\\b', '', '   '];
    for (const k of refused) {
      const r = await built.app.inject({
        method: 'POST',
        url: '/things',
        headers: {
          'content-type': 'application/json',
          'idempotency-key': Buffer.from(k, 'latin1').toString('latin1'),
        },
        payload: '{"name":"n"}',
      });
      expect(r.statusCode, k.slice(0, 20)).toBe(400);
      expect(r.json().code).toBe('IDEMPOTENCY_KEY_INVALID');
      expect(r.json().message).toMatch(/Idempotency-Key/);
    }
    const before = await count(sql);
    for (const k of [
      'x'.repeat(255),
      '__proto__',
      'constructor',
      '"quoted-key"',
      "'; DROP TABLE things; --",
    ]) {
      const a = await post(built.app, '/things', k, { name: 'odd' });
      const b = await post(built.app, '/things', k, { name: 'odd' });
      expect(a.statusCode, k.slice(0, 20)).toBe(201);
      expect(b.headers['idempotent-replayed']).toBe('true');
    }
    expect(await count(sql)).toBe(before + 5);
  });
}

describe('Fastify plugin on PGlite', () => {
  pluginSuite(async () => {
    const sql = await PgliteSqlClient.open();
    await migrate(sql, idempotencyMigrations);
    return { sql, store: new SqlIdempotencyStore({ sql }), close: () => sql.close() };
  });
});

describeServer('Fastify plugin on PostgreSQL', 'CDP_DATABASE_URL', (url) => {
  let db: TempDatabase;
  pluginSuite(async () => {
    db = await createTempDatabase(url, 'cdp_idem');
    const sql = await PgSqlClient.open({ url: db.url });
    await migrate(sql, idempotencyMigrations);
    return {
      sql,
      store: new SqlIdempotencyStore({ sql }),
      close: async () => {
        await sql.close();
        await db.drop();
      },
    };
  });
});

describeServer('Fastify plugin on Redis (effects in PGlite)', 'CDP_REDIS_URL', (url) => {
  const prefix = `cdp-test:idem-http:${randomBytes(5).toString('hex')}:`;
  let client: RedisClient;
  pluginSuite(async () => {
    client = await connectRedis({ url, name: 'cdp-idempotency-http-test' });
    const sql = await PgliteSqlClient.open();
    return {
      sql,
      store: new RedisIdempotencyStore({ client, prefix }),
      close: async () => {
        for await (const keys of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 500 }))
          if (keys.length > 0) await client.unlink(keys);
        await client.close();
        await sql.close();
      },
    };
  });
});

describe('the header on the wire (PROBES: bad input)', () => {
  let sql: SqlClient;
  let built: Built;
  let port: number;
  beforeAll(async () => {
    sql = await PgliteSqlClient.open();
    await migrate(sql, idempotencyMigrations);
    await sql.exec('CREATE TABLE things (id serial PRIMARY KEY, name text NOT NULL)');
    built = await buildApp(new SqlIdempotencyStore({ sql }), sql);
    await built.app.listen({ host: '127.0.0.1', port: 0 });
    port = (built.app.server.address() as { port: number }).port;
  });
  afterAll(async () => {
    await built?.app.close();
    await sql?.close();
  });

  const raw = async (keyHeader: string): Promise<string> => {
    const c = await openRaw(port);
    const body = '{"name":"wire"}';
    c.socket.write(
      Buffer.from(
        `POST /things HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n${keyHeader}\r\n\r\n${body}`,
        'latin1',
      ),
    );
    return c.closed;
  };
  const status = (text: string) => Number(text.slice(9, 12));

  it('refuses NUL, CR or LF inside, non-ASCII bytes, a 1 MB key and a repeated header; no row is made', async () => {
    const before = await count(sql);
    expect(status(await raw('idempotency-key: a\u0000b'))).toBe(400);
    expect(status(await raw('idempotency-key: a\rb'))).toBe(400);
    expect(status(await raw('idempotency-key: a\nx-other: b'))).toBe(400);
    const nonAscii = await raw('idempotency-key: caf\u00e9');
    expect(status(nonAscii)).toBe(400);
    expect(nonAscii).toContain('IDEMPOTENCY_KEY_INVALID');
    expect(status(await raw(`idempotency-key: ${'k'.repeat(1024 * 1024)}`))).toBe(431);
    const twice = await raw('idempotency-key: one\r\nidempotency-key: two');
    expect(status(twice)).toBe(400);
    expect(twice).toContain('not several');
    expect(await count(sql)).toBe(before);
  });
});
