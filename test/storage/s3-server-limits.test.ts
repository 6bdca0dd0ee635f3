/**
 * What a slow or greedy client may hold (issue 18, point 3): a trickled header and a trickled
 * body are cut off, and one address gets at most N connections. The limits are set short here
 * so the tests are quick; the defaults are in ConnectionLimits.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StorageServer, staticKeys } from '../../src/storage/index.js';
import { signHeaders, UNSIGNED_PAYLOAD } from '../../src/storage/sigv4/sign.js';
import { s3Request } from './fixtures/s3-request.js';

const creds = { accessKeyId: 'AKLIMITS', secretAccessKey: 'limits-secret' };
let dir: string;
let server: StorageServer;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cdp-limits-'));
  server = await StorageServer.start({
    dir,
    keys: staticKeys([creds]),
    fsync: false,
    limits: {
      headersTimeoutMs: 300,
      bodyRateWindowMs: 200,
      minBodyBytes: 1024,
      maxConnectionsPerClient: 3,
    },
  });
  expect((await s3Request(server.url, creds, 'PUT', '/limits')).status).toBe(200);
});

afterAll(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

/** Open a socket; resolve with what it received once the server closes it. */
function open(): { sock: Socket; closed: Promise<string> } {
  const sock = connect(server.port, '127.0.0.1');
  const chunks: Buffer[] = [];
  sock.on('data', (d) => chunks.push(d));
  const closed = new Promise<string>((resolve) => {
    sock.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    sock.on('error', () => {});
  });
  return { sock, closed };
}

/** Write `text` one byte every 50 ms until the socket closes. */
function trickle(sock: Socket, text: string) {
  let i = 0;
  const t = setInterval(() => {
    if (sock.destroyed || i >= text.length) return clearInterval(t);
    sock.write(text[i++]!);
  }, 50);
  sock.once('close', () => clearInterval(t));
}

describe('storage server limits', () => {
  it('cuts off a request whose headers trickle in (408, connection closed)', async () => {
    const { sock, closed } = open();
    sock.write('GET /limits HTTP/1.1\r\n');
    trickle(sock, `Host: 127.0.0.1\r\nX-Slow: ${'a'.repeat(10_000)}\r\n\r\n`);
    expect(await closed).toMatch(/^HTTP\/1\.1 408 /);
  });

  it('cuts off a body trickled below the minimum rate (408, connection closed, nothing stored)', async () => {
    const host = new URL(server.url).host;
    const h = signHeaders({
      method: 'PUT',
      path: '/limits/slow',
      host,
      headers: { 'content-length': '4096' },
      credentials: creds,
      region: 'us-east-1',
      date: Date.now(),
      payloadHash: UNSIGNED_PAYLOAD,
    });
    const { sock, closed } = open();
    sock.write(
      `PUT /limits/slow HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 4096\r\nAuthorization: ${h.authorization}\r\nx-amz-date: ${h['x-amz-date']}\r\nx-amz-content-sha256: ${UNSIGNED_PAYLOAD}\r\n\r\n`,
    );
    trickle(sock, 'x'.repeat(4096));
    const reply = await closed;
    expect(reply).toMatch(/^HTTP\/1\.1 408 /);
    expect(reply).toContain('<Code>RequestTimeout</Code>');
    expect((await s3Request(server.url, creds, 'HEAD', '/limits/slow')).status).toBe(404);
  });

  it('refuses the connection past the cap from one address (503 SlowDown), and takes one again after a close', async () => {
    const held: Socket[] = [];
    for (let i = 0; i < 3; i++) {
      const { sock } = open();
      held.push(sock);
      // An answer on the connection shows the server has accepted it.
      await new Promise<void>((resolve) => {
        sock.once('data', () => resolve());
        sock.write('GET /limits HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      });
    }
    const extra = open();
    expect(await extra.closed).toMatch(/^HTTP\/1\.1 503 [\s\S]*<Code>SlowDown<\/Code>/);
    const gone = new Promise((r) => held[0]!.once('close', r));
    held[0]!.destroy();
    await gone;
    // The server sees the close a moment after the client: try until a connection is taken.
    let again: Socket | undefined;
    for (let i = 0; i < 100 && !again; i++) {
      const c = open();
      const first = await new Promise<string>((resolve) => {
        c.sock.once('data', (d) => resolve(d.toString('latin1')));
        c.sock.write('GET /limits HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      });
      if (/^HTTP\/1\.1 403 /.test(first)) again = c.sock;
      else c.sock.destroy();
    }
    expect(again).toBeDefined();
    for (const s of [...held, again!]) s.destroy();
  });
});
