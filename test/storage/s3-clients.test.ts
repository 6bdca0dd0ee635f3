/**
 * Third-party S3 clients in their default configurations against the storage server: rclone
 * (provider Other), s3cmd and boto3 (issue 18, point 2), through put, get, list, sync, check,
 * multipart, copy, move, delete and presign. The clients are Debian packages (`.ci/run`
 * installs them); under CI a missing one fails the run, elsewhere the suite says `skipped:`.
 */
import { execFile, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StorageServer, staticKeys } from '../../src/storage/index.js';

const run = promisify(execFile);
const creds = { accessKeyId: 'AKCLIENTS', secretAccessKey: 'clients-secret-key' };

function has(cmd: string, args: string[]): boolean {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** The first Python with boto3: the one on PATH, or Debian's (where python3-boto3 installs). */
const python = ['python3', '/usr/bin/python3'].find((p) => has(p, ['-c', 'import boto3']));

const missing = [
  has('rclone', ['version']) ? null : 'rclone',
  has('s3cmd', ['--version']) ? null : 's3cmd',
  python ? null : 'python3-boto3',
].filter((m): m is string => m !== null);

if (missing.length && process.env.CI !== 'true') {
  console.log(`skipped: S3 client tests need the Debian packages ${missing.join(', ')}`);
}

let dir: string;
let work: string;
let server: StorageServer;

/** The environment of a client: no ambient AWS settings; rclone rejects AWS_CA_BUNDLE. */
function env(extra: Record<string, string>): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: work, LANG: 'C.UTF-8' };
  return { ...e, ...extra };
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe.skipIf(missing.length > 0 && process.env.CI !== 'true')('third-party S3 clients', () => {
  beforeAll(async () => {
    if (missing.length)
      throw new Error(`CI needs the S3 clients ${missing.join(', ')}: see .ci/run`);
    dir = await mkdtemp(join(tmpdir(), 'cdp-clients-'));
    work = await mkdtemp(join(tmpdir(), 'cdp-clients-work-'));
    server = await StorageServer.start({ dir, keys: staticKeys([creds]), fsync: false });
  });

  afterAll(async () => {
    await server?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('rclone (provider Other): mkdir, put, get, ls, sync, check, multipart, copy, move, delete, link', async () => {
    const rc = (...args: string[]) =>
      run('rclone', ['--retries', '1', '--low-level-retries', '1', ...args], {
        env: env({
          RCLONE_CONFIG: join(work, 'rclone.conf'),
          RCLONE_CONFIG_CDP_TYPE: 's3',
          RCLONE_CONFIG_CDP_PROVIDER: 'Other',
          RCLONE_CONFIG_CDP_ACCESS_KEY_ID: creds.accessKeyId,
          RCLONE_CONFIG_CDP_SECRET_ACCESS_KEY: creds.secretAccessKey,
          RCLONE_CONFIG_CDP_ENDPOINT: server.url,
        }),
        maxBuffer: 64 * 1024 * 1024,
      });
    const local = join(work, 'rc-src');
    await mkdir(join(local, 'sub'), { recursive: true });
    await writeFile(join(local, 'one.txt'), 'one');
    await writeFile(join(local, 'sub', 'two.txt'), 'two two');
    const big = randomBytes(12 * 1024 * 1024 + 7);
    await writeFile(join(work, 'rc-big.bin'), big);

    await rc('mkdir', 'cdp:rclone');
    await rc('copyto', join(local, 'one.txt'), 'cdp:rclone/put/one.txt');
    expect((await rc('cat', 'cdp:rclone/put/one.txt')).stdout).toBe('one');
    await rc('sync', local, 'cdp:rclone/site');
    await rc('check', local, 'cdp:rclone/site');
    const ls = (await rc('ls', 'cdp:rclone')).stdout;
    expect(ls).toContain('put/one.txt');
    expect(ls).toContain('site/sub/two.txt');
    // Multipart: 5 MiB parts; rclone (Go) writes the ETags in CompleteMultipartUpload as &#34;.
    await rc(
      'copyto',
      '--s3-upload-cutoff',
      '5M',
      '--s3-chunk-size',
      '5M',
      join(work, 'rc-big.bin'),
      'cdp:rclone/big.bin',
    );
    await rc('copyto', 'cdp:rclone/big.bin', join(work, 'rc-big-back.bin'));
    expect(sha(await readFile(join(work, 'rc-big-back.bin')))).toBe(sha(big));
    await rc('copyto', 'cdp:rclone/put/one.txt', 'cdp:rclone/copied.txt');
    await rc('moveto', 'cdp:rclone/copied.txt', 'cdp:rclone/moved.txt');
    const after = (await rc('lsf', '-R', 'cdp:rclone')).stdout.split('\n');
    expect(after).toContain('moved.txt');
    expect(after).not.toContain('copied.txt');
    const link = (await rc('link', '--expire', '5m', 'cdp:rclone/moved.txt')).stdout.trim();
    expect(await (await fetch(link)).text()).toBe('one');
    await rc('delete', 'cdp:rclone/site');
    await rc('deletefile', 'cdp:rclone/moved.txt');
    const left = (await rc('lsf', '-R', 'cdp:rclone')).stdout.split('\n').filter(Boolean);
    expect(left.filter((l) => !l.endsWith('/')).sort()).toEqual(['big.bin', 'put/one.txt']);
  });

  it('s3cmd: mb, put, get, ls, info, setacl, sync, multipart, cp, mv, del, signurl', async () => {
    const cfg = join(work, 's3cmd.cfg');
    const hostPort = new URL(server.url).host;
    await writeFile(
      cfg,
      `[default]\naccess_key = ${creds.accessKeyId}\nsecret_key = ${creds.secretAccessKey}\nhost_base = ${hostPort}\nhost_bucket = ${hostPort}\nuse_https = False\n`,
    );
    const sc = (...args: string[]) =>
      run('s3cmd', ['-c', cfg, '--no-progress', ...args], {
        env: env({}),
        maxBuffer: 64 * 1024 * 1024,
      });
    const local = join(work, 'sc-src');
    await mkdir(join(local, 'sub'), { recursive: true });
    await writeFile(join(local, 'one.txt'), 'one');
    await writeFile(join(local, 'sub', 'two.txt'), 'two two');
    const big = randomBytes(11 * 1024 * 1024);
    await writeFile(join(work, 'sc-big.bin'), big);

    await sc('mb', 's3://s3cmd');
    await sc('put', join(local, 'one.txt'), 's3://s3cmd/one.txt');
    await sc('get', '--force', 's3://s3cmd/one.txt', join(work, 'sc-one.txt'));
    expect(await readFile(join(work, 'sc-one.txt'), 'utf8')).toBe('one');
    expect((await sc('info', 's3://s3cmd/one.txt')).stdout).toMatch(/ACL:\s+cdp: FULL_CONTROL/);
    await sc('setacl', '--acl-private', 's3://s3cmd/one.txt');
    await sc('sync', `${local}/`, 's3://s3cmd/site/');
    const again = (await sc('sync', `${local}/`, 's3://s3cmd/site/')).stdout;
    expect(again).not.toContain('upload:');
    expect((await sc('ls', '-r', 's3://s3cmd')).stdout).toContain('s3://s3cmd/site/sub/two.txt');
    await sc('put', '--multipart-chunk-size-mb=5', join(work, 'sc-big.bin'), 's3://s3cmd/big.bin');
    await sc('get', '--force', 's3://s3cmd/big.bin', join(work, 'sc-big-back.bin'));
    expect(sha(await readFile(join(work, 'sc-big-back.bin')))).toBe(sha(big));
    await sc('cp', 's3://s3cmd/one.txt', 's3://s3cmd/copied.txt');
    await sc('mv', 's3://s3cmd/copied.txt', 's3://s3cmd/moved.txt');
    const url = (await sc('signurl', 's3://s3cmd/moved.txt', '+300')).stdout.trim();
    expect(await (await fetch(url)).text()).toBe('one');
    await sc('del', '--recursive', 's3://s3cmd/site/');
    await sc('del', 's3://s3cmd/moved.txt');
    const ls = (await sc('ls', '-r', 's3://s3cmd')).stdout;
    expect(ls).toContain('s3://s3cmd/big.bin');
    expect(ls).toContain('s3://s3cmd/one.txt');
    expect(ls).not.toContain('moved.txt');
    expect(ls).not.toContain('site/');
    expect((await sc('du', 's3://s3cmd')).stdout).toMatch(/\d+/);
  });

  it('boto3: objects, listings v1 and v2, multipart transfer, copy, ACL, tagging, versioning, location, uploads, delete_objects, presigned GET and PUT', async () => {
    const { stdout } = await run(
      python!,
      [join(import.meta.dirname, 'fixtures', 'boto3-run.py'), server.url, 'boto3', work],
      {
        env: env({
          AWS_ACCESS_KEY_ID: creds.accessKeyId,
          AWS_SECRET_ACCESS_KEY: creds.secretAccessKey,
          AWS_DEFAULT_REGION: 'us-east-1',
          AWS_CONFIG_FILE: '/dev/null',
          AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
        }),
        maxBuffer: 16 * 1024 * 1024,
      },
    );
    expect(JSON.parse(stdout)).toEqual({
      get: 'alpha',
      head_size: 5,
      list_v1: ['a.txt', 'dir/0', 'dir/1', 'dir/2'],
      list_v2: ['dir/0', 'dir/1', 'dir/2'],
      list_v1_paged: ['a.txt', 'dir/0', 'dir/1', 'dir/2'],
      multipart_etag_parts: '3',
      multipart_roundtrip: true,
      copy: 'alpha',
      acl: 'FULL_CONTROL',
      put_acl_private: 'ok',
      put_acl_public: 'NotImplemented',
      tags: [{ Key: 'k', Value: 'v' }],
      tags_after_delete: [],
      after_subresources: 'alpha',
      versioning: null,
      location: null,
      delete_bucket_cors: 'NotImplemented',
      bucket_after_cors: 'ok',
      uploads: [true],
      uploads_after_abort: 0,
      deleted: ['dir/0', 'dir/1', 'dir/2'],
      presigned: 'alpha',
      presigned_put_status: 200,
      presigned_put: 'presigned put',
    });
  });
});
