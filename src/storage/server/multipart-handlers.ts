/**
 * Multipart upload: create, upload a part, complete, abort. Parts and the upload's metadata
 * live in the server's uploads store under `<uploadId>/`; completion concatenates the parts
 * into the bucket's store in one atomic put, then drops them.
 */
import { createHash } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { newId } from '../../core/index.js';
import type { ObjectInfo } from '../blob/blob-store.js';
import { StorageError } from '../storage-error.js';
import { type Authed, contentTypeOf, drain, receive, sendXml, userMeta } from './context.js';
import { XMLNS, xmlEscape } from './xml.js';

export interface UploadMeta {
  bucket: string;
  key: string;
  contentType: string;
  metadata: Record<string, string>;
}

export function partKey(uploadId: string, n: number): string {
  return `${uploadId}/part/${String(n).padStart(5, '0')}`;
}

async function uploadMeta(c: Authed, uploadId: string): Promise<UploadMeta> {
  if (!/^[0-9a-f]{32}$/.test(uploadId))
    throw new StorageError('NoSuchUpload', 404, 'no such multipart upload');
  let meta: UploadMeta;
  try {
    const got = await c.env.uploads.get(`${uploadId}/meta`);
    const chunks: Buffer[] = [];
    for await (const ch of got.body) chunks.push(ch as Buffer);
    meta = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (err) {
    if (err instanceof StorageError && err.s3Code === 'NoSuchKey') {
      throw new StorageError(
        'NoSuchUpload',
        404,
        'no such multipart upload; it may have been completed or aborted',
      );
    }
    throw err;
  }
  if (meta.bucket !== c.b || meta.key !== c.k)
    throw new StorageError('NoSuchUpload', 404, 'the upload belongs to another object');
  return meta;
}

async function dropUpload(c: Authed, uploadId: string) {
  const page = await c.env.uploads.list({ prefix: `${uploadId}/` });
  for (const o of page.objects) await c.env.uploads.delete(o.key);
}

export async function createMultipartUpload(c: Authed) {
  await c.env.buckets.store(c.b);
  await drain(c.req);
  const uploadId = newId().replaceAll('-', '');
  const meta: UploadMeta = {
    bucket: c.b,
    key: c.k,
    contentType: contentTypeOf(c.req),
    metadata: userMeta(c.req),
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
  const info = await receive(c, (body, o) => c.env.uploads.put(partKey(uploadId, n), body, o));
  c.res.writeHead(200, { ETag: `"${info.etag}"`, 'Content-Length': 0 }).end();
}

export async function abortMultipartUpload(c: Authed) {
  const uploadId = c.params.get('uploadId')!;
  await uploadMeta(c, uploadId);
  await dropUpload(c, uploadId);
  c.res.writeHead(204).end();
}

export async function completeMultipartUpload(c: Authed) {
  const uploadId = c.params.get('uploadId')!;
  const meta = await uploadMeta(c, uploadId);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const ch of c.req) {
    size += (ch as Buffer).length;
    if (size > 1024 * 1024)
      throw new StorageError('MalformedXML', 400, 'the part list is too large');
    chunks.push(ch as Buffer);
  }
  const xml = Buffer.concat(chunks).toString('utf8');
  const parts: { n: number; etag: string }[] = [];
  for (const m of xml.matchAll(/<Part>([\s\S]*?)<\/Part>/g)) {
    const n = /<PartNumber>\s*(\d+)\s*<\/PartNumber>/.exec(m[1]!);
    const e = /<ETag>\s*(?:&quot;|")?([0-9a-f]{32})(?:&quot;|")?\s*<\/ETag>/.exec(m[1]!);
    if (!n || !e)
      throw new StorageError('MalformedXML', 400, 'each Part needs a PartNumber and an ETag');
    parts.push({ n: Number(n[1]), etag: e[1]! });
  }
  if (parts.length === 0) throw new StorageError('MalformedXML', 400, 'the part list is empty');
  const s = await c.env.buckets.store(c.b);
  const infos: ObjectInfo[] = [];
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
    infos.push(info);
  }
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
  const info = await s.put(c.k, PassThrough.from(concat()), {
    contentType: meta.contentType,
    metadata: meta.metadata,
    etag,
  });
  await dropUpload(c, uploadId);
  sendXml(
    c,
    200,
    `<CompleteMultipartUploadResult xmlns="${XMLNS}"><Location>${xmlEscape(`${c.env.url}/${c.b}/${c.k}`)}</Location><Bucket>${xmlEscape(c.b)}</Bucket><Key>${xmlEscape(c.k)}</Key><ETag>"${info.etag}"</ETag></CompleteMultipartUploadResult>`,
  );
}
