/**
 * Blob store port: one bucket's objects, streamed in and out. Adapters: fs-blob-store.ts
 * (a folder on disk, atomic writes) and s3-blob-store.ts (any S3-compatible server). What the
 * adapters share (key checks, paging, ranges, measuring a body) is in ../internal/.
 */
import type { Readable } from 'node:stream';

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
