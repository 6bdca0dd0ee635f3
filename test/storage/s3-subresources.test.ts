/**
 * Sub-resources and the operations default client configurations use (issue 18, points 1 and
 * 2): every request is classified by method and sub-resource; what the server does not
 * implement answers 501 and changes nothing.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AbortMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  DeleteObjectTaggingCommand,
  GetBucketAclCommand,
  GetBucketLocationCommand,
  GetBucketVersioningCommand,
  GetObjectAclCommand,
  GetObjectCommand,
  GetObjectTaggingCommand,
  ListMultipartUploadsCommand,
  ListObjectsCommand,
  ListPartsCommand,
  PutBucketAclCommand,
  PutObjectAclCommand,
  PutObjectCommand,
  PutObjectTaggingCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/index.js';
import { StorageServer, staticKeys } from '../../src/storage/index.js';
import { s3Request, s3Requester } from './fixtures/s3-request.js';

const creds = { accessKeyId: 'AKSUB', secretAccessKey: 'sub-secret' };
let dir: string;
let server: StorageServer;
let client: S3Client;

async function start() {
  server = await StorageServer.start({
    dir,
    keys: staticKeys([creds]),
    fsync: false,
    minPartBytes: 5,
  });
  client?.destroy();
  client = new S3Client({
    region: 'us-east-1',
    endpoint: server.url,
    forcePathStyle: true,
    credentials: creds,
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cdp-s3sub-'));
  await start();
  await client.send(new CreateBucketCommand({ Bucket: 'sub' }));
});

afterAll(async () => {
  client.destroy();
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

const req = s3Requester(() => server.url, creds);

async function body(key: string): Promise<string> {
  const r = await client.send(new GetObjectCommand({ Bucket: 'sub', Key: key }));
  return r.Body!.transformToString();
}

const UNIMPLEMENTED = [
  'accelerate',
  'analytics',
  'attributes',
  'cors',
  'encryption',
  'intelligent-tiering',
  'inventory',
  'legal-hold',
  'lifecycle',
  'logging',
  'metrics',
  'notification',
  'object-lock',
  'ownershipControls',
  'policy',
  'policyStatus',
  'publicAccessBlock',
  'replication',
  'requestPayment',
  'restore',
  'retention',
  'select',
  'torrent',
  'versions',
  'website',
];

describe('sub-resources', () => {
  it('answers 501 to each sub-resource it does not implement, on the bucket and the object, and changes nothing', async () => {
    await client.send(new PutObjectCommand({ Bucket: 'sub', Key: 'keep', Body: 'precious' }));
    const seen: string[] = [];
    for (const sub of UNIMPLEMENTED) {
      for (const method of ['GET', 'PUT', 'DELETE', 'POST']) {
        for (const path of ['/sub', '/sub/keep']) {
          const r = await req(method, path, [[sub, '']], {
            body: method === 'PUT' || method === 'POST' ? '<X>replaced</X>' : undefined,
          });
          if (r.status !== 501) seen.push(`${method} ${path}?${sub} -> ${r.status}`);
          else expect(r.text).toContain('<Code>NotImplemented</Code>');
        }
      }
    }
    // Sub-resources the server implements on one resource but not the other.
    for (const [method, path, sub] of [
      ['PUT', '/sub', 'tagging'],
      ['DELETE', '/sub', 'tagging'],
      ['GET', '/sub', 'tagging'],
      ['PUT', '/sub', 'versioning'],
      ['PUT', '/sub', 'location'],
      ['DELETE', '/sub', 'acl'],
      ['DELETE', '/sub/keep', 'acl'],
      ['GET', '/sub/keep', 'versioning'],
      ['PUT', '/sub/keep', 'uploads'],
      ['DELETE', '/sub', 'delete'],
      ['PUT', '/sub/keep', 'unknownParameter'],
      ['DELETE', '/sub/keep', 'unknownParameter'],
    ] as const) {
      const r = await req(method, path, [[sub, '']], { body: method === 'PUT' ? 'x' : undefined });
      if (r.status !== 501) seen.push(`${method} ${path}?${sub} -> ${r.status}`);
    }
    expect(seen).toEqual([]);
    expect(await body('keep')).toBe('precious');
    expect((await req('GET', '/sub', [['list-type', '2']])).text).toContain('<Key>keep</Key>');
  });

  it('reads a fixed private ACL; accepts the private ACL as a no-op and refuses any other with 501', async () => {
    await client.send(new PutObjectCommand({ Bucket: 'sub', Key: 'acl', Body: 'acl-body' }));
    const acl = await client.send(new GetObjectAclCommand({ Bucket: 'sub', Key: 'acl' }));
    expect(acl.Owner?.ID).toBe('cdp');
    expect(acl.Grants).toEqual([
      {
        Grantee: { ID: 'cdp', DisplayName: 'cdp', Type: 'CanonicalUser' },
        Permission: 'FULL_CONTROL',
      },
    ]);
    const bacl = await client.send(new GetBucketAclCommand({ Bucket: 'sub' }));
    expect(bacl.Grants?.[0]?.Permission).toBe('FULL_CONTROL');
    await client.send(new PutObjectAclCommand({ Bucket: 'sub', Key: 'acl', ACL: 'private' }));
    await client.send(new PutBucketAclCommand({ Bucket: 'sub', ACL: 'private' }));
    await expect(
      client.send(new PutObjectAclCommand({ Bucket: 'sub', Key: 'acl', ACL: 'public-read' })),
    ).rejects.toMatchObject({ name: 'NotImplemented' });
    await expect(
      client.send(
        new PutObjectAclCommand({
          Bucket: 'sub',
          Key: 'acl',
          AccessControlPolicy: {
            Owner: { ID: 'cdp' },
            Grants: [
              {
                Grantee: { Type: 'Group', URI: 'http://acs.amazonaws.com/groups/global/AllUsers' },
                Permission: 'READ',
              },
            ],
          },
        }),
      ),
    ).rejects.toMatchObject({ name: 'NotImplemented' });
    expect(await body('acl')).toBe('acl-body');
    await expect(
      client.send(new GetObjectAclCommand({ Bucket: 'sub', Key: 'absent' })),
    ).rejects.toMatchObject({ name: 'NoSuchKey' });
  });

  it('keeps object tags with the metadata: put, get, delete, on PutObject and copies, across a restart', async () => {
    await client.send(
      new PutObjectCommand({
        Bucket: 'sub',
        Key: 'tagged',
        Body: 'tag-body',
        Tagging: 'a=1&b=two%20words',
      }),
    );
    let t = await client.send(new GetObjectTaggingCommand({ Bucket: 'sub', Key: 'tagged' }));
    expect(t.TagSet).toEqual([
      { Key: 'a', Value: '1' },
      { Key: 'b', Value: 'two words' },
    ]);
    await client.send(
      new PutObjectTaggingCommand({
        Bucket: 'sub',
        Key: 'tagged',
        Tagging: {
          TagSet: [
            { Key: 'k', Value: '<v&>' },
            { Key: '__proto__', Value: 'x' },
          ],
        },
      }),
    );
    const before = await client.send(new GetObjectCommand({ Bucket: 'sub', Key: 'tagged' }));
    expect(await before.Body!.transformToString()).toBe('tag-body');
    await client.send(
      new CopyObjectCommand({ Bucket: 'sub', Key: 'tagged-copy', CopySource: 'sub/tagged' }),
    );
    await server.close();
    await start();
    t = await client.send(new GetObjectTaggingCommand({ Bucket: 'sub', Key: 'tagged' }));
    expect(t.TagSet).toEqual([
      { Key: 'k', Value: '<v&>' },
      { Key: '__proto__', Value: 'x' },
    ]);
    t = await client.send(new GetObjectTaggingCommand({ Bucket: 'sub', Key: 'tagged-copy' }));
    expect(t.TagSet?.length).toBe(2);
    await client.send(new DeleteObjectTaggingCommand({ Bucket: 'sub', Key: 'tagged' }));
    t = await client.send(new GetObjectTaggingCommand({ Bucket: 'sub', Key: 'tagged' }));
    expect(t.TagSet).toEqual([]);
    expect(await body('tagged')).toBe('tag-body');
    await expect(
      client.send(
        new PutObjectTaggingCommand({
          Bucket: 'sub',
          Key: 'tagged',
          Tagging: { TagSet: Array.from({ length: 11 }, (_, i) => ({ Key: `k${i}`, Value: 'v' })) },
        }),
      ),
    ).rejects.toMatchObject({ name: 'InvalidTag' });
    await expect(
      client.send(
        new PutObjectTaggingCommand({ Bucket: 'sub', Key: 'absent', Tagging: { TagSet: [] } }),
      ),
    ).rejects.toMatchObject({ name: 'NoSuchKey' });
  });

  it('GetBucketVersioning (unversioned) and GetBucketLocation', async () => {
    const v = await client.send(new GetBucketVersioningCommand({ Bucket: 'sub' }));
    expect(v.Status).toBeUndefined();
    const l = await client.send(new GetBucketLocationCommand({ Bucket: 'sub' }));
    expect(l.LocationConstraint ?? '').toBe('');
  });
});

describe('operations of default client configurations', () => {
  it('ListObjects v1: prefix, delimiter, marker, max-keys, IsTruncated and NextMarker, encoding-type=url', async () => {
    await client.send(new CreateBucketCommand({ Bucket: 'list-v1' }));
    const keys = ['a/1', 'a/2', 'b', 'c d', 'e/f/g', 'z'];
    for (const k of keys)
      await client.send(new PutObjectCommand({ Bucket: 'list-v1', Key: k, Body: k }));
    const all: string[] = [];
    let marker: string | undefined;
    for (;;) {
      const r = await client.send(
        new ListObjectsCommand({
          Bucket: 'list-v1',
          MaxKeys: 2,
          ...(marker ? { Marker: marker } : {}),
        }),
      );
      all.push(...(r.Contents ?? []).map((o) => o.Key!));
      if (!r.IsTruncated) break;
      marker = r.NextMarker;
      expect(marker).toBe(all.at(-1));
    }
    expect(all).toEqual(keys);
    const d = await client.send(
      new ListObjectsCommand({ Bucket: 'list-v1', Delimiter: '/', MaxKeys: 2 }),
    );
    expect(d.CommonPrefixes?.map((p) => p.Prefix)).toEqual(['a/']);
    expect(d.Contents?.map((o) => o.Key)).toEqual(['b']);
    expect(d.IsTruncated).toBe(true);
    const d2 = await client.send(
      new ListObjectsCommand({ Bucket: 'list-v1', Delimiter: '/', Marker: d.NextMarker! }),
    );
    expect(d2.Contents?.map((o) => o.Key)).toEqual(['c d', 'z']);
    expect(d2.CommonPrefixes?.map((p) => p.Prefix)).toEqual(['e/']);
    const p = await client.send(new ListObjectsCommand({ Bucket: 'list-v1', Prefix: 'e/' }));
    expect(p.Contents?.map((o) => o.Key)).toEqual(['e/f/g']);
    const raw = await req('GET', '/list-v1', [
      ['encoding-type', 'url'],
      ['prefix', 'c '],
    ]);
    expect(raw.text).toContain('<Key>c%20d</Key>');
    expect(raw.text).toContain('<EncodingType>url</EncodingType>');
  });

  it('decodes XML entities in CompleteMultipartUpload as Go writes them (&#34;), and refuses a DOCTYPE', async () => {
    const up = await client.send(new CreateMultipartUploadCommand({ Bucket: 'sub', Key: 'go' }));
    const p1 = await client.send(
      new UploadPartCommand({
        Bucket: 'sub',
        Key: 'go',
        UploadId: up.UploadId!,
        PartNumber: 1,
        Body: 'hello ',
      }),
    );
    const p2 = await client.send(
      new UploadPartCommand({
        Bucket: 'sub',
        Key: 'go',
        UploadId: up.UploadId!,
        PartNumber: 2,
        Body: 'world',
      }),
    );
    const etag = (e: string | undefined) => e!.replaceAll('"', '&#34;');
    const bomb = `<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]><CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&b;</ETag></Part></CompleteMultipartUpload>`;
    const refused = await req('POST', '/sub/go', [['uploadId', up.UploadId!]], { body: bomb });
    expect(refused.status).toBe(400);
    expect(refused.text).toContain('MalformedXML');
    const xml = `<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Part><ETag>${etag(p1.ETag)}</ETag><PartNumber>1</PartNumber></Part><Part><ETag>${etag(p2.ETag)}</ETag><PartNumber>2</PartNumber></Part></CompleteMultipartUpload>`;
    const done = await req('POST', '/sub/go', [['uploadId', up.UploadId!]], { body: xml });
    expect(done.status).toBe(200);
    expect(await body('go')).toBe('hello world');
  });

  it('refuses XML bodies nested past the stack, and references to control characters (which the parser would drop, naming another key), with 400', async () => {
    await client.send(new PutObjectCommand({ Bucket: 'sub', Key: 'guarded', Body: 'guarded' }));
    const deep = `<Delete>${'<a>'.repeat(200_000)}${'</a>'.repeat(200_000)}</Delete>`;
    const d = await req('POST', '/sub', [['delete', '']], { body: deep });
    expect([d.status, d.text]).toEqual([400, expect.stringContaining('MalformedXML')]);
    const t = await req('PUT', '/sub/guarded', [['tagging', '']], {
      body: '<Tagging><TagSet><Tag><Key>a&#0;</Key><Value>b</Value></Tag></TagSet></Tagging>',
    });
    expect([t.status, t.text]).toEqual([400, expect.stringContaining('MalformedXML')]);
    const k = await req('POST', '/sub', [['delete', '']], {
      body: '<Delete><Object><Key>guarded</Key></Object><Object><Key>a&#1;</Key></Object></Delete>',
    });
    expect([k.status, k.text]).toEqual([400, expect.stringContaining('MalformedXML')]);
    expect(await body('guarded')).toBe('guarded');
    const tags = await req('GET', '/sub/guarded', [['tagging', '']]);
    expect(XMLValidator.validate(tags.text)).toBe(true);
  });

  it('DeleteObjects: per-key results, Quiet, per-key errors, a Content-MD5 that does not match deletes nothing', async () => {
    for (const k of ['d1', 'd2', 'd3'])
      await client.send(new PutObjectCommand({ Bucket: 'sub', Key: k, Body: k }));
    const r = await client.send(
      new DeleteObjectsCommand({
        Bucket: 'sub',
        Delete: { Objects: [{ Key: 'd1' }, { Key: 'absent' }, { Key: 'x'.repeat(1025) }] },
      }),
    );
    expect(r.Deleted?.map((d) => d.Key)).toEqual(['d1', 'absent']);
    expect(r.Errors?.map((e) => e.Code)).toEqual(['KeyTooLongError']);
    const q = await client.send(
      new DeleteObjectsCommand({
        Bucket: 'sub',
        Delete: { Quiet: true, Objects: [{ Key: 'd2' }] },
      }),
    );
    expect(q.Deleted ?? []).toEqual([]);
    const bad = await req('POST', '/sub', [['delete', '']], {
      body: '<Delete><Object><Key>d3</Key></Object></Delete>',
      headers: { 'content-md5': '1B2M2Y8AsgTpgAmY7PhCfg==' },
    });
    expect(bad.status).toBe(400);
    expect(bad.text).toContain('BadDigest');
    expect(await body('d3')).toBe('d3');
  });

  it('ListMultipartUploads, ListParts and AbortMultipartUpload find and clean unfinished uploads', async () => {
    await client.send(new CreateBucketCommand({ Bucket: 'mpu' }));
    const a = await client.send(new CreateMultipartUploadCommand({ Bucket: 'mpu', Key: 'dir/a' }));
    const b = await client.send(new CreateMultipartUploadCommand({ Bucket: 'mpu', Key: 'b' }));
    await client.send(
      new UploadPartCommand({
        Bucket: 'mpu',
        Key: 'b',
        UploadId: b.UploadId!,
        PartNumber: 3,
        Body: 'xyz',
      }),
    );
    const l = await client.send(new ListMultipartUploadsCommand({ Bucket: 'mpu' }));
    expect(l.Uploads?.map((u) => [u.Key, u.UploadId])).toEqual([
      ['b', b.UploadId],
      ['dir/a', a.UploadId],
    ]);
    const d = await client.send(new ListMultipartUploadsCommand({ Bucket: 'mpu', Delimiter: '/' }));
    expect(d.CommonPrefixes?.map((p) => p.Prefix)).toEqual(['dir/']);
    const parts = await client.send(
      new ListPartsCommand({ Bucket: 'mpu', Key: 'b', UploadId: b.UploadId! }),
    );
    expect(parts.Parts?.map((p) => [p.PartNumber, p.Size])).toEqual([[3, 3]]);
    for (const u of l.Uploads ?? [])
      await client.send(
        new AbortMultipartUploadCommand({ Bucket: 'mpu', Key: u.Key!, UploadId: u.UploadId! }),
      );
    expect(
      (await client.send(new ListMultipartUploadsCommand({ Bucket: 'mpu' }))).Uploads ?? [],
    ).toEqual([]);
  });

  it('sweeps uploads older than the set age, by the clock', async () => {
    const clock = new ManualClock(Date.now());
    const d = await mkdtemp(join(tmpdir(), 'cdp-sweep-'));
    const s = await StorageServer.start({
      dir: d,
      keys: staticKeys([creds]),
      fsync: false,
      clock,
      abandonedUploadMs: 7 * 86_400_000,
      sweepEveryMs: 0,
    });
    const at = (m: string, p: string, q: [string, string][] = []) =>
      s3Request(s.url, creds, m, p, q, { date: clock.now() });
    expect((await at('PUT', '/swept')).status).toBe(200);
    const old = await at('POST', '/swept/old', [['uploads', '']]);
    await clock.advance(6 * 86_400_000);
    const young = await at('POST', '/swept/young', [['uploads', '']]);
    await clock.advance(86_400_000 + 1);
    expect(await s.sweepUploads()).toBe(1);
    const list = await at('GET', '/swept', [['uploads', '']]);
    const ids = (x: string) => new XMLParser().parse(x).InitiateMultipartUploadResult.UploadId;
    expect(list.text).not.toContain(ids(old.text));
    expect(list.text).toContain(ids(young.text));
    await s.close();
    await rm(d, { recursive: true, force: true });
  });

  it('keys with control characters: tab, LF and CR round-trip through well-formed listings; other controls are refused at PUT', async () => {
    await client.send(new CreateBucketCommand({ Bucket: 'ctl' }));
    const ok = ['tab\there', 'lf\nhere', 'cr\rhere', 'crlf\r\n'];
    for (const k of ok)
      await client.send(new PutObjectCommand({ Bucket: 'ctl', Key: k, Body: 'x' }));
    for (const k of ['bell\u0007', 'esc\u001b[31m', 'vt\u000b', 'ff\u000c', 'us\u001f']) {
      await expect(
        client.send(new PutObjectCommand({ Bucket: 'ctl', Key: k, Body: 'x' })),
      ).rejects.toMatchObject({ name: 'InvalidArgument', $metadata: { httpStatusCode: 400 } });
    }
    for (const q of [[['list-type', '2']], []] as [string, string][][]) {
      const r = await req('GET', '/ctl', q);
      expect(XMLValidator.validate(r.text)).toBe(true);
      const parsed = new XMLParser({
        processEntities: true,
        htmlEntities: true,
        isArray: (n) => n === 'Contents',
      }).parse(r.text);
      expect(parsed.ListBucketResult.Contents.map((c: { Key: string }) => c.Key).sort()).toEqual(
        [...ok].sort(),
      );
    }
    const v1 = await client.send(new ListObjectsCommand({ Bucket: 'ctl' }));
    expect(v1.Contents?.map((c) => c.Key).sort()).toEqual([...ok].sort());
  });
});
