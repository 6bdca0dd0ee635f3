/**
 * Operations on an object: put, get, head, delete, copy, and its sub-resources ?acl (a fixed
 * private ACL) and ?tagging (kept with the object's metadata).
 */
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ObjectInfo } from '../blob/blob-store.js';
import { parseRangeHeader } from '../internal/ranges.js';
import { StorageError } from '../storage-error.js';
import { checkPrivateAcl, privateAcl } from './acl.js';
import {
  type Authed,
  checkNewKey,
  contentTypeOf,
  drain,
  objectHeaders,
  receive,
  sendXml,
  userMeta,
} from './context.js';
import { tagsFromHeader, tagsFromXml, tagsXml } from './tags.js';
import { isoDate, XMLNS } from './xml.js';
import { readXml } from './xml-body.js';

/** `response-*` query parameters of a GET or HEAD override these answer headers. */
const RESPONSE_OVERRIDES = [
  ['response-content-type', 'Content-Type'],
  ['response-content-disposition', 'Content-Disposition'],
  ['response-cache-control', 'Cache-Control'],
  ['response-content-language', 'Content-Language'],
  ['response-expires', 'Expires'],
  ['response-content-encoding', 'Content-Encoding'],
] as const;

/** What an HTTP header value may hold (RFC 9110 field-value; no CR, LF or NUL). */
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/** The overrides asked for, checked before any file is opened. */
function responseOverrides(c: Authed): Record<string, string> {
  const h: Record<string, string> = {};
  for (const [p, hn] of RESPONSE_OVERRIDES) {
    const v = c.params.get(p);
    if (v === undefined) continue;
    if (!HEADER_VALUE.test(v)) {
      throw new StorageError(
        'InvalidArgument',
        400,
        `${p} must be a valid header value: no control characters (CR, LF, NUL) and no characters beyond U+00FF (use RFC 8187 encoding, filename*=UTF-8''...)`,
      );
    }
    h[hn] = v;
  }
  return h;
}

function notModified(c: Authed, etag: string): boolean {
  const inm = c.req.headers['if-none-match'];
  return !!inm?.split(',').some((t) => t.trim() === `"${etag}"` || t.trim() === '*');
}

export async function putObject(c: Authed) {
  checkNewKey(c.k);
  const tags = tagsFromHeader(c.req.headers['x-amz-tagging']);
  const info = await c.env.buckets.writing(c.b, (s) =>
    receive(c, (body, o) =>
      s.put(c.k, body, {
        ...o,
        contentType: contentTypeOf(c.req),
        metadata: userMeta(c.req),
        ...(tags ? { tags } : {}),
      }),
    ),
  );
  c.res.writeHead(200, { ETag: `"${info.etag}"`, 'Content-Length': 0 }).end();
}

export async function headObject(c: Authed) {
  const overrides = responseOverrides(c);
  const s = await c.env.buckets.store(c.b);
  const info = await s.head(c.k);
  if (!info) throw new StorageError('NoSuchKey', 404, 'no such key');
  const h = { ...objectHeaders(info), 'Content-Length': String(info.size), ...overrides };
  c.res.writeHead(notModified(c, info.etag) ? 304 : 200, h).end();
}

export async function getObject(c: Authed) {
  const overrides = responseOverrides(c);
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
  try {
    const h = { ...objectHeaders(got.info), ...overrides };
    if (notModified(c, got.info.etag)) {
      got.body.destroy();
      c.res.writeHead(304, h).end();
      return;
    }
    const len = got.range ? got.range.end - got.range.start + 1 : got.info.size;
    h['Content-Length'] = String(len);
    if (got.range)
      h['Content-Range'] = `bytes ${got.range.start}-${got.range.end}/${got.info.size}`;
    c.res.writeHead(got.range ? 206 : 200, h);
  } catch (err) {
    got.body.destroy();
    throw err;
  }
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
  checkNewKey(c.k);
  const src = c.copySource!;
  const from = await c.env.buckets.store(src.bucket);
  const replace =
    String(c.req.headers['x-amz-metadata-directive'] ?? 'COPY').toUpperCase() === 'REPLACE';
  const tagDirective = String(c.req.headers['x-amz-tagging-directive'] ?? 'COPY').toUpperCase();
  const newTags =
    tagDirective === 'REPLACE' ? (tagsFromHeader(c.req.headers['x-amz-tagging']) ?? {}) : undefined;
  const info: ObjectInfo = await c.env.buckets.writing(c.b, async (to) => {
    if (src.bucket === c.b) {
      return to.copy(src.key, c.k, {
        ...(replace ? { metadata: userMeta(c.req), contentType: contentTypeOf(c.req) } : {}),
        ...(newTags ? { tags: newTags } : {}),
      });
    }
    const tags = newTags ?? (await from.tags(src.key));
    const got = await from.get(src.key);
    return to.put(c.k, got.body, {
      contentType: replace ? contentTypeOf(c.req) : got.info.contentType,
      metadata: replace ? userMeta(c.req) : got.info.metadata,
      etag: got.info.etag,
      tags,
    });
  });
  await drain(c.req);
  sendXml(
    c,
    200,
    `<CopyObjectResult xmlns="${XMLNS}"><LastModified>${isoDate(info.lastModified)}</LastModified><ETag>"${info.etag}"</ETag></CopyObjectResult>`,
  );
}

async function mustExist(c: Authed) {
  const s = await c.env.buckets.store(c.b);
  if (!(await s.head(c.k))) throw new StorageError('NoSuchKey', 404, 'no such key');
  return s;
}

export async function getObjectAcl(c: Authed) {
  await mustExist(c);
  sendXml(c, 200, privateAcl());
}

export async function putObjectAcl(c: Authed) {
  await mustExist(c);
  await checkPrivateAcl(c);
  c.res.writeHead(200, { 'Content-Length': 0 }).end();
}

export async function getObjectTagging(c: Authed) {
  const s = await c.env.buckets.store(c.b);
  sendXml(c, 200, tagsXml(await s.tags(c.k)));
}

export async function putObjectTagging(c: Authed) {
  const { root, body } = await readXml(c.req, 64 * 1024);
  const tags = tagsFromXml(root, body);
  await c.env.buckets.writing(c.b, (s) => s.setTags(c.k, tags));
  c.res.writeHead(200, { 'Content-Length': 0 }).end();
}

export async function deleteObjectTagging(c: Authed) {
  await c.env.buckets.writing(c.b, (s) => s.setTags(c.k, {}));
  c.res.writeHead(204).end();
}
