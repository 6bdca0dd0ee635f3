import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CreateBucketCommand,
  GetObjectCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/core/logger.js';
import { deadLetter, openBroker } from '../../src/messaging/index.js';
import { eventually } from '../../src/testing/eventually.js';
import { collect, runCdp, spawnCdp, waitForOutput } from '../support/cli.js';
import { describeServer } from '../support/servers.js';

const creds = {
  CDP_STORAGE_ACCESS_KEY_ID: 'clitestkey',
  CDP_STORAGE_SECRET_ACCESS_KEY: 'clitestsecret0123456789',
};

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cdp-cli-verbs-'));
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

describe('cdp storage serve', () => {
  it('refuses to start without credentials, naming the variables (exit 2)', async () => {
    const run = await runCdp(['storage', 'serve', '--dir', join(dir, 'none'), '--port', '0']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('CDP_STORAGE_ACCESS_KEY_ID');
  });

  it('serves the S3 API to the unmodified AWS SDK and to presigned URLs, and stops on SIGTERM', async () => {
    const child = spawnCdp(['storage', 'serve', '--dir', join(dir, 'blobs'), '--port', '0'], creds);
    const done = collect(child);
    try {
      const [, url] = await waitForOutput(child, /listening on (http:\/\/127\.0\.0\.1:\d+)/);
      const s3 = new S3Client({
        endpoint: url!,
        region: 'us-east-1',
        forcePathStyle: true,
        credentials: {
          accessKeyId: creds.CDP_STORAGE_ACCESS_KEY_ID,
          secretAccessKey: creds.CDP_STORAGE_SECRET_ACCESS_KEY,
        },
      });
      await s3.send(new CreateBucketCommand({ Bucket: 'cli' }));
      await s3.send(new PutObjectCommand({ Bucket: 'cli', Key: 'a b/c.txt', Body: 'hello' }));
      const got = await s3.send(new GetObjectCommand({ Bucket: 'cli', Key: 'a b/c.txt' }));
      expect(await got.Body!.transformToString()).toBe('hello');
      const presigned = await getSignedUrl(
        s3,
        new GetObjectCommand({ Bucket: 'cli', Key: 'a b/c.txt' }),
        { expiresIn: 60 },
      );
      expect(await (await fetch(presigned)).text()).toBe('hello');
      const forged = presigned.replace(
        /X-Amz-Signature=([0-9a-f])/,
        (_m, c: string) => `X-Amz-Signature=${c === '0' ? '1' : '0'}`,
      );
      expect((await fetch(forged)).status).toBe(403);
      s3.destroy();
    } finally {
      child.kill('SIGTERM');
    }
    const run = await done;
    expect(run.code).toBe(0);
  });
});

describe('cdp static', () => {
  it('serves a folder: files, 304 on the ETag, 405 on writes', async () => {
    const site = join(dir, 'plain');
    await mkdir(site, { recursive: true });
    await writeFile(join(site, 'index.html'), '<h1>plain</h1>');
    const child = spawnCdp(['static', 'serve', site, '--port', '0']);
    const done = collect(child);
    try {
      const [, url] = await waitForOutput(child, /listening on (http:\/\/127\.0\.0\.1:\d+)/);
      const res = await fetch(`${url}/`);
      expect(await res.text()).toBe('<h1>plain</h1>');
      const etag = res.headers.get('etag')!;
      expect((await fetch(`${url}/`, { headers: { 'if-none-match': etag } })).status).toBe(304);
      expect((await fetch(`${url}/index.html`, { method: 'PUT', body: 'x' })).status).toBe(405);
    } finally {
      child.kill('SIGTERM');
    }
    expect((await done).code).toBe(0);
  });

  it('deploys fingerprinted versions, switches atomically and rolls back with one command', async () => {
    const site = join(dir, 'site');
    const store = join(dir, 'store');
    await mkdir(site, { recursive: true });
    await writeFile(join(site, 'index.html'), '<script src="/app.js"></script>');
    await writeFile(join(site, 'app.js'), 'console.log("v1")');
    const first = await runCdp(['static', 'deploy', site, '--store', store]);
    expect(first.stderr).toBe('');
    expect(first.stdout).toMatch(/deployed version \S+: 2 files/);
    await writeFile(join(site, 'app.js'), 'console.log("v2")');
    const second = await runCdp(['static', 'deploy', site, '--store', store]);
    expect(second.stdout).toMatch(/\(previous \S+\)/);

    const child = spawnCdp(['static', 'serve', '--store', store, '--port', '0']);
    const done = collect(child);
    try {
      const [, url] = await waitForOutput(child, /listening on (http:\/\/127\.0\.0\.1:\d+)/);
      const script = async () => {
        const html = await (await fetch(`${url}/`)).text();
        const src = html.match(/src="(\/app\.[0-9a-f]+\.js)"/)?.[1];
        if (!src) throw new Error(`index.html does not reference a fingerprinted app.js: ${html}`);
        const res = await fetch(`${url}${src}`);
        expect(res.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
        return res.text();
      };
      expect(await script()).toBe('console.log("v2")');
      const back = await runCdp(['static', 'rollback', '--store', store]);
      expect(back.stdout).toMatch(/live version is now \S+ \(was \S+\)/);
      await eventually(
        async () =>
          (await script().catch(() => undefined)) === 'console.log("v1")' ? true : undefined,
        'the rolled-back version to be served',
      );
    } finally {
      child.kill('SIGTERM');
    }
    expect((await done).code).toBe(0);
    const none = await runCdp(['static', 'deploy', join(dir, 'missing'), '--store', store]);
    expect(none.code).not.toBe(0);
  });

  it('asks for an S3 endpoint when given a bucket without one', async () => {
    const run = await runCdp(['static', 'deploy', dir, '--bucket', 'site']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('CDP_S3_ENDPOINT');
  });
});

describe('cdp dlq (in-process broker, through the running platform)', () => {
  it('lists and replays through the platform API, with clear errors', async () => {
    const child = spawnCdp(['start'], { CDP_DATA_DIR: 'memory://', CDP_PORT: '0' });
    const done = collect(child);
    try {
      const [, file, url] = await waitForOutput(
        child,
        // Start names the demo keys' file, its URL, the dashboard and the API reference.
        /demo API keys \(shown once\) in (\S+)\nlistening on (http:\/\/127\.0\.0\.1:\d+)\ndashboard: +\2\/dashboard\/\nAPI reference: +\2\/api\/docs\/reference\n/,
      );
      const demo = JSON.parse(await readFile(file!, 'utf8')) as {
        keys: { role: string; token: string }[];
      };
      const env = { CDP_API_KEY: demo.keys.find((k) => k.role === 'admin')!.token };
      const nobody = await runCdp(['dlq', 'list', '--platform', url!]);
      expect(nobody.code).toBe(1);
      expect(nobody.stderr).toContain('UNAUTHENTICATED');
      const list = await runCdp(['dlq', 'list', '--platform', url!], env);
      expect(list.stdout.trim()).toBe('no dead letters');
      const replay = await runCdp(['dlq', 'replay', 'nope', '--platform', url!], env);
      expect(replay.code).toBe(1);
      expect(replay.stderr).toContain('cdp dlq list');
      const redeliver = await runCdp(['dlq', 'redeliver', 'nope', '--platform', url!], env);
      expect(redeliver.code).toBe(1);
      expect(redeliver.stderr).toContain('MESSAGE_NOT_FOUND');
    } finally {
      child.kill('SIGTERM');
    }
    await done;
    const down = await runCdp(['dlq', 'list', '--platform', 'http://127.0.0.1:1']);
    expect(down.code).toBe(1);
    expect(down.stderr).toContain('cdp start');
  });
});

describeServer('cdp dlq (NATS JetStream)', 'CDP_NATS_URL', (natsUrl) => {
  it('lists a dead letter from the broker and replays it to its group', async () => {
    const prefix = 'cdp_clitest';
    const broker = await openBroker({ natsUrl, prefix, logger: silentLogger() });
    const id = `poison-${randomBytes(4).toString('hex')}`;
    const seen: string[] = [];
    const sub = await broker.subscribe(
      { group: 'cli', topics: ['cli.poison'], maxDeliveries: 1 },
      async (d) => {
        seen.push(d.id);
        return deadLetter('refused by the test');
      },
    );
    try {
      await broker.publish({ topic: 'cli.poison', id, body: JSON.stringify({ id }) });
      const mine = await eventually(async () => {
        const all = await broker.listDeadLetters({ group: 'cli', limit: 1000 });
        return all.find((d) => d.body.includes(id));
      }, 'the dead letter');
      const env = { CDP_NATS_URL: natsUrl };
      const list = await runCdp(
        ['dlq', 'list', '--prefix', prefix, '--json', '--limit', '1000'],
        env,
      );
      expect(list.code).toBe(0);
      const listed = JSON.parse(list.stdout) as { id: string; error: string }[];
      expect(listed.find((d) => d.id === mine.id)?.error).toContain('refused by the test');
      const before = seen.length;
      const replay = await runCdp(['dlq', 'replay', mine.id, '--prefix', prefix], env);
      expect(replay.stdout).toContain(`replayed ${mine.id}`);
      await eventually(
        async () => (seen.length > before ? true : undefined),
        'the replayed delivery',
      );
      const missing = await runCdp(['dlq', 'replay', 'no-such-id', '--prefix', prefix], env);
      expect(missing.code).toBe(1);
    } finally {
      await sub.close();
      await broker.close();
    }
  });
});
