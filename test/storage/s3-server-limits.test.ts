/**
 * What a slow or greedy client may hold (issue 18, point 3): a trickled header and a trickled
 * body are cut off, and one address gets at most N connections. The limits are set short here
 * so the tests are quick; the defaults are in ConnectionLimits.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StorageServer, staticKeys } from '../../src/storage/index.js';
import { openRaw, trickle } from '../support/raw-socket.js';
import { s3Request, signedPutHead } from './fixtures/s3-request.js';

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

describe('storage server limits', () => {
  it('cuts off a request whose headers trickle in (408, connection closed)', async () => {
    const { socket: sock, closed } = await openRaw(server.port);
    sock.write('GET /limits HTTP/1.1\r\n');
    trickle(sock, `Host: 127.0.0.1\r\nX-Slow: ${'a'.repeat(10_000)}\r\n\r\n`);
    expect(await closed).toMatch(/^HTTP\/1\.1 408 /);
  });

  it('cuts off a body trickled below the minimum rate (408, connection closed, nothing stored)', async () => {
    const { socket: sock, closed } = await openRaw(server.port);
    sock.write(signedPutHead(server.url, creds, '/limits/slow', 4096));
    trickle(sock, 'x'.repeat(4096));
    const reply = await closed;
    expect(reply).toMatch(/^HTTP\/1\.1 408 /);
    expect(reply).toContain('<Code>RequestTimeout</Code>');
    expect((await s3Request(server.url, creds, 'HEAD', '/limits/slow')).status).toBe(404);
  });

  it('refuses the connection past the cap from one address (503 SlowDown), and takes one again after a close', async () => {
    const held: Socket[] = [];
    for (let i = 0; i < 3; i++) {
      const { socket: sock } = await openRaw(server.port);
      held.push(sock);
      // An answer on the connection shows the server has accepted it.
      await new Promise<void>((resolve) => {
        sock.once('data', () => resolve());
        sock.write('GET /limits HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      });
    }
    const extra = await openRaw(server.port);
    expect(await extra.closed).toMatch(/^HTTP\/1\.1 503 [\s\S]*<Code>SlowDown<\/Code>/);
    const gone = new Promise((r) => held[0]!.once('close', r));
    held[0]!.destroy();
    await gone;
    // The server sees the close a moment after the client: try until a connection is taken.
    let again: Socket | undefined;
    for (let i = 0; i < 100 && !again; i++) {
      const c = await openRaw(server.port);
      const first = await new Promise<string>((resolve) => {
        c.socket.once('data', (d) => resolve(d.toString('latin1')));
        c.socket.write('GET /limits HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      });
      if (/^HTTP\/1\.1 403 /.test(first)) again = c.socket;
      else c.socket.destroy();
    }
    expect(again).toBeDefined();
    for (const s of [...held, again!]) s.destroy();
  });
});
