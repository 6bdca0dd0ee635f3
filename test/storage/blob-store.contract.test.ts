/**
 * One contract for every BlobStore adapter: the filesystem store, and the S3 store talking to
 * our own storage server (started here on 127.0.0.1, port 0) through @aws-sdk/client-s3.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BlobStore } from '../../src/storage/blob/blob-store.js';
import { FsBlobStore } from '../../src/storage/blob/fs-blob-store.js';
import { S3BlobStore } from '../../src/storage/blob/s3-blob-store.js';
import { StorageServer, staticKeys } from '../../src/storage/index.js';
import { StorageError } from '../../src/storage/storage-error.js';

async function text(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    const v = await p;
    if (v && typeof v === 'object' && 'body' in v) (v as { body: Readable }).body.destroy();
    return 'OK';
  } catch (err) {
    if (err instanceof StorageError) return err.s3Code;
    throw err;
  }
}

const md5 = (b: Buffer | string) => createHash('md5').update(b).digest('hex');
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

interface Adapter {
  name: string;
  open(): Promise<{ store: BlobStore; cleanup(): Promise<void> }>;
  /** Property-test runs (the S3 adapter crosses HTTP for every step). */
  runs: number;
}

const creds = { accessKeyId: 'AKCONTRACT', secretAccessKey: 'contract-secret' };

const adapters: Adapter[] = [
  {
    name: 'fs',
    runs: 25,
    async open() {
      const dir = await mkdtemp(join(tmpdir(), 'cdp-fs-blob-'));
      const store = await FsBlobStore.open({ dir, fsync: false });
      return { store, cleanup: () => rm(dir, { recursive: true, force: true }) };
    },
  },
  {
    name: 's3 (our storage server via @aws-sdk/client-s3)',
    runs: 8,
    async open() {
      const dir = await mkdtemp(join(tmpdir(), 'cdp-s3-blob-'));
      const server = await StorageServer.start({
        dir,
        keys: staticKeys([creds]),
        fsync: false,
        minPartBytes: 5 * 1024 * 1024,
      });
      const client = new S3Client({
        region: 'us-east-1',
        endpoint: server.url,
        forcePathStyle: true,
        credentials: creds,
      });
      const bucket = `b-${Math.random().toString(36).slice(2, 10)}`;
      await client.send(new CreateBucketCommand({ Bucket: bucket }));
      const store = new S3BlobStore({
        client,
        bucket,
        partBytes: 5 * 1024 * 1024,
        ownsClient: true,
      });
      return {
        store,
        async cleanup() {
          await store.close();
          await server.close();
          await rm(dir, { recursive: true, force: true });
        },
      };
    },
  },
];

// Real S3 (or MinIO) when configured: CDP_S3_ENDPOINT, CDP_S3_BUCKET and the keys.
const env = process.env;
if (
  env.CDP_S3_ENDPOINT &&
  env.CDP_S3_BUCKET &&
  env.CDP_S3_ACCESS_KEY_ID &&
  env.CDP_S3_SECRET_ACCESS_KEY
) {
  adapters.push({
    name: `s3 (${env.CDP_S3_ENDPOINT})`,
    runs: 5,
    async open() {
      const client = new S3Client({
        region: env.CDP_S3_REGION ?? 'us-east-1',
        endpoint: env.CDP_S3_ENDPOINT,
        forcePathStyle: true,
        credentials: {
          accessKeyId: env.CDP_S3_ACCESS_KEY_ID!,
          secretAccessKey: env.CDP_S3_SECRET_ACCESS_KEY!,
        },
      });
      const store = new S3BlobStore({
        client,
        bucket: env.CDP_S3_BUCKET!,
        partBytes: 5 * 1024 * 1024,
        ownsClient: true,
      });
      return { store, cleanup: () => store.close() };
    },
  });
} else {
  console.log(
    'skipped: BlobStore contract on real S3 (set CDP_S3_ENDPOINT, CDP_S3_BUCKET and keys)',
  );
}

for (const a of adapters) {
  describe(`BlobStore contract: ${a.name}`, () => {
    let store: BlobStore;
    let cleanup: () => Promise<void>;
    beforeAll(async () => {
      ({ store, cleanup } = await a.open());
    });
    afterAll(async () => {
      await cleanup();
    });

    it('puts and gets bytes with type, metadata, MD5 ETag and SHA-256', async () => {
      const info = await store.put('docs/hello.txt', 'hello world', {
        contentType: 'text/plain',
        metadata: { owner: 'u1' },
      });
      expect(info).toMatchObject({
        key: 'docs/hello.txt',
        size: 11,
        etag: md5('hello world'),
        sha256: sha('hello world'),
      });
      const got = await store.get('docs/hello.txt');
      expect((await text(got.body)).toString()).toBe('hello world');
      expect(got.info).toMatchObject({
        contentType: 'text/plain',
        metadata: { owner: 'u1' },
        size: 11,
      });
      const h = await store.head('docs/hello.txt');
      expect(h).toMatchObject({ size: 11, etag: md5('hello world'), sha256: sha('hello world') });
    });

    it('overwrites, deletes idempotently, and reports absence', async () => {
      await store.put('k1', 'one');
      await store.put('k1', 'two!');
      expect((await text((await store.get('k1')).body)).toString()).toBe('two!');
      await store.delete('k1');
      await store.delete('k1');
      expect(await store.head('k1')).toBeNull();
      expect(await code(store.get('k1'))).toBe('NoSuchKey');
    });

    it('serves byte ranges and refuses unsatisfiable ones', async () => {
      await store.put('r', '0123456789');
      const rd = async (range: Parameters<BlobStore['get']>[1]) => {
        const g = await store.get('r', range);
        return [(await text(g.body)).toString(), g.range];
      };
      expect(await rd({ range: { start: 2, end: 4 } })).toEqual(['234', { start: 2, end: 4 }]);
      expect(await rd({ range: { start: 7 } })).toEqual(['789', { start: 7, end: 9 }]);
      expect(await rd({ range: { suffix: 3 } })).toEqual(['789', { start: 7, end: 9 }]);
      expect(await rd({ range: { start: 8, end: 100 } })).toEqual(['89', { start: 8, end: 9 }]);
      expect(await code(store.get('r', { range: { start: 10 } }))).toBe('InvalidRange');
    });

    it('keys with unicode, spaces, + = &, //, quotes and dots round-trip and list', async () => {
      const keys = [
        'a b/c+d=e&f',
        'x//y',
        `q'"uote`,
        '../dots/./x',
        'é/日本/🙂',
        '%2e%2e/raw',
        'tilde~!*()',
      ];
      for (const k of keys) await store.put(k, `v:${k}`);
      for (const k of keys)
        expect((await text((await store.get(k)).body)).toString()).toBe(`v:${k}`);
      const listed = (await store.list({})).objects.map((o) => o.key);
      for (const k of keys) expect(listed).toContain(k);
      for (const k of keys) await store.delete(k);
    });

    it('lists by prefix with pagination and delimiter', async () => {
      for (const k of ['p/a', 'p/b', 'p/c/1', 'p/c/2', 'p/d', 'q/z']) await store.put(k, k);
      const seen: string[] = [];
      let token: string | undefined;
      let pages = 0;
      do {
        const page = await store.list({
          prefix: 'p/',
          maxKeys: 2,
          ...(token ? { continuationToken: token } : {}),
        });
        seen.push(...page.objects.map((o) => o.key));
        token = page.nextContinuationToken;
        expect(page.isTruncated).toBe(token !== undefined);
        pages++;
      } while (token);
      expect(seen).toEqual(['p/a', 'p/b', 'p/c/1', 'p/c/2', 'p/d']);
      expect(pages).toBe(3);
      const d = await store.list({ prefix: 'p/', delimiter: '/' });
      expect(d.objects.map((o) => o.key)).toEqual(['p/a', 'p/b', 'p/d']);
      expect(d.commonPrefixes).toEqual(['p/c/']);
      const after = await store.list({ prefix: 'p/', startAfter: 'p/c/1' });
      expect(after.objects.map((o) => o.key)).toEqual(['p/c/2', 'p/d']);
    });

    it('copies bytes and metadata, or replaces metadata', async () => {
      await store.put('src', 'copy me', { contentType: 'text/x', metadata: { a: '1' } });
      const c1 = await store.copy('src', 'dst');
      expect(c1).toMatchObject({
        size: 7,
        sha256: sha('copy me'),
        contentType: 'text/x',
        metadata: { a: '1' },
      });
      expect((await text((await store.get('dst')).body)).toString()).toBe('copy me');
      const c2 = await store.copy('src', 'dst2', { metadata: { b: '2' } });
      expect(c2.metadata).toEqual({ b: '2' });
      expect(await code(store.copy('absent', 'x'))).toBe('NoSuchKey');
    });

    it('streams a 12 MiB body (multipart on S3) with the right SHA-256', async () => {
      const part = Buffer.alloc(1024 * 1024);
      const parts: Buffer[] = [];
      for (let i = 0; i < 12; i++) parts.push(Buffer.from(part.fill(i)));
      const all = Buffer.concat(parts);
      const info = await store.put('big', Readable.from(parts), {
        contentType: 'application/x-big',
      });
      expect(info.size).toBe(all.length);
      expect(info.sha256).toBe(sha(all));
      const got = await store.get('big', {
        range: { start: 5 * 1024 * 1024 - 2, end: 5 * 1024 * 1024 + 1 },
      });
      expect([...(await text(got.body))]).toEqual([4, 4, 5, 5]);
      expect(sha(await text((await store.get('big')).body))).toBe(sha(all));
      await store.delete('big');
    });

    it('refuses bodies over maxBytes or not matching a digest, leaving the old object', async () => {
      await store.put('lim', 'old');
      expect(await code(store.put('lim', 'x'.repeat(100), { maxBytes: 10 }))).toBe(
        'EntityTooLarge',
      );
      expect(await code(store.put('lim', 'abc', { expectedSha256: sha('abd') }))).toBe(
        'XAmzContentSHA256Mismatch',
      );
      expect(await code(store.put('lim', 'abc', { exactBytes: 4 }))).toBe('IncompleteBody');
      expect((await text((await store.get('lim')).body)).toString()).toBe('old');
    });

    it('property: after any put/delete sequence, list equals the model', async () => {
      const keyArb = fc.constantFrom('m/a', 'm/b', 'm/c d', 'm/é', 'm/x/y', 'm/+', 'm//z');
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.tuple(fc.boolean(), keyArb, fc.string({ maxLength: 8 })), { maxLength: 12 }),
          async (ops) => {
            for (const o of (await store.list({ prefix: 'm/' })).objects) await store.delete(o.key);
            const model = new Map<string, string>();
            for (const [isPut, k, v] of ops) {
              if (isPut) {
                await store.put(k, v);
                model.set(k, v);
              } else {
                await store.delete(k);
                model.delete(k);
              }
            }
            const listed = await store.list({ prefix: 'm/', maxKeys: 3 });
            const all: string[] = [...listed.objects.map((o) => o.key)];
            let t = listed.nextContinuationToken;
            while (t) {
              const p = await store.list({ prefix: 'm/', maxKeys: 3, continuationToken: t });
              all.push(...p.objects.map((o) => o.key));
              t = p.nextContinuationToken;
            }
            const expected = [...model.keys()].sort((x, y) =>
              Buffer.compare(Buffer.from(x), Buffer.from(y)),
            );
            expect(all).toEqual(expected);
            for (const [k, v] of model)
              expect((await text((await store.get(k)).body)).toString()).toBe(v);
          },
        ),
        { numRuns: a.runs, seed: 11 },
      );
    });
  });
}
