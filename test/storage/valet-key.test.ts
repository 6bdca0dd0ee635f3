/**
 * Valet keys on PostgreSQL with two storage server processes: scope, size cap, IP range,
 * POST policy, audit, and revocation seen by every instance within one second.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  HeadObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { migrate } from '../../src/engines/sql/index.js';
import { PgSqlClient } from '../../src/engines/sql/pg.js';
import { ValetKeyService, valetKeyMigrations } from '../../src/storage/valet-key/valet-key.js';
import { eventually } from '../../src/testing/eventually.js';
import { createTempDatabase, describeServer } from '../support/servers.js';

const ROOT = { accessKeyId: 'AKROOT', secretAccessKey: 'root-secret' };
const MASTER = 'valet-master-secret-for-tests';

function startServer(env: Record<string, string>): Promise<{ proc: ChildProcess; url: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(
      process.execPath,
      ['--import', 'tsx', 'test/storage/fixtures/valet-server.ts'],
      {
        env: { ...process.env, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    let err = '';
    proc.stdout!.on('data', (d) => {
      out += d;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve({ proc, url: m[1]! });
    });
    proc.stderr!.on('data', (d) => {
      err += d;
    });
    proc.on('exit', (code) => reject(new Error(`server exited ${code}: ${err}`)));
  });
}

describeServer('valet keys (PostgreSQL, two server processes)', 'CDP_DATABASE_URL', (url) => {
  let db: { url: string; drop: () => Promise<void> };
  let sql: PgSqlClient;
  let valet: ValetKeyService;
  let dir: string;
  const servers: { proc: ChildProcess; url: string }[] = [];

  beforeAll(async () => {
    db = await createTempDatabase(url, 'cdp_storage');
    sql = await PgSqlClient.open({ url: db.url });
    await migrate(sql, valetKeyMigrations);
    dir = await mkdtemp(join(tmpdir(), 'cdp-valet-'));
    const env = {
      CDP_DATABASE_URL: db.url,
      STORAGE_DIR: dir,
      VALET_MASTER: MASTER,
      ROOT_KEY: ROOT.accessKeyId,
      ROOT_SECRET: ROOT.secretAccessKey,
    };
    servers.push(...(await Promise.all([startServer(env), startServer(env)])));
    const s3 = new S3Client({
      region: 'us-east-1',
      endpoint: servers[0]!.url,
      forcePathStyle: true,
      credentials: ROOT,
    });
    await s3.send(new CreateBucketCommand({ Bucket: 'course-media' }));
    s3.destroy();
    valet = await ValetKeyService.open({ sql, masterSecret: MASTER, endpoint: servers[0]!.url });
  });

  afterAll(async () => {
    await valet?.close();
    for (const s of servers) {
      const exited = new Promise((r) => s.proc.once('exit', r));
      s.proc.kill('SIGTERM');
      await exited;
    }
    await sql?.close();
    await db?.drop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('holds a size cap across multipart: no part past the running total, no completed object past the cap', async () => {
    const MiB = 1024 * 1024;
    const key = await valet.issue({
      bucket: 'course-media',
      key: 'videos/big.mp4',
      methods: ['PUT', 'GET'],
      expiresIn: 600,
      maxBytes: 6 * MiB,
    });
    const client = (credentials: { accessKeyId: string; secretAccessKey: string }) =>
      new S3Client({
        region: 'us-east-1',
        endpoint: servers[0]!.url,
        forcePathStyle: true,
        credentials,
      });
    const holder = client({ accessKeyId: key.keyId, secretAccessKey: key.secretAccessKey });
    const root = client(ROOT);
    const o = { Bucket: 'course-media', Key: 'videos/big.mp4' };
    const part = Buffer.alloc(6 * MiB, 7);
    // The key's holder: the second 6 MiB part passes the cap and is refused.
    const up = await holder.send(new CreateMultipartUploadCommand(o));
    const p1 = await holder.send(
      new UploadPartCommand({ ...o, UploadId: up.UploadId!, PartNumber: 1, Body: part }),
    );
    for (const n of [2, 3]) {
      await expect(
        holder.send(
          new UploadPartCommand({ ...o, UploadId: up.UploadId!, PartNumber: n, Body: part }),
        ),
      ).rejects.toMatchObject({ name: 'EntityTooLarge' });
    }
    // Parts uploaded by another key: the holder cannot complete them into 18 MiB.
    const up2 = await root.send(new CreateMultipartUploadCommand(o));
    const parts = [];
    for (const n of [1, 2, 3]) {
      const r = await root.send(
        new UploadPartCommand({ ...o, UploadId: up2.UploadId!, PartNumber: n, Body: part }),
      );
      parts.push({ PartNumber: n, ETag: r.ETag! });
    }
    await expect(
      holder.send(
        new CompleteMultipartUploadCommand({
          ...o,
          UploadId: up2.UploadId!,
          MultipartUpload: { Parts: parts },
        }),
      ),
    ).rejects.toMatchObject({ name: 'EntityTooLarge' });
    await expect(root.send(new HeadObjectCommand(o))).rejects.toMatchObject({
      $metadata: { httpStatusCode: 404 },
    });
    // Within the cap, the holder completes.
    await holder.send(
      new CompleteMultipartUploadCommand({
        ...o,
        UploadId: up.UploadId!,
        MultipartUpload: { Parts: [{ PartNumber: 1, ETag: p1.ETag! }] },
      }),
    );
    expect((await root.send(new HeadObjectCommand(o))).ContentLength).toBe(6 * MiB);
    holder.destroy();
    root.destroy();
  });

  it('scopes a key to one object, its methods and a size cap (signed Content-Length)', async () => {
    const key = await valet.issue({
      bucket: 'course-media',
      key: 'videos/v1.mp4',
      methods: ['PUT', 'GET'],
      expiresIn: 600,
      maxBytes: 100,
    });
    expect(key.keyId).toMatch(/^cdpv_[0-9a-f]{30}$/);
    const put = valet.presignUrl(key, { method: 'PUT', contentLength: 100 });
    expect((await fetch(put, { method: 'PUT', body: Buffer.alloc(100, 1) })).status).toBe(200);
    const get = await fetch(valet.presignUrl(key, { method: 'GET' }));
    expect(get.status).toBe(200);
    expect((await get.arrayBuffer()).byteLength).toBe(100);
    const tooBig = await fetch(valet.presignUrl(key, { method: 'PUT', contentLength: 101 }), {
      method: 'PUT',
      body: Buffer.alloc(101),
    });
    expect(tooBig.status).toBe(400);
    expect(await tooBig.text()).toContain('EntityTooLarge');
    const other = await fetch(valet.presignUrl(key, { method: 'GET', objectKey: 'videos/v2.mp4' }));
    expect(other.status).toBe(403);
    const del = await fetch(valet.presignUrl(key, { method: 'DELETE' }), { method: 'DELETE' });
    expect(del.status).toBe(403);
  });

  it('a prefix key with a browser POST policy capped at maxBytes', async () => {
    const key = await valet.issue({
      bucket: 'course-media',
      prefix: 'uploads/u7/',
      methods: ['POST', 'GET'],
      expiresIn: 600,
      maxBytes: 1000,
    });
    const policy = valet.postPolicy(key, { contentType: 'video/' });
    const form = (n: number, name: string) => {
      const f = new FormData();
      for (const [k, v] of Object.entries({
        ...policy.fields,
        key: `uploads/u7/${name}`,
        'Content-Type': 'video/mp4',
      }))
        f.append(k, v);
      f.append('file', new Blob([Buffer.alloc(n, 2)]), name);
      return f;
    };
    expect((await fetch(policy.url, { method: 'POST', body: form(1000, 'a.mp4') })).status).toBe(
      204,
    );
    expect((await fetch(policy.url, { method: 'POST', body: form(1001, 'b.mp4') })).status).toBe(
      400,
    );
    const f = form(10, 'c.mp4');
    f.set('key', 'uploads/u8/c.mp4');
    expect((await fetch(policy.url, { method: 'POST', body: f })).status).toBe(403);
  });

  it('honours the client IP range', async () => {
    const far = await valet.issue({
      bucket: 'course-media',
      key: 'videos/v1.mp4',
      methods: ['GET'],
      expiresIn: 600,
      ipRange: '10.0.0.0/8',
    });
    expect((await fetch(valet.presignUrl(far, { method: 'GET' }))).status).toBe(403);
    const near = await valet.issue({
      bucket: 'course-media',
      key: 'videos/v1.mp4',
      methods: ['GET'],
      expiresIn: 600,
      ipRange: '127.0.0.0/8',
    });
    expect((await fetch(valet.presignUrl(near, { method: 'GET' }))).status).toBe(200);
  });

  it('revoking a key id fails its outstanding URLs on every instance within 1 s; rotate issues a new one', async () => {
    const key = await valet.issue({
      bucket: 'course-media',
      key: 'videos/v1.mp4',
      methods: ['GET'],
      expiresIn: 600,
    });
    const urls = servers.map((s) => valet.presignUrl(key, { method: 'GET', endpoint: s.url }));
    for (const u of urls) expect((await fetch(u)).status).toBe(200);
    const t0 = performance.now();
    const rotated = await valet.rotate(key.keyId);
    const elapsed = await Promise.all(
      urls.map(async (u) => {
        for (;;) {
          const r = await fetch(u);
          await r.arrayBuffer();
          if (r.status === 403) return performance.now() - t0;
          if (performance.now() - t0 > 5000) return Number.POSITIVE_INFINITY;
          await new Promise((res) => setTimeout(res, 10));
        }
      }),
    );
    console.log(
      `valet revocation seen by the two instances after ${elapsed.map((e) => e.toFixed(0)).join(' ms, ')} ms`,
    );
    for (const e of elapsed) expect(e).toBeLessThan(1000);
    for (const s of servers) {
      expect(
        (await fetch(valet.presignUrl(rotated, { method: 'GET', endpoint: s.url }))).status,
      ).toBe(200);
    }
  });

  it('audits issue, use (with bytes) and refusal per key id', async () => {
    const key = await valet.issue({
      bucket: 'course-media',
      key: 'videos/v1.mp4',
      methods: ['GET'],
      expiresIn: 600,
    });
    await (await fetch(valet.presignUrl(key, { method: 'GET' }))).arrayBuffer();
    await (
      await fetch(valet.presignUrl(key, { method: 'DELETE' }), { method: 'DELETE' })
    ).arrayBuffer();
    const rows = await eventually(
      async () => {
        const r = await valet.auditFor(key.keyId);
        return r.length >= 3 && r;
      },
      'three audit rows for the key',
      { timeoutMs: 5_000, intervalMs: 50 },
    );
    expect(rows[0]).toMatchObject({ event: 'issue', outcome: 'ok' });
    expect(rows).toContainEqual(
      expect.objectContaining({
        event: 'use',
        op: 'GetObject',
        object_key: 'videos/v1.mp4',
        bytes: 100,
        outcome: 'ok',
      }),
    );
    expect(rows).toContainEqual(
      expect.objectContaining({
        event: 'use',
        op: 'DeleteObject',
        outcome: 'refused',
        code: 'AccessDenied',
      }),
    );
  });
});
