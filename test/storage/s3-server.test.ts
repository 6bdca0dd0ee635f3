/**
 * The storage server against real clients: @aws-sdk/client-s3 and its presigner (unmodified,
 * forcePathStyle), curl, fetch with browser POST forms, and raw sockets for what clients will
 * not send (a body longer than the signed Content-Length).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  CreateBucketCommand,
  GetObjectCommand,
  HeadBucketCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveStorage } from '../../src/cli/storage-verbs.js';
import { type AuditEvent, StorageServer, staticKeys } from '../../src/storage/index.js';
import { createPostPolicy } from '../../src/storage/sigv4/post-policy.js';
import { presign, presignObject, s3ObjectPath } from '../../src/storage/sigv4/sign.js';

const run = promisify(execFile);
const creds = { accessKeyId: 'AKSERVER', secretAccessKey: 'server-secret' };

let dir: string;
let server: StorageServer;
let client: S3Client;
const audit: AuditEvent[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cdp-s3srv-'));
  server = await StorageServer.start({
    dir,
    keys: staticKeys([creds]),
    fsync: false,
    onAudit: (e) => audit.push(e),
    cors: {
      media: [
        {
          allowedOrigins: ['https://app.example'],
          allowedMethods: ['PUT', 'POST', 'GET'],
          allowedHeaders: ['content-type'],
          maxAgeSeconds: 60,
        },
      ],
    },
  });
  client = new S3Client({
    region: 'us-east-1',
    endpoint: server.url,
    forcePathStyle: true,
    credentials: creds,
  });
  await client.send(new CreateBucketCommand({ Bucket: 'media' }));
});

afterAll(async () => {
  client.destroy();
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

const host = () => new URL(server.url).host;

/** Send bytes on a raw socket (optionally a second write later); resolve with all the reply. */
function rawRequest(payload: string | Buffer, later?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(server.port, '127.0.0.1');
    const chunks: Buffer[] = [];
    sock.on('data', (d) => chunks.push(d));
    sock.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    sock.on('error', () => resolve(Buffer.concat(chunks).toString('latin1')));
    sock.write(payload);
    if (later !== undefined) setTimeout(() => sock.write(later), 150);
    setTimeout(() => sock.end(), 400);
    void reject;
  });
}

describe('storage server', () => {
  it('serveStorage prints the listening line', async () => {
    const lines: string[] = [];
    const d = await mkdtemp(join(tmpdir(), 'cdp-serve-'));
    const s = await serveStorage({ dir: d, port: 0, ...creds, out: (l) => lines.push(l) });
    expect(lines).toEqual([`listening on http://127.0.0.1:${s.port}`]);
    await s.close();
    await rm(d, { recursive: true, force: true });
  });

  it('HeadBucket and S3-shaped XML errors', async () => {
    await client.send(new HeadBucketCommand({ Bucket: 'media' }));
    await expect(
      client.send(new HeadBucketCommand({ Bucket: 'absent-bucket' })),
    ).rejects.toMatchObject({ $metadata: { httpStatusCode: 404 } });
    await expect(
      client.send(new GetObjectCommand({ Bucket: 'media', Key: 'nope' })),
    ).rejects.toMatchObject({ name: 'NoSuchKey' });
    const r = await fetch(`${server.url}/media/nope`);
    expect(r.status).toBe(403);
    const xml = await r.text();
    expect(xml).toMatch(
      /^<\?xml version="1.0" encoding="UTF-8"\?>\n<Error><Code>AccessDenied<\/Code><Message>[^<]+<\/Message><Resource>\/media\/nope<\/Resource><RequestId>[^<]+<\/RequestId><\/Error>$/,
    );
    const bad = new S3Client({
      region: 'us-east-1',
      endpoint: server.url,
      forcePathStyle: true,
      credentials: { ...creds, secretAccessKey: 'wrong' },
    });
    await expect(
      bad.send(new GetObjectCommand({ Bucket: 'media', Key: 'nope' })),
    ).rejects.toMatchObject({ name: 'SignatureDoesNotMatch' });
    bad.destroy();
  });

  it('accepts every URL the AWS SDK presigns (200 random keys, GET and PUT), and curl', async () => {
    const keys = fc.sample(
      fc.string({ unit: 'grapheme', minLength: 1, maxLength: 12 }).map((s) => `k/${s} +=&//'"..`),
      { numRuns: 200, seed: 3 },
    );
    for (const key of keys) {
      const put = await getSignedUrl(client, new PutObjectCommand({ Bucket: 'media', Key: key }), {
        expiresIn: 300,
      });
      const pr = await fetch(put, { method: 'PUT', body: `body:${key}` });
      expect([key, pr.status]).toEqual([key, 200]);
      const get = await getSignedUrl(client, new GetObjectCommand({ Bucket: 'media', Key: key }), {
        expiresIn: 300,
      });
      const gr = await fetch(get);
      expect(gr.status).toBe(200);
      expect(await gr.text()).toBe(`body:${key}`);
    }
    const url = await getSignedUrl(
      client,
      new GetObjectCommand({ Bucket: 'media', Key: keys[0]! }),
      { expiresIn: 60 },
    );
    const { stdout } = await run('curl', ['-sS', '--fail', url]);
    expect(stdout).toBe(`body:${keys[0]}`);
  });

  it('our presigned URLs work with fetch; %2e%2e stays part of the key (never resolved)', async () => {
    const now = Date.now();
    const put = presignObject({
      endpoint: server.url,
      bucket: 'media',
      key: '../escape',
      method: 'PUT',
      expiresIn: 60,
      credentials: creds,
      region: 'us-east-1',
      date: now,
    });
    expect(put).toContain('/media/../escape?');
    // fetch/new URL would resolve `..`: send the raw target on a socket instead.
    const target = put.slice(server.url.length);
    const resp = await rawRequest(
      `PUT ${target} HTTP/1.1\r\nHost: ${host()}\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc`,
    );
    expect(resp).toMatch(/^HTTP\/1.1 200/);
    const get = presignObject({
      endpoint: server.url,
      bucket: 'media',
      key: '../escape',
      expiresIn: 60,
      credentials: creds,
      region: 'us-east-1',
      date: now,
    }).replace('/media/../', '/media/%2E%2E/');
    const got = await rawRequest(
      `GET ${get.slice(server.url.length)} HTTP/1.1\r\nHost: ${host()}\r\nConnection: close\r\n\r\n`,
    );
    expect(got).toMatch(/^HTTP\/1.1 200[\s\S]*\r\n\r\nabc$/);
    // and no object 'escape' appeared in another bucket or at the root of this one
    await expect(
      client.send(new GetObjectCommand({ Bucket: 'media', Key: 'escape' })),
    ).rejects.toMatchObject({ name: 'NoSuchKey' });
  });

  it('enforces the signed Content-Length: longer bodies never get stored', async () => {
    const now = Date.now();
    const p = presign({
      method: 'PUT',
      host: host(),
      path: s3ObjectPath('media', 'sized'),
      headers: { 'content-length': '10' },
      credentials: creds,
      region: 'us-east-1',
      date: now,
      expiresIn: 60,
      protocol: 'http:',
    });
    const target = p.url.slice(server.url.length);
    // Another length than signed: refused.
    const r1 = await fetch(p.url, { method: 'PUT', body: 'x'.repeat(11) });
    expect(r1.status).toBe(403);
    // Chunked (no Content-Length) with a signed length: refused.
    const r2 = await rawRequest(
      `PUT ${target} HTTP/1.1\r\nHost: ${host()}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n14\r\n${'y'.repeat(20)}\r\n0\r\n\r\n`,
    );
    expect(r2).toMatch(/^HTTP\/1.1 403/);
    // The right header but 20 bytes: only the 10 signed are the body; the rest is not stored.
    const r3 = await rawRequest(
      `PUT ${target} HTTP/1.1\r\nHost: ${host()}\r\nContent-Length: 10\r\n\r\n${'z'.repeat(10)}`,
      'z'.repeat(10),
    );
    expect(r3).toMatch(/^HTTP\/1.1 200/);
    const obj = await client.send(new GetObjectCommand({ Bucket: 'media', Key: 'sized' }));
    expect(await obj.Body!.transformToString()).toBe('z'.repeat(10));
  });

  it('browser POST upload with a policy: accepted, over-size file refused, stray fields refused', async () => {
    const policy = createPostPolicy({
      bucket: 'media',
      key: 'uploads/',
      keyIsPrefix: true,
      credentials: creds,
      region: 'us-east-1',
      now: Date.now(),
      expiresIn: 300,
      maxBytes: 1000,
      contentType: 'video/',
    });
    const form = (fileBytes: number, extra: Record<string, string> = {}) => {
      const f = new FormData();
      for (const [k, v] of Object.entries({
        ...policy.fields,
        key: 'uploads/clip.mp4',
        'Content-Type': 'video/mp4',
        ...extra,
      }))
        f.append(k, v);
      f.append('file', new Blob([Buffer.alloc(fileBytes, 7)]), 'clip.mp4');
      return f;
    };
    const ok = await fetch(`${server.url}/media`, {
      method: 'POST',
      body: form(1000),
      headers: { origin: 'https://app.example' },
    });
    expect(ok.status).toBe(204);
    expect(ok.headers.get('access-control-allow-origin')).toBe('https://app.example');
    const head = await client.send(
      new GetObjectCommand({ Bucket: 'media', Key: 'uploads/clip.mp4' }),
    );
    expect(head.ContentType).toBe('video/mp4');
    expect((await head.Body!.transformToByteArray()).length).toBe(1000);
    const big = await fetch(`${server.url}/media`, {
      method: 'POST',
      body: form(1001, { key: 'uploads/big.mp4' }),
    });
    expect(big.status).toBe(400);
    expect(await big.text()).toContain('<Code>EntityTooLarge</Code>');
    await expect(
      client.send(new GetObjectCommand({ Bucket: 'media', Key: 'uploads/big.mp4' })),
    ).rejects.toMatchObject({ name: 'NoSuchKey' });
    const stray = await fetch(`${server.url}/media`, {
      method: 'POST',
      body: form(10, { acl: 'public-read' }),
    });
    expect(stray.status).toBe(403);
    // A field sent twice (the second `key` would escape the checked one): refused, not stored.
    // (Both before the file: parts after the file are ignored, as S3 does.)
    const dup = new FormData();
    for (const [k, v] of Object.entries({
      ...policy.fields,
      key: 'uploads/dup.mp4',
      'Content-Type': 'video/mp4',
    }))
      dup.append(k, v);
    dup.append('key', 'elsewhere/dup.mp4');
    dup.append('file', new Blob([Buffer.alloc(10, 7)]), 'clip.mp4');
    const twice = await fetch(`${server.url}/media`, { method: 'POST', body: dup });
    expect(twice.status).toBe(400);
    expect(await twice.text()).toContain('appears twice');
    for (const k of ['uploads/dup.mp4', 'elsewhere/dup.mp4']) {
      await expect(
        client.send(new GetObjectCommand({ Bucket: 'media', Key: k })),
      ).rejects.toMatchObject({ name: 'NoSuchKey' });
    }
  });

  it('answers CORS preflight by the bucket rules', async () => {
    const ok = await fetch(`${server.url}/media/x`, {
      method: 'OPTIONS',
      headers: {
        origin: 'https://app.example',
        'access-control-request-method': 'PUT',
        'access-control-request-headers': 'content-type',
      },
    });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('access-control-allow-methods')).toContain('PUT');
    const no = await fetch(`${server.url}/media/x`, {
      method: 'OPTIONS',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'PUT' },
    });
    expect(no.status).toBe(403);
  });

  it('audits uses and refusals with key id, object, bytes and outcome', () => {
    expect(
      audit.some(
        (e) => e.op === 'PutObject' && e.outcome === 'ok' && e.keyId === 'AKSERVER' && e.bytes > 0,
      ),
    ).toBe(true);
    expect(audit.some((e) => e.outcome === 'refused' && e.code === 'SignatureDoesNotMatch')).toBe(
      true,
    );
    expect(audit.some((e) => e.op === 'PostObject' && e.code === 'EntityTooLarge')).toBe(true);
  });
});
