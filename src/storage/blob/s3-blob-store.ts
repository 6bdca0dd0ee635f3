/**
 * S3 blob store over @aws-sdk/client-s3: works against AWS S3, MinIO and our own storage
 * server (server/storage-server.ts). Exported from the `storage/s3` subpath, so that the
 * module's entry never loads the AWS SDK. Streams of unknown length are uploaded as multipart in parts of
 * `partBytes` (memory bounded by one part); small bodies go in one PutObject. The SHA-256 of
 * what we wrote is kept in the `cdp-sha256` user metadata.
 */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { validateKey } from '../internal/keys.js';
import { checkPut, MeasuringStream, toReadable } from '../internal/measuring-stream.js';
import { uriEncode } from '../internal/uri-encoding.js';
import { noSuchKey, StorageError } from '../storage-error.js';
import type {
  BlobBody,
  BlobStore,
  GetResult,
  ListOptions,
  ListPage,
  ObjectInfo,
  PutOptions,
  RangeRequest,
} from './blob-store.js';

export interface S3BlobStoreOptions {
  client: S3Client;
  bucket: string;
  /** Multipart part size for streams (>= 5 MiB on S3). Default 8 MiB. */
  partBytes?: number;
  /** Destroy the client on close() (default false: the caller owns it). */
  ownsClient?: boolean;
}

interface SdkError {
  name?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

function mapError(err: unknown, key?: string): unknown {
  const e = err as SdkError;
  const status = e?.$metadata?.httpStatusCode;
  if (e?.name === 'NoSuchKey' || (status === 404 && key !== undefined && e?.name === 'NotFound')) {
    return noSuchKey(key ?? '');
  }
  if (status === 416 || e?.name === 'InvalidRange') {
    return new StorageError('InvalidRange', 416, 'the requested range is not satisfiable');
  }
  if (status && e?.name)
    return new StorageError(e.name, status, e.message ?? e.name, { cause: err });
  return err;
}

const unquote = (s: string | undefined) => (s ?? '').replace(/^"|"$/g, '');

function rangeHeader(r: RangeRequest): string {
  if ('suffix' in r) return `bytes=-${r.suffix}`;
  return `bytes=${r.start}-${r.end ?? ''}`;
}

async function* chunksOf(src: Readable, size: number): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let n = 0;
  for await (const ch of src) {
    let b = ch as Buffer;
    while (b.length > 0) {
      const take = Math.min(size - n, b.length);
      parts.push(b.subarray(0, take));
      n += take;
      b = b.subarray(take);
      if (n === size) {
        yield Buffer.concat(parts);
        parts = [];
        n = 0;
      }
    }
  }
  if (n > 0 || parts.length === 0) yield Buffer.concat(parts);
}

export class S3BlobStore implements BlobStore {
  readonly #c: S3Client;
  readonly #bucket: string;
  readonly #part: number;
  readonly #owns: boolean;

  /** A store on an S3-compatible endpoint (path-style), owning its client. */
  static open(o: {
    endpoint: string;
    bucket: string;
    accessKeyId: string;
    secretAccessKey: string;
    region?: string;
  }): S3BlobStore {
    const client = new S3Client({
      region: o.region ?? 'us-east-1',
      endpoint: o.endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: o.accessKeyId, secretAccessKey: o.secretAccessKey },
    });
    return new S3BlobStore({ client, bucket: o.bucket, ownsClient: true });
  }

  constructor(o: S3BlobStoreOptions) {
    this.#c = o.client;
    this.#bucket = o.bucket;
    this.#part = o.partBytes ?? 8 * 1024 * 1024;
    this.#owns = o.ownsClient ?? false;
  }

  async put(key: string, body: BlobBody, o: PutOptions = {}): Promise<ObjectInfo> {
    validateKey(key);
    const m = new MeasuringStream(o.maxBytes ?? o.exactBytes);
    const input = toReadable(body);
    input.on('error', (e) => m.destroy(e));
    const src = input.pipe(m);
    const it = chunksOf(src, this.#part)[Symbol.asyncIterator]();
    const first = await it.next();
    const second = first.done ? first : await it.next();
    const contentType = o.contentType ?? 'application/octet-stream';
    const metadata = { ...(o.metadata ?? {}) };
    const tagging = o.tags ? { Tagging: new URLSearchParams(o.tags).toString() } : {};
    // What every request of this upload names.
    const target = { Bucket: this.#bucket, Key: key };
    const stored = (size: number, etag: string | undefined, sha256: string) =>
      this.#infoAfterPut(key, size, unquote(etag), sha256, contentType, metadata);
    if (second.done) {
      // One part: a single PutObject, checked before anything is sent.
      const buf = (first.value as Buffer | undefined) ?? Buffer.alloc(0);
      const d = m.digests();
      checkPut(m, d, o);
      try {
        const r = await this.#c.send(
          new PutObjectCommand({
            ...target,
            Body: buf,
            ContentType: contentType,
            ContentMD5: d.md5.toString('base64'),
            Metadata: { ...metadata, 'cdp-sha256': d.sha256 },
            ...tagging,
          }),
        );
        return stored(buf.length, r.ETag, d.sha256);
      } catch (err) {
        throw mapError(err, key);
      }
    }
    // Several parts: multipart upload; aborted on any failure.
    let uploadId: string | undefined;
    try {
      const created = await this.#c.send(
        new CreateMultipartUploadCommand({
          ...target,
          ContentType: contentType,
          Metadata: metadata,
          ...tagging,
        }),
      );
      uploadId = created.UploadId!;
      const etags: string[] = [];
      const send = async (buf: Buffer) => {
        const r = await this.#c.send(
          new UploadPartCommand({
            ...target,
            UploadId: uploadId,
            PartNumber: etags.length + 1,
            Body: buf,
            ContentMD5: createHash('md5').update(buf).digest('base64'),
          }),
        );
        etags.push(unquote(r.ETag));
      };
      await send(first.value as Buffer);
      await send(second.value as Buffer);
      for (let r = await it.next(); !r.done; r = await it.next()) {
        if ((r.value as Buffer).length > 0) await send(r.value as Buffer);
      }
      const d = m.digests();
      checkPut(m, d, o);
      await this.#c.send(
        new CompleteMultipartUploadCommand({
          ...target,
          UploadId: uploadId,
          MultipartUpload: { Parts: etags.map((e, i) => ({ ETag: `"${e}"`, PartNumber: i + 1 })) },
        }),
      );
      uploadId = undefined;
      // Record the SHA-256 now that it is known: a server-side copy onto itself.
      const copied = await this.#c.send(
        new CopyObjectCommand({
          ...target,
          CopySource: `${this.#bucket}/${uriEncode(key, true)}`,
          MetadataDirective: 'REPLACE',
          ContentType: contentType,
          Metadata: { ...metadata, 'cdp-sha256': d.sha256 },
        }),
      );
      return stored(m.bytes, copied.CopyObjectResult?.ETag, d.sha256);
    } catch (err) {
      if (uploadId) {
        await this.#c
          .send(new AbortMultipartUploadCommand({ ...target, UploadId: uploadId }))
          .catch(() => {});
      }
      throw mapError(err, key);
    }
  }

  async #infoAfterPut(
    key: string,
    size: number,
    etag: string,
    sha256: string,
    contentType: string,
    metadata: Record<string, string>,
  ): Promise<ObjectInfo> {
    const h = await this.head(key);
    return h ?? { key, size, etag, sha256, contentType, lastModified: 0, metadata };
  }

  #info(
    key: string,
    r: {
      ContentLength?: number | undefined;
      ContentRange?: string | undefined;
      ETag?: string | undefined;
      ContentType?: string | undefined;
      LastModified?: Date | undefined;
      Metadata?: Record<string, string> | undefined;
    },
  ): ObjectInfo {
    const meta = { ...(r.Metadata ?? {}) };
    const sha256 = meta['cdp-sha256'];
    delete meta['cdp-sha256'];
    const total = r.ContentRange ? Number(r.ContentRange.split('/')[1]) : (r.ContentLength ?? 0);
    return {
      key,
      size: total,
      etag: unquote(r.ETag),
      sha256,
      contentType: r.ContentType ?? 'application/octet-stream',
      lastModified: r.LastModified?.getTime() ?? 0,
      metadata: meta,
    };
  }

  async get(key: string, o: { range?: RangeRequest } = {}): Promise<GetResult> {
    validateKey(key);
    try {
      const r = await this.#c.send(
        new GetObjectCommand({
          Bucket: this.#bucket,
          Key: key,
          ...(o.range ? { Range: rangeHeader(o.range) } : {}),
        }),
      );
      const info = this.#info(key, r);
      let range: GetResult['range'];
      const m = /^bytes (\d+)-(\d+)\/\d+$/.exec(r.ContentRange ?? '');
      if (o.range && m) range = { start: Number(m[1]), end: Number(m[2]) };
      return { info, body: r.Body as Readable, range };
    } catch (err) {
      throw mapError(err, key);
    }
  }

  async head(key: string): Promise<ObjectInfo | null> {
    validateKey(key);
    try {
      const r = await this.#c.send(new HeadObjectCommand({ Bucket: this.#bucket, Key: key }));
      return this.#info(key, r);
    } catch (err) {
      if ((err as SdkError)?.$metadata?.httpStatusCode === 404) return null;
      throw mapError(err, key);
    }
  }

  async delete(key: string): Promise<void> {
    validateKey(key);
    try {
      await this.#c.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: key }));
    } catch (err) {
      throw mapError(err, key);
    }
  }

  async list(o: ListOptions = {}): Promise<ListPage> {
    try {
      const r = await this.#c.send(
        new ListObjectsV2Command({
          Bucket: this.#bucket,
          ...(o.prefix ? { Prefix: o.prefix } : {}),
          ...(o.delimiter ? { Delimiter: o.delimiter } : {}),
          ...(o.startAfter ? { StartAfter: o.startAfter } : {}),
          ...(o.continuationToken ? { ContinuationToken: o.continuationToken } : {}),
          MaxKeys: Math.max(1, Math.min(1000, o.maxKeys ?? 1000)),
        }),
      );
      return {
        objects: (r.Contents ?? []).map((c) => ({
          key: c.Key!,
          size: c.Size ?? 0,
          etag: unquote(c.ETag),
          lastModified: c.LastModified?.getTime() ?? 0,
        })),
        commonPrefixes: (r.CommonPrefixes ?? []).map((p) => p.Prefix!),
        isTruncated: r.IsTruncated ?? false,
        nextContinuationToken: r.NextContinuationToken,
      };
    } catch (err) {
      throw mapError(err);
    }
  }

  async copy(
    fromKey: string,
    toKey: string,
    o: { metadata?: Record<string, string>; contentType?: string } = {},
  ): Promise<ObjectInfo> {
    validateKey(fromKey);
    validateKey(toKey);
    try {
      const replace = o.metadata !== undefined || o.contentType !== undefined;
      let metadata = o.metadata;
      let contentType = o.contentType;
      if (replace) {
        const src = await this.head(fromKey);
        if (!src) throw noSuchKey(fromKey);
        metadata = {
          ...(o.metadata ?? src.metadata),
          ...(src.sha256 ? { 'cdp-sha256': src.sha256 } : {}),
        };
        contentType = o.contentType ?? src.contentType;
      }
      await this.#c.send(
        new CopyObjectCommand({
          Bucket: this.#bucket,
          Key: toKey,
          CopySource: `${this.#bucket}/${uriEncode(fromKey, true)}`,
          ...(replace
            ? { MetadataDirective: 'REPLACE', Metadata: metadata, ContentType: contentType }
            : {}),
        }),
      );
      const h = await this.head(toKey);
      if (!h) throw noSuchKey(toKey);
      return h;
    } catch (err) {
      throw mapError(err, fromKey);
    }
  }

  async close(): Promise<void> {
    if (this.#owns) this.#c.destroy();
  }
}
