/**
 * Bad input and races on the storage server (issue 18, point 5): copy sources outside the
 * buckets, header injection through response-* overrides, DeleteBucket during an upload, and
 * what an unauthenticated POST form may learn.
 */
import { watch } from 'node:fs';
import { mkdtemp, readdir, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostPolicy, StorageServer, staticKeys } from '../../src/storage/index.js';
import { openRaw } from '../support/raw-socket.js';
import { s3Requester, signedPutHead } from './fixtures/s3-request.js';

const creds = { accessKeyId: 'AKHARD', secretAccessKey: 'hard-secret' };
let dir: string;
let server: StorageServer;

const req = s3Requester(() => server.url, creds);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cdp-hard-'));
  server = await StorageServer.start({ dir, keys: staticKeys([creds]), fsync: false });
  expect((await req('PUT', '/hard')).status).toBe(200);
  expect((await req('PUT', '/hard/src', [], { body: 'source' })).status).toBe(200);
});

afterAll(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

/** Files of this process open under `folder`. */
async function openFilesUnder(folder: string): Promise<string[]> {
  const out: string[] = [];
  for (const fd of await readdir('/proc/self/fd')) {
    const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
    if (target.startsWith(folder)) out.push(target);
  }
  return out;
}

describe('storage server hardening', () => {
  it('refuses x-amz-copy-source naming . or .. or any invalid bucket, and creates nothing in the data root', async () => {
    for (const src of [
      './src',
      '../src',
      '%2E%2E/src',
      '/../src',
      'Bad_Bucket/src',
      'a..b/src',
      'buckets/src',
    ]) {
      const r = await req('PUT', '/hard/copied', [], { headers: { 'x-amz-copy-source': src } });
      expect([src, r.status]).toEqual([src, src === 'buckets/src' ? 404 : 400]);
    }
    expect((await readdir(dir)).sort()).toEqual(['buckets', 'uploads']);
    expect(await readdir(join(dir, 'buckets'))).toEqual(['hard']);
    const list = await req('GET', '/');
    expect(list.text).not.toContain('<Name>objects</Name>');
    expect(list.text).not.toContain('<Name>tmp</Name>');
  });

  it('answers 400 to a CR/LF (or a character beyond U+00FF) in a response-* override, and leaves no file open', async () => {
    for (const [p, v] of [
      ['response-content-disposition', 'attachment\r\nSet-Cookie: a=b'],
      ['response-content-type', 'text/plain\nX: y'],
      ['response-cache-control', 'no\0cache'],
      ['response-expires', 'x\ry'],
      ['response-content-language', 'en'.padEnd(4, '\u2028')],
      ['response-content-encoding', 'gzip\r\n'],
    ] as const) {
      for (const method of ['GET', 'HEAD']) {
        const r = await req(method, '/hard/src', [[p, v]]);
        expect([p, method, r.status]).toEqual([p, method, 400]);
        expect(r.headers.get('set-cookie')).toBeNull();
      }
    }
    expect(await openFilesUnder(join(dir, 'buckets'))).toEqual([]);
    const ok = await req('GET', '/hard/src', [
      ['response-content-disposition', 'attachment; filename="a b.txt"'],
    ]);
    expect(ok.status).toBe(200);
    expect(ok.headers.get('content-disposition')).toBe('attachment; filename="a b.txt"');
  });

  it('refuses DeleteBucket (409) while an upload into the bucket streams; the writer succeeds; the bucket then deletes for good', async () => {
    expect((await req('PUT', '/racing')).status).toBe(200);
    // A first write opens the bucket's store (and its temp folder).
    expect((await req('PUT', '/racing/warm', [], { body: 'w' })).status).toBe(200);
    expect((await req('DELETE', '/racing/warm')).status).toBe(204);
    // The barrier: the server's temp file for this upload appears.
    const tmp = join(dir, 'buckets', 'racing', 'tmp');
    const started = new Promise<void>((resolve) => {
      const w = watch(tmp, () => {
        w.close();
        resolve();
      });
    });
    const { socket: sock, closed } = await openRaw(server.port);
    sock.write(
      `${signedPutHead(server.url, creds, '/racing/obj', 10, { Connection: 'close' })}hello`,
    );
    await started;
    const del = await req('DELETE', '/racing');
    expect(del.status).toBe(409);
    expect(del.text).toContain('<Code>OperationAborted</Code>');
    sock.write('world');
    expect(await closed).toMatch(/^HTTP\/1\.1 200 /);
    expect((await req('GET', '/racing/obj')).text).toBe('helloworld');
    expect((await req('DELETE', '/racing')).status).toBe(409); // not empty
    expect((await req('DELETE', '/racing/obj')).status).toBe(204);
    expect((await req('DELETE', '/racing')).status).toBe(204);
    expect((await req('HEAD', '/racing')).status).toBe(404);
    expect((await req('PUT', '/racing/again', [], { body: 'x' })).status).toBe(404);
    expect(await readdir(join(dir, 'buckets'))).not.toContain('racing');
  });

  it('gives an unauthenticated POST form the same answer for an existing and a missing bucket', async () => {
    const answers: string[] = [];
    for (const bucket of ['hard', 'no-such-bucket']) {
      const policy = createPostPolicy({
        bucket,
        key: 'up/',
        keyIsPrefix: true,
        credentials: { accessKeyId: creds.accessKeyId, secretAccessKey: 'not-the-secret' },
        region: 'us-east-1',
        now: Date.now(),
        expiresIn: 300,
        maxBytes: 100,
      });
      const f = new FormData();
      for (const [k, v] of Object.entries({ ...policy.fields, key: 'up/x' })) f.append(k, v);
      f.append('file', new Blob(['abc']), 'x');
      const r = await fetch(`${server.url}/${bucket}`, { method: 'POST', body: f });
      const code = /<Code>([^<]+)<\/Code>/.exec(await r.text())?.[1];
      answers.push(`${r.status} ${code}`);
    }
    expect(answers[0]).toBe(answers[1]);
    expect(answers[0]).toMatch(/^403 /);
  });
});
