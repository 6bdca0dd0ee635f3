/**
 * Blob store port: one bucket's objects, streamed in and out. Adapters: fs-blob-store.ts
 * (a folder on disk, atomic writes) and s3-blob-store.ts (any S3-compatible server).
 */
import { createHash, type Hash } from 'node:crypto';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { StorageError } from '../storage-error.js';

export interface ObjectInfo {
  key: string;
  size: number;
  /** S3-style ETag without quotes: hex MD5 of the bytes (or `<md5>-<parts>` for multipart). */
  etag: string;
  /** Hex SHA-256 of the bytes (undefined only for S3 objects written by other tools). */
  sha256: string | undefined;
  contentType: string;
  /** Epoch milliseconds. */
  lastModified: number;
  /** User metadata (x-amz-meta-*), lower-case names without the prefix. */
  metadata: Record<string, string>;
}

export type BlobBody = Readable | Uint8Array | string;

export interface PutOptions {
  contentType?: string;
  metadata?: Record<string, string>;
  /** Refuse (BadDigest) unless the bytes hash to this hex SHA-256. */
  expectedSha256?: string;
  /** Refuse (BadDigest) unless the bytes hash to this base64 MD5 (Content-MD5). */
  expectedMd5?: string;
  /** Refuse (EntityTooLarge) as soon as more bytes than this arrive. */
  maxBytes?: number;
  /** Refuse unless exactly this many bytes arrive (a signed Content-Length). */
  exactBytes?: number;
  /** Refuse (EntityTooSmall) below this size. */
  minBytes?: number;
  /** Store this ETag instead of the MD5 (multipart completion). */
  etag?: string;
  /** Object tags (S3 tagging): FsBlobStore keeps them with the metadata, S3BlobStore sends them. */
  tags?: Record<string, string>;
}

/** Inclusive byte range. */
export interface ByteRange {
  start: number;
  end: number;
}

export interface GetResult {
  info: ObjectInfo;
  body: Readable;
  /** The range served, when one was asked. */
  range: ByteRange | undefined;
}

export interface ListOptions {
  prefix?: string;
  delimiter?: string;
  /** Keys strictly after this one (S3 StartAfter). */
  startAfter?: string;
  /** Opaque token from a previous page. */
  continuationToken?: string;
  /** 1..1000, default 1000. */
  maxKeys?: number;
}

/** What a listing tells about each object (S3 listings carry no type or metadata). */
export type ListedObject = Pick<ObjectInfo, 'key' | 'size' | 'etag' | 'lastModified'>;

export interface ListPage {
  objects: ListedObject[];
  commonPrefixes: string[];
  isTruncated: boolean;
  nextContinuationToken: string | undefined;
}

/** A requested range: `start`..`end` inclusive, or the last `suffix` bytes. */
export type RangeRequest = { start: number; end?: number } | { suffix: number };

export interface BlobStore {
  put(key: string, body: BlobBody, options?: PutOptions): Promise<ObjectInfo>;
  /** Throws StorageError NoSuchKey when absent, InvalidRange when the range is unsatisfiable. */
  get(key: string, options?: { range?: RangeRequest }): Promise<GetResult>;
  head(key: string): Promise<ObjectInfo | null>;
  /** Idempotent: deleting an absent key succeeds. */
  delete(key: string): Promise<void>;
  list(options?: ListOptions): Promise<ListPage>;
  copy(
    fromKey: string,
    toKey: string,
    options?: { metadata?: Record<string, string>; contentType?: string },
  ): Promise<ObjectInfo>;
  close(): Promise<void>;
}

export function validateKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0 || Buffer.byteLength(key) > 1024) {
    throw new StorageError('KeyTooLongError', 400, 'object keys must be 1 to 1024 bytes of UTF-8');
  }
  if (key.includes('\0')) {
    throw new StorageError('InvalidArgument', 400, 'object keys must not contain NUL');
  }
  if (/\p{Surrogate}/u.test(key)) {
    throw new StorageError('InvalidArgument', 400, 'object keys must be well-formed UTF-16');
  }
}

/** Resolve a range request against a size; throws InvalidRange (416) when unsatisfiable. */
export function resolveRange(r: RangeRequest, size: number): ByteRange {
  if ('suffix' in r) {
    if (r.suffix <= 0 || size === 0) throw invalidRange(size);
    return { start: Math.max(0, size - r.suffix), end: size - 1 };
  }
  if (r.start >= size || (r.end !== undefined && r.end < r.start)) throw invalidRange(size);
  return { start: r.start, end: Math.min(r.end ?? size - 1, size - 1) };
}

export function invalidRange(size: number): StorageError {
  const e = new StorageError(
    'InvalidRange',
    416,
    `the requested range is not satisfiable (object size ${size})`,
  );
  (e as StorageError & { size: number }).size = size;
  return e;
}

/**
 * Parse an HTTP Range header for one range: `bytes=a-b`, `bytes=a-`, `bytes=-n`.
 * Returns null for a header to ignore (several ranges, or not bytes) as RFC 9110 allows.
 * `bytes=-0` is unsatisfiable (416).
 */
export function parseRangeHeader(h: string | undefined): RangeRequest | null | 'invalid' {
  if (h === undefined) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(h.trim());
  if (!m) return /^bytes=/.test(h.trim()) && h.includes(',') ? null : 'invalid';
  const [, a, b] = m;
  if (a === '' && b === '') return 'invalid';
  if (a === '') return { suffix: Number(b) };
  const start = Number(a);
  if (!Number.isSafeInteger(start)) return 'invalid';
  if (b === '') return { start };
  const end = Number(b);
  if (!Number.isSafeInteger(end) || end < start) return 'invalid';
  return { start, end };
}

/** Counts and hashes bytes flowing through, enforcing size limits as they arrive. */
export class MeasuringStream extends Transform {
  bytes = 0;
  readonly #sha = createHash('sha256');
  readonly #md5: Hash = createHash('md5');
  readonly #max: number;
  constructor(maxBytes = Number.POSITIVE_INFINITY) {
    super();
    this.#max = maxBytes;
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.#max) {
      cb(
        new StorageError(
          'EntityTooLarge',
          400,
          `the body is larger than the allowed ${this.#max} bytes`,
        ),
      );
      return;
    }
    this.#sha.update(chunk);
    this.#md5.update(chunk);
    cb(null, chunk);
  }
  digests(): { sha256: string; md5: Buffer } {
    return { sha256: this.#sha.digest('hex'), md5: this.#md5.digest() };
  }
}

export function toReadable(body: BlobBody): Readable {
  if (body instanceof Readable) return body;
  return Readable.from([typeof body === 'string' ? Buffer.from(body) : Buffer.from(body)]);
}

/** Check a measured body against the put options (after the last byte). */
export function checkPut(
  m: MeasuringStream,
  d: { sha256: string; md5: Buffer },
  o: PutOptions,
): void {
  if (o.exactBytes !== undefined && m.bytes !== o.exactBytes) {
    throw new StorageError(
      'IncompleteBody',
      400,
      `expected ${o.exactBytes} bytes, received ${m.bytes}`,
    );
  }
  if (o.minBytes !== undefined && m.bytes < o.minBytes) {
    throw new StorageError('EntityTooSmall', 400, `the body is smaller than ${o.minBytes} bytes`);
  }
  if (o.expectedSha256 !== undefined && o.expectedSha256 !== d.sha256) {
    throw new StorageError(
      'XAmzContentSHA256Mismatch',
      400,
      'the body does not match x-amz-content-sha256',
    );
  }
  if (o.expectedMd5 !== undefined && o.expectedMd5 !== d.md5.toString('base64')) {
    throw new StorageError('BadDigest', 400, 'the body does not match Content-MD5');
  }
}

/** Compare keys in UTF-8 byte order, as S3 lists them. */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

export function encodeToken(key: string): string {
  return Buffer.from(key, 'utf8').toString('base64url');
}

export function decodeToken(token: string): string {
  const k = Buffer.from(token, 'base64url').toString('utf8');
  if (encodeToken(k) !== token) {
    throw new StorageError('InvalidArgument', 400, 'the continuation token is not valid');
  }
  return k;
}

/**
 * Page a sorted key list the S3 way (prefix, delimiter, startAfter/continuation, maxKeys).
 * `entries` must be sorted by compareKeys.
 */
export function pageKeys<T extends { key: string }>(
  entries: readonly T[],
  o: ListOptions,
): { items: T[]; commonPrefixes: string[]; isTruncated: boolean; next: string | undefined } {
  const prefix = o.prefix ?? '';
  const max = Math.max(1, Math.min(1000, o.maxKeys ?? 1000));
  let after = o.startAfter;
  if (o.continuationToken) after = decodeToken(o.continuationToken);
  const items: T[] = [];
  const prefixes: string[] = [];
  let last: string | undefined;
  let i = 0;
  if (after !== undefined) {
    let lo = 0;
    let hi = entries.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (compareKeys(entries[mid]!.key, after) <= 0) lo = mid + 1;
      else hi = mid;
    }
    i = lo;
  }
  for (; i < entries.length; i++) {
    const e = entries[i]!;
    if (!e.key.startsWith(prefix)) {
      if (compareKeys(e.key, prefix) > 0) break;
      continue;
    }
    if (items.length + prefixes.length >= max) {
      return { items, commonPrefixes: prefixes, isTruncated: true, next: encodeToken(last!) };
    }
    if (o.delimiter) {
      const d = e.key.indexOf(o.delimiter, prefix.length);
      if (d >= 0) {
        const cp = e.key.slice(0, d + o.delimiter.length);
        if (prefixes[prefixes.length - 1] !== cp) prefixes.push(cp);
        // Skip every key under this common prefix: continue after its last key.
        while (i + 1 < entries.length && entries[i + 1]!.key.startsWith(cp)) i++;
        last = entries[i]!.key;
        continue;
      }
    }
    items.push(e);
    last = e.key;
  }
  return { items, commonPrefixes: prefixes, isTruncated: false, next: undefined };
}
