/** Operations on an object: put, get, head, delete, copy. */
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type ObjectInfo, parseRangeHeader } from '../blob/blob-store.js';
import { StorageError } from '../storage-error.js';
import {
  type Authed,
  contentTypeOf,
  drain,
  objectHeaders,
  receive,
  sendXml,
  userMeta,
} from './context.js';
import { isoDate, XMLNS } from './xml.js';

/** `response-*` query parameters of a GET or HEAD override these answer headers. */
const RESPONSE_OVERRIDES = [
  ['response-content-type', 'Content-Type'],
  ['response-content-disposition', 'Content-Disposition'],
  ['response-cache-control', 'Cache-Control'],
  ['response-content-language', 'Content-Language'],
  ['response-expires', 'Expires'],
  ['response-content-encoding', 'Content-Encoding'],
] as const;

function responseOverrides(c: Authed, h: Record<string, string>) {
  for (const [p, hn] of RESPONSE_OVERRIDES) {
    const v = c.params.get(p);
    if (v !== undefined) h[hn] = v;
  }
}

function notModified(c: Authed, etag: string): boolean {
  const inm = c.req.headers['if-none-match'];
  return !!inm?.split(',').some((t) => t.trim() === `"${etag}"` || t.trim() === '*');
}

export async function putObject(c: Authed) {
  const s = await c.env.buckets.store(c.b);
  const info = await receive(c, (body, o) =>
    s.put(c.k, body, { ...o, contentType: contentTypeOf(c.req), metadata: userMeta(c.req) }),
  );
  c.res.writeHead(200, { ETag: `"${info.etag}"`, 'Content-Length': 0 }).end();
}

export async function headObject(c: Authed) {
  const s = await c.env.buckets.store(c.b);
  const info = await s.head(c.k);
  if (!info) throw new StorageError('NoSuchKey', 404, 'no such key');
  const h = objectHeaders(info);
  h['Content-Length'] = String(info.size);
  responseOverrides(c, h);
  if (notModified(c, info.etag)) {
    c.res.writeHead(304, h).end();
    return;
  }
  c.res.writeHead(200, h).end();
}

export async function getObject(c: Authed) {
  const s = await c.env.buckets.store(c.b);
  const range = parseRangeHeader(c.req.headers.range);
  if (range === 'invalid') {
    const info = await s.head(c.k);
    if (!info) throw new StorageError('NoSuchKey', 404, 'no such key');
    const e = new StorageError(
      'InvalidRange',
      416,
      'the Range header is not a valid single byte range',
    );
    (e as StorageError & { size: number }).size = info.size;
    throw e;
  }
  const got = await s.get(c.k, range ? { range } : {});
  const h = objectHeaders(got.info);
  responseOverrides(c, h);
  if (notModified(c, got.info.etag)) {
    got.body.destroy();
    c.res.writeHead(304, h).end();
    return;
  }
  const len = got.range ? got.range.end - got.range.start + 1 : got.info.size;
  h['Content-Length'] = String(len);
  if (got.range) h['Content-Range'] = `bytes ${got.range.start}-${got.range.end}/${got.info.size}`;
  c.res.writeHead(got.range ? 206 : 200, h);
  await pipeline(
    got.body,
    new Transform({
      transform(chunk: Buffer, _e, cb) {
        c.bytes += chunk.length;
        cb(null, chunk);
      },
    }),
    c.res,
  );
  c.env.metrics?.bytes.inc({ direction: 'out' }, c.bytes);
}

export async function deleteObject(c: Authed) {
  const s = await c.env.buckets.store(c.b);
  await s.delete(c.k);
  c.res.writeHead(204).end();
}

export async function copyObject(c: Authed) {
  const src = c.copySource!;
  const from = await c.env.buckets.store(src.bucket);
  const to = await c.env.buckets.store(c.b);
  const replace =
    String(c.req.headers['x-amz-metadata-directive'] ?? 'COPY').toUpperCase() === 'REPLACE';
  let info: ObjectInfo;
  if (src.bucket === c.b) {
    info = await to.copy(
      src.key,
      c.k,
      replace ? { metadata: userMeta(c.req), contentType: contentTypeOf(c.req) } : {},
    );
  } else {
    const got = await from.get(src.key);
    info = await to.put(c.k, got.body, {
      contentType: replace ? contentTypeOf(c.req) : got.info.contentType,
      metadata: replace ? userMeta(c.req) : got.info.metadata,
      etag: got.info.etag,
    });
  }
  await drain(c.req);
  sendXml(
    c,
    200,
    `<CopyObjectResult xmlns="${XMLNS}"><LastModified>${isoDate(info.lastModified)}</LastModified><ETag>"${info.etag}"</ETag></CopyObjectResult>`,
  );
}
