/** Operations on a bucket: create, head, delete, list its objects. */
import type { FsBlobStore } from '../blob/fs-blob-store.js';
import { StorageError } from '../storage-error.js';
import { notFoundBucket } from './buckets.js';
import { type Authed, drain, sendXml } from './context.js';
import { isoDate, XMLNS, xmlEscape } from './xml.js';

export async function createBucket(c: Authed) {
  await drain(c.req);
  await c.env.buckets.create(c.b);
  c.res.writeHead(200, { Location: `/${c.b}`, 'Content-Length': 0 }).end();
}

export async function headBucket(c: Authed) {
  if (!(await c.env.buckets.exists(c.b))) throw notFoundBucket(c.b);
  c.res.writeHead(200, { 'x-amz-bucket-region': c.env.region }).end();
}

export async function deleteBucket(c: Authed) {
  const s = await c.env.buckets.store(c.b);
  const page = await s.list({ maxKeys: 1 });
  if (page.objects.length)
    throw new StorageError(
      'BucketNotEmpty',
      409,
      'the bucket is not empty; delete its objects first',
    );
  await c.env.buckets.remove(c.b);
  c.res.writeHead(204).end();
}

export async function listObjectsV2(c: Authed) {
  const p = c.params;
  const s = await c.env.buckets.store(c.b);
  const maxKeys = p.has('max-keys') ? Number(p.get('max-keys')) : 1000;
  if (!Number.isInteger(maxKeys) || maxKeys < 0)
    throw new StorageError('InvalidArgument', 400, 'max-keys must be a non-negative integer');
  const urlEnc = p.get('encoding-type') === 'url';
  const enc = (v: string) => xmlEscape(urlEnc ? encodeURIComponent(v).replaceAll('%2F', '/') : v);
  const opts: Parameters<FsBlobStore['list']>[0] = { maxKeys: Math.max(1, maxKeys) };
  for (const [q, k] of [
    ['prefix', 'prefix'],
    ['delimiter', 'delimiter'],
    ['start-after', 'startAfter'],
    ['continuation-token', 'continuationToken'],
  ] as const) {
    const v = p.get(q);
    if (v) opts[k] = v;
  }
  const page =
    maxKeys === 0
      ? { objects: [], commonPrefixes: [], isTruncated: false, nextContinuationToken: undefined }
      : await s.list(opts);
  let x = `<ListBucketResult xmlns="${XMLNS}"><Name>${xmlEscape(c.b)}</Name><Prefix>${enc(p.get('prefix') ?? '')}</Prefix>`;
  x += `<KeyCount>${page.objects.length + page.commonPrefixes.length}</KeyCount><MaxKeys>${maxKeys}</MaxKeys>`;
  if (p.get('delimiter')) x += `<Delimiter>${enc(p.get('delimiter')!)}</Delimiter>`;
  if (urlEnc) x += '<EncodingType>url</EncodingType>';
  x += `<IsTruncated>${page.isTruncated}</IsTruncated>`;
  if (p.get('continuation-token'))
    x += `<ContinuationToken>${xmlEscape(p.get('continuation-token')!)}</ContinuationToken>`;
  if (page.nextContinuationToken)
    x += `<NextContinuationToken>${page.nextContinuationToken}</NextContinuationToken>`;
  if (p.get('start-after')) x += `<StartAfter>${enc(p.get('start-after')!)}</StartAfter>`;
  for (const o of page.objects) {
    x += `<Contents><Key>${enc(o.key)}</Key><LastModified>${isoDate(o.lastModified)}</LastModified><ETag>"${o.etag}"</ETag><Size>${o.size}</Size><StorageClass>STANDARD</StorageClass></Contents>`;
  }
  for (const cp of page.commonPrefixes)
    x += `<CommonPrefixes><Prefix>${enc(cp)}</Prefix></CommonPrefixes>`;
  x += '</ListBucketResult>';
  sendXml(c, 200, x);
}
