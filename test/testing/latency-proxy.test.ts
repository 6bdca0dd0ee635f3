import { randomBytes } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgSqlClient } from '../../src/engines/sql/pg-sql-client.js';
import { type LatencyProxy, startLatencyProxy } from '../../src/testing/latency-proxy.js';
import { describeServer } from '../support/servers.js';

/** An echo server on a free loopback port. */
async function echoServer(): Promise<{ server: Server; port: number }> {
  const server = createServer({ allowHalfOpen: true }, (s) => {
    s.pipe(s);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no address');
  return { server, port: address.port };
}

/** Sends `data` through a connection in uneven chunks, ends it, and collects what comes back. */
async function roundTrip(port: number, data: Buffer): Promise<Buffer> {
  const s: Socket = connect({ host: '127.0.0.1', port });
  const got: Buffer[] = [];
  s.on('data', (c: Buffer) => got.push(c));
  const done = new Promise<void>((resolve, reject) => {
    s.on('end', resolve);
    s.on('error', reject);
  });
  for (let at = 0; at < data.length; ) {
    const n = 1 + ((at * 7919) % 65_521);
    s.write(data.subarray(at, at + n));
    at += n;
  }
  s.end();
  await done;
  s.destroy();
  return Buffer.concat(got);
}

describe('latency proxy', () => {
  let echo: { server: Server; port: number };
  let proxy: LatencyProxy;
  beforeAll(async () => {
    echo = await echoServer();
    proxy = await startLatencyProxy({ target: { port: echo.port }, oneWayMs: 25 });
  });
  afterAll(async () => {
    await proxy?.close();
    echo?.server.close();
  });

  it('carries every byte, in order, both ways (4 MiB in uneven chunks)', async () => {
    const data = randomBytes(4 * 1024 * 1024);
    const back = await roundTrip(proxy.port, data);
    expect(back.length).toBe(data.length);
    expect(back.equals(data)).toBe(true);
  });

  it('delays a round trip by at least twice the one-way time, and follows a new delay', async () => {
    const t0 = performance.now();
    await roundTrip(proxy.port, Buffer.from('ping'));
    expect(performance.now() - t0).toBeGreaterThanOrEqual(50);
    proxy.setDelay(60);
    const t1 = performance.now();
    await roundTrip(proxy.port, Buffer.from('ping'));
    expect(performance.now() - t1).toBeGreaterThanOrEqual(120);
    proxy.setDelay(25);
  });

  it('keeps many connections apart', async () => {
    const payloads = Array.from({ length: 20 }, (_, i) => randomBytes(10_000 + i));
    const backs = await Promise.all(payloads.map((p) => roundTrip(proxy.port, p)));
    expect(backs.map((b, i) => b.equals(payloads[i]!))).toEqual(payloads.map(() => true));
  });

  it('refuses a delay that is not a number of ms from 0 to 60000, and keeps the one in force', () => {
    for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY, 60_001]) {
      expect(() => proxy.setDelay(bad)).toThrow(/from 0 to 60000/);
    }
    expect(proxy.oneWayMs).toBe(25);
  });

  it('cuts the connections through it when closed', async () => {
    const p = await startLatencyProxy({ target: { port: echo.port } });
    const s = connect({ host: '127.0.0.1', port: p.port });
    await new Promise<void>((resolve) => s.on('connect', resolve));
    const closed = new Promise<void>((resolve) => s.on('close', () => resolve()));
    s.on('error', () => {});
    await p.close();
    await closed;
    expect(s.destroyed).toBe(true);
  });
});

describeServer('latency proxy in front of PostgreSQL', 'CDP_DATABASE_URL', (url) => {
  it('speaks the PostgreSQL protocol through it: queries and a transaction, 10 ms each way', async () => {
    const target = new URL(url);
    const proxy = await startLatencyProxy({
      target: { host: target.hostname, port: Number(target.port || 5432) },
      oneWayMs: 10,
    });
    const via = new URL(url);
    via.hostname = '127.0.0.1';
    via.port = String(proxy.port);
    const sql = await PgSqlClient.open({ url: via.toString(), max: 2 });
    try {
      const { rows } = await sql.query<{ n: number }>('SELECT $1::int + 1 AS n', [41]);
      expect(rows[0]!.n).toBe(42);
      const n = await sql.transaction(async (tx) => {
        await tx.exec('CREATE TEMP TABLE proxied (x int)');
        await tx.query('INSERT INTO proxied SELECT generate_series(1, 1000)');
        return (await tx.query<{ n: string }>('SELECT count(*)::text AS n FROM proxied')).rows[0]!
          .n;
      });
      expect(n).toBe('1000');
      expect(proxy.connections).toBeGreaterThan(0);
    } finally {
      await sql.close();
      await proxy.close();
    }
  });
});
