/**
 * Multipart upload: create, upload a part, list parts, complete, abort, list the uploads of a
 * bucket, and the sweep of abandoned uploads. Parts and the upload's metadata live in the
 * server's uploads store under `<uploadId>/`; completion concatenates the parts into the
 * bucket's store in one atomic put, then drops them.
 *
 * A key's size cap (`AccessDecision.maxBytes`) holds for the whole object: a part is refused
 * once the parts' running total would pass it, and completion is refused when the listed
 * parts add up to more, before anything becomes visible.
 */
import { createHash } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { newId } from '../../core/index.js';
import type { ObjectInfo } from '../blob/blob-store.js';
import { StorageError } from '../storage-error.js';
import {
  type Authed,
  checkNewKey,
  contentTypeOf,
  drain,
  receive,
  type ServerEnv,
  sendXml,
  userMeta,
} from './context.js';
import { keyEncoder } from './list-handlers.js';
import { tagsFromHeader } from './tags.js';
import { isoDate, OWNER, XMLNS, xmlEscape } from './xml.js';
import { children, readXml, text } from './xml-body.js';

export interface UploadMeta {
  bucket: string;
  key: string;
  contentType: string;
  metadata: Record<string, string>;
  tags?: Record<string, string>;
}

const UPLOAD_ID = /^[0-9a-f]{32}$/;
const PARTS_XML_MAX = 1024 * 1024;

function partKey(uploadId: string, n: number): string {
  return `${uploadId}/part/${String(n).padStart(5, '0')}`;
}

const ownerXml = `<ID>${OWNER.id}</ID><DisplayName>${OWNER.displayName}</DisplayName>`;

async function readMeta(env: ServerEnv, uploadId: string): Promise<UploadMeta | null> {
  try {
    const got = await env.uploads.get(`${uploadId}/meta`);
    const chunks: Buffer[] = [];
    for await (const ch of got.body) chunks.push(ch as Buffer);
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as UploadMeta;
  } catch (err) {
    if (err instanceof StorageError && err.s3Code === 'NoSuchKey') return null;
    throw err;
  }
}

async function uploadMeta(c: Authed, uploadId: string): Promise<UploadMeta> {
  if (!UPLOAD_ID.test(uploadId))
    throw new StorageError('NoSuchUpload', 404, 'no such multipart upload');
  const meta = await readMeta(c.env, uploadId);
  if (!meta) {
    throw new StorageError(
      'NoSuchUpload',
      404,
      'no such multipart upload; it may have been completed or aborted',
    );
  }
  if (meta.bucket !== c.b || meta.key !== c.k)
    throw new StorageError('NoSuchUpload', 404, 'the upload belongs to another object');
  return meta;
}

/** The parts uploaded so far, by part number. */
async function partsOf(env: ServerEnv, uploadId: string): Promise<(ObjectInfo & { n: number })[]> {
  const out: (ObjectInfo & { n: number })[] = [];
  let token: string | undefined;
  do {
    const page = await env.uploads.list({
      prefix: `${uploadId}/part/`,
      ...(token ? { continuationToken: token } : {}),
    });
    for (const o of page.objects) {
      out.push({
        ...o,
        contentType: '',
        metadata: {},
        sha256: '',
        n: Number(o.key.slice(uploadId.length + 6)),
      });
    }
    token = page.nextContinuationToken;
  } while (token);
  return out;
}

async function dropUpload(env: ServerEnv, uploadId: string) {
  const page = await env.uploads.list({ prefix: `${uploadId}/` });
  for (const o of page.objects) await env.uploads.delete(o.key);
}

const tooLarge = (max: number, already: number) =>
  new StorageError(
    'EntityTooLarge',
    400,
    `this key allows at most ${max} bytes for the whole object; the parts so far hold ${already}`,
  );

export async function createMultipartUpload(c: Authed) {
  checkNewKey(c.k);
  await c.env.buckets.store(c.b);
  const tags = tagsFromHeader(c.req.headers['x-amz-tagging']);
  await drain(c.req);
  const uploadId = newId().replaceAll('-', '');
  const meta: UploadMeta = {
    bucket: c.b,
    key: c.k,
    contentType: contentTypeOf(c.req),
    metadata: userMeta(c.req),
    ...(tags ? { tags } : {}),
  };
  await c.env.uploads.put(`${uploadId}/meta`, JSON.stringify(meta));
  sendXml(
    c,
    200,
    `<InitiateMultipartUploadResult xmlns="${XMLNS}"><Bucket>${xmlEscape(c.b)}</Bucket><Key>${xmlEscape(c.k)}</Key><UploadId>${uploadId}</UploadId></InitiateMultipartUploadResult>`,
  );
}

export async function uploadPart(c: Authed) {
  const uploadId = c.params.get('uploadId')!;
  const n = Number(c.params.get('partNumber'));
  if (!Number.isInteger(n) || n < 1 || n > 10000)
    throw new StorageError('InvalidArgument', 400, 'partNumber must be 1..10000');
  await uploadMeta(c, uploadId);
  let cap = c.decision.maxBytes;
  if (cap !== undefined) {
    const others = (await partsOf(c.env, uploadId))
      .filter((p) => p.n !== n)
      .reduce((sum, p) => sum + p.size, 0);
    const declared = Number(
      c.req.headers['x-amz-decoded-content-length'] ?? c.req.headers['content-length'] ?? 0,
    );
    if (others + (Number.isFinite(declared) ? declared : 0) > cap) throw tooLarge(cap, others);
    cap -= others;
  }
  const info = await receive(c, (body, o) => c.env.uploads.put(partKey(uploadId, n), body, o), cap);
  c.res.writeHead(200, { ETag: `"${info.etag}"`, 'Content-Length': 0 }).end();
}

export async function abortMultipartUpload(c: Authed) {
  const uploadId = c.params.get('uploadId')!;
  await uploadMeta(c, uploadId);
  await dropUpload(c.env, uploadId);
  c.res.writeHead(204).end();
}

export async function listParts(c: Authed) {
  const uploadId = c.params.get('uploadId')!;
  await uploadMeta(c, uploadId);
  const marker = Number(c.params.get('part-number-marker') ?? 0);
  const max = Number(c.params.get('max-parts') ?? 1000);
  if (!Number.isInteger(marker) || marker < 0 || !Number.isInteger(max) || max < 0)
    throw new StorageError(
      'InvalidArgument',
      400,
      'part-number-marker and max-parts must be non-negative integers',
    );
  const all = (await partsOf(c.env, uploadId)).filter((p) => p.n > marker);
  const page = all.slice(0, Math.min(max, 1000));
  const truncated = page.length < all.length;
  let x = `<ListPartsResult xmlns="${XMLNS}"><Bucket>${xmlEscape(c.b)}</Bucket><Key>${xmlEscape(c.k)}</Key><UploadId>${uploadId}</UploadId>`;
  x += `<Initiator>${ownerXml}</Initiator><Owner>${ownerXml}</Owner><StorageClass>STANDARD</StorageClass>`;
  x += `<PartNumberMarker>${marker}</PartNumberMarker><NextPartNumberMarker>${page.at(-1)?.n ?? marker}</NextPartNumberMarker><MaxParts>${max}</MaxParts><IsTruncated>${truncated}</IsTruncated>`;
  for (const p of page)
    x += `<Part><PartNumber>${p.n}</PartNumber><LastModified>${isoDate(p.lastModified)}</LastModified><ETag>"${p.etag}"</ETag><Size>${p.size}</Size></Part>`;
  sendXml(c, 200, `${x}</ListPartsResult>`);
}

/** Every open upload: its id, metadata and when it was initiated. */
async function openUploads(env: ServerEnv) {
  const out: { uploadId: string; meta: UploadMeta; initiated: number }[] = [];
  let token: string | undefined;
  do {
    const page = await env.uploads.list({
      delimiter: '/',
      ...(token ? { continuationToken: token } : {}),
    });
    for (const p of page.commonPrefixes) {
      const uploadId = p.slice(0, -1);
      if (!UPLOAD_ID.test(uploadId)) continue;
      const [info, meta] = await Promise.all([
        env.uploads.head(`${uploadId}/meta`),
        readMeta(env, uploadId),
      ]);
      if (info && meta) out.push({ uploadId, meta, initiated: info.lastModified });
    }
    token = page.nextContinuationToken;
  } while (token);
  return out;
}

export async function listMultipartUploads(c: Authed) {
  await c.env.buckets.store(c.b);
  const p = c.params;
  const { urlEnc, enc } = keyEncoder(p);
  const prefix = p.get('prefix') ?? '';
  const delimiter = p.get('delimiter') ?? '';
  const keyMarker = p.get('key-marker') ?? '';
  const idMarker = p.get('upload-id-marker') ?? '';
  const max = Number(p.get('max-uploads') ?? 1000);
  if (!Number.isInteger(max) || max < 0)
    throw new StorageError('InvalidArgument', 400, 'max-uploads must be a non-negative integer');
  const all = (await openUploads(c.env))
    .filter((u) => u.meta.bucket === c.b && u.meta.key.startsWith(prefix))
    .filter((u) =>
      keyMarker === ''
        ? true
        : u.meta.key > keyMarker ||
          (u.meta.key === keyMarker && idMarker !== '' && u.uploadId > idMarker),
    )
    .sort((a, b) =>
      a.meta.key < b.meta.key ? -1 : a.meta.key > b.meta.key ? 1 : a.uploadId < b.uploadId ? -1 : 1,
    );
  const uploads: typeof all = [];
  const prefixes: string[] = [];
  let truncated = false;
  for (const u of all) {
    const d = delimiter ? u.meta.key.indexOf(delimiter, prefix.length) : -1;
    const cp = d >= 0 ? u.meta.key.slice(0, d + delimiter.length) : undefined;
    if (cp !== undefined && prefixes.at(-1) === cp) continue;
    if (uploads.length + prefixes.length >= Math.min(max, 1000)) {
      truncated = true;
      break;
    }
    if (cp !== undefined) prefixes.push(cp);
    else uploads.push(u);
  }
  const last = uploads.at(-1);
  let x = `<ListMultipartUploadsResult xmlns="${XMLNS}"><Bucket>${xmlEscape(c.b)}</Bucket><KeyMarker>${enc(keyMarker)}</KeyMarker><UploadIdMarker>${xmlEscape(idMarker)}</UploadIdMarker>`;
  if (truncated && last)
    x += `<NextKeyMarker>${enc(last.meta.key)}</NextKeyMarker><NextUploadIdMarker>${last.uploadId}</NextUploadIdMarker>`;
  x += `<Prefix>${enc(prefix)}</Prefix>`;
  if (delimiter) x += `<Delimiter>${enc(delimiter)}</Delimiter>`;
  if (urlEnc) x += '<EncodingType>url</EncodingType>';
  x += `<MaxUploads>${max}</MaxUploads><IsTruncated>${truncated}</IsTruncated>`;
  for (const u of uploads) {
    x += `<Upload><Key>${enc(u.meta.key)}</Key><UploadId>${u.uploadId}</UploadId><Initiator>${ownerXml}</Initiator><Owner>${ownerXml}</Owner><StorageClass>STANDARD</StorageClass><Initiated>${isoDate(u.initiated)}</Initiated></Upload>`;
  }
  for (const cp of prefixes) x += `<CommonPrefixes><Prefix>${enc(cp)}</Prefix></CommonPrefixes>`;
  sendXml(c, 200, `${x}</ListMultipartUploadsResult>`);
}

/** Drop every upload initiated at or before `now - olderThanMs`; returns how many. */
export async function sweepUploads(env: ServerEnv, olderThanMs: number): Promise<number> {
  const cutoff = env.clock.now() - olderThanMs;
  let n = 0;
  for (const u of await openUploads(env)) {
    if (u.initiated > cutoff) continue;
    await dropUpload(env, u.uploadId);
    n++;
  }
  return n;
}

/** The part list of a CompleteMultipartUpload body. */
async function partList(c: Authed): Promise<{ n: number; etag: string }[]> {
  const { root, body } = await readXml(c.req, PARTS_XML_MAX);
  if (root !== 'CompleteMultipartUpload')
    throw new StorageError(
      'MalformedXML',
      400,
      'the body must be a CompleteMultipartUpload document',
    );
  const parts = children(body, 'Part').map((p) => {
    const n = text(p, 'PartNumber');
    const etag = /^"?([0-9a-f]{32})"?$/.exec(text(p, 'ETag') ?? '');
    if (!n || !/^\d{1,5}$/.test(n) || !etag)
      throw new StorageError('MalformedXML', 400, 'each Part needs a PartNumber and an ETag');
    return { n: Number(n), etag: etag[1]! };
  });
  if (parts.length === 0) throw new StorageError('MalformedXML', 400, 'the part list is empty');
  return parts;
}

export async function completeMultipartUpload(c: Authed) {
  const uploadId = c.params.get('uploadId')!;
  const meta = await uploadMeta(c, uploadId);
  const parts = await partList(c);
  const infos: ObjectInfo[] = [];
  let total = 0;
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!;
    if (i > 0 && p.n <= parts[i - 1]!.n)
      throw new StorageError('InvalidPartOrder', 400, 'parts must be listed in ascending order');
    const info = await c.env.uploads.head(partKey(uploadId, p.n));
    if (!info || info.etag !== p.etag)
      throw new StorageError(
        'InvalidPart',
        400,
        `part ${p.n} was not uploaded or its ETag differs`,
      );
    if (i < parts.length - 1 && info.size < c.env.minPartBytes) {
      throw new StorageError(
        'EntityTooSmall',
        400,
        `part ${p.n} is smaller than the minimum part size`,
      );
    }
    total += info.size;
    infos.push(info);
  }
  const cap = c.decision.maxBytes;
  if (cap !== undefined && total > cap) throw tooLarge(cap, total);
  const md5 = createHash('md5');
  for (const i of infos) md5.update(Buffer.from(i.etag, 'hex'));
  const etag = `${md5.digest('hex')}-${infos.length}`;
  const uploads = c.env.uploads;
  async function* concat() {
    for (const i of infos) {
      const got = await uploads.get(i.key);
      for await (const ch of got.body) yield ch as Buffer;
    }
  }
  const info = await c.env.buckets.writing(c.b, (s) =>
    s.put(c.k, PassThrough.from(concat()), {
      contentType: meta.contentType,
      metadata: meta.metadata,
      etag,
      exactBytes: total,
      ...(cap !== undefined ? { maxBytes: cap } : {}),
      ...(meta.tags ? { tags: meta.tags } : {}),
    }),
  );
  await dropUpload(c.env, uploadId);
  sendXml(
    c,
    200,
    `<CompleteMultipartUploadResult xmlns="${XMLNS}"><Location>${xmlEscape(`${c.env.url}/${c.b}/${c.k}`)}</Location><Bucket>${xmlEscape(c.b)}</Bucket><Key>${xmlEscape(c.k)}</Key><ETag>"${info.etag}"</ETag></CompleteMultipartUploadResult>`,
  );
}
