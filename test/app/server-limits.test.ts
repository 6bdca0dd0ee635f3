import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/core/config.js';
import { openRaw as open, trickle } from '../support/raw-socket.js';
import { type Client, startClient } from './support.js';

/**
 * The platform's HTTP server cuts off slow and greedy clients (issue 18, point 3). Limits are
 * set short here so that each cut comes quickly; the tests wait for the server to close the
 * connection (they would time out if it never did), never for a fixed time.
 */

/** A client that trickles `request` (headers only) is cut off: a 408, or a bare close. */
async function expectHeadersCutOff(port: number, request: string): Promise<void> {
  const conn = await open(port);
  trickle(conn.socket, request, 50);
  await conn.closed;
  expect(conn.received()).toMatch(/^HTTP\/1\.1 408|^$/);
}

describe('platform HTTP server limits', () => {
  let c: Client;
  beforeAll(async () => {
    c = await startClient(
      {
        CDP_HTTP_HEADERS_TIMEOUT_MS: '400',
        CDP_HTTP_REQUEST_TIMEOUT_MS: '60000',
        CDP_HTTP_KEEP_ALIVE_TIMEOUT_MS: '300',
        CDP_HTTP_MIN_BODY_BYTES_PER_SECOND: '200',
        CDP_HTTP_MAX_CONNECTIONS_PER_CLIENT: '8',
      },
      [],
    );
  });
  afterAll(async () => c?.close());

  it('cuts off a client that trickles its request headers', async () => {
    await expectHeadersCutOff(
      c.platform.port,
      'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n',
    );
  });

  it('cuts off a client that trickles a request body one byte at a time', async () => {
    const conn = await open(c.platform.port);
    const body = JSON.stringify({ title: 'slow', topic: 't', instructor: 'i', priceCents: 1 });
    conn.socket.write(
      `POST /api/catalog/courses HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`,
    );
    trickle(conn.socket, body, 100);
    await conn.closed;
    expect(conn.received()).toMatch(/^HTTP\/1\.1 408/);
    expect(conn.received()).toContain('BODY_TOO_SLOW');
  });

  it('closes a keep-alive connection left idle', async () => {
    const conn = await open(c.platform.port);
    conn.socket.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    await conn.closed;
    expect(conn.received()).toMatch(/^HTTP\/1\.1 200/);
  });

  it('caps the connections one client address holds open', async () => {
    // Its own platform, whose idle connections stay open while the test holds them.
    const capped = await startClient(
      { CDP_HTTP_KEEP_ALIVE_TIMEOUT_MS: '60000', CDP_HTTP_MAX_CONNECTIONS_PER_CLIENT: '8' },
      [],
    );
    try {
      await holdAndExceed(capped.platform.port);
    } finally {
      await capped.close();
    }
  });

  async function holdAndExceed(port: number) {
    const held = await Promise.all(Array.from({ length: 8 }, () => open(port)));
    // Each held connection has been seen by the server once it answers a request on it.
    for (const h of held) {
      h.socket.write('GET /api HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    }
    await expect
      .poll(() => held.every((h) => h.received().startsWith('HTTP/1.1 200')), { timeout: 5000 })
      .toBe(true);
    const extra = await open(port);
    await extra.closed;
    expect(extra.received()).toMatch(/^HTTP\/1\.1 503/);
    expect(extra.received()).toContain('TOO_MANY_CONNECTIONS');
    for (const h of held) h.socket.destroy();
  }

  it('has sane defaults, and refuses a header timeout longer than the request timeout', () => {
    const d = loadConfig({}).http;
    expect(d.headersTimeoutMs).toBeGreaterThan(0);
    expect(d.requestTimeoutMs).toBeGreaterThanOrEqual(d.headersTimeoutMs);
    expect(d.keepAliveTimeoutMs).toBeGreaterThan(0);
    expect(d.minBodyBytesPerSecond).toBeGreaterThan(0);
    expect(d.maxConnectionsPerClient).toBeGreaterThan(0);
    expect(() =>
      loadConfig({ CDP_HTTP_HEADERS_TIMEOUT_MS: '5000', CDP_HTTP_REQUEST_TIMEOUT_MS: '1000' }),
    ).toThrow(/CDP_HTTP_HEADERS_TIMEOUT_MS/);
  });
});

describe('the media storage server under the platform limits', () => {
  let m: Client;
  beforeAll(async () => {
    m = await startClient({
      CDP_HTTP_HEADERS_TIMEOUT_MS: '400',
      CDP_HTTP_REQUEST_TIMEOUT_MS: '60000',
    });
  });
  afterAll(async () => m?.close());

  it('holds the header timeout on the media storage server too', async () => {
    const health = await m.call('GET', '/health');
    const engines = (health.body as { engines: { role: string; detail?: string }[] }).engines;
    const storage = engines.find((e) => e.role === 'blob storage');
    expect(storage?.detail, 'the health report names the storage server').toBeDefined();
    await expectHeadersCutOff(
      Number(new URL(storage!.detail!).port),
      'GET /cdp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n',
    );
  });
});
