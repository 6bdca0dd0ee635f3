/**
 * What every handler of the storage server gets: the request's context (`Ctx`) and the
 * server's shared state (`ServerEnv`), with the helpers that read bodies and write answers.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Readable, Transform } from 'node:stream';
import type { Clock } from '../../core/index.js';
import type { Counter } from '../../core/metrics.js';
import type { ObjectInfo, PutOptions } from '../blob/blob-store.js';
import type { FsBlobStore } from '../blob/fs-blob-store.js';
import type { VerifiedRequest } from '../sigv4/verify.js';
import { StorageError } from '../storage-error.js';
import { AwsChunkedDecoder } from './aws-chunked.js';
import type { Buckets } from './buckets.js';
import type { CorsRule } from './cors.js';
import type { AccessDecision, KeyResolver } from './key-resolver.js';
import type { S3Op } from './operations.js';
import { httpDate, xmlRepresentable } from './xml.js';

export interface ServerMetrics {
  requests: Counter<'op' | 'outcome'>;
  bytes: Counter<'direction'>;
}

/** The server's state shared by every request. */
export interface ServerEnv {
  readonly clock: Clock;
  readonly region: string;
  readonly url: string;
  readonly keys: KeyResolver;
  readonly buckets: Buckets;
  readonly uploads: FsBlobStore;
  readonly cors: Map<string, CorsRule[]>;
  readonly metrics: ServerMetrics | null;
  readonly minPartBytes: number;
}

/** One request. `auth` and `decision` are set once it is authenticated. */
export interface Ctx {
  readonly env: ServerEnv;
  req: IncomingMessage;
  res: ServerResponse;
  op: S3Op | 'Unknown';
  keyId: string | null;
  bucket: string | null;
  key: string | null;
  bytes: number;
  clientIp: string;
  requestId: string;
  params: Map<string, string>;
}

/** An authenticated request: bucket and key as named in the path ('' when absent). */
export interface Authed extends Ctx {
  auth: VerifiedRequest;
  decision: AccessDecision;
  b: string;
  k: string;
  copySource?: { bucket: string; key: string };
}

/**
 * `src` through `steps` into a counting stream the consumer reads with backpressure. Errors
 * travel downstream; a consumer that stops early does not destroy `src` (the request socket
 * must stay up to carry the error response).
 */
export function counted(
  src: Readable,
  onBytes: (n: number) => void,
  ...steps: Transform[]
): Readable {
  const t = new Transform({
    transform(chunk: Buffer, _e, cb) {
      onBytes(chunk.length);
      cb(null, chunk);
    },
  });
  let prev: Readable = src;
  for (const s of [...steps, t]) {
    prev.on('error', (err) => s.destroy(err));
    prev.pipe(s);
    prev = s;
  }
  return t;
}

export function sendXml(c: Ctx, status: number, inner: string) {
  const body = `<?xml version="1.0" encoding="UTF-8"?>\n${inner}`;
  c.res
    .writeHead(status, {
      'Content-Type': 'application/xml',
      'Content-Length': Buffer.byteLength(body),
    })
    .end(body);
}

export async function drain(req: IncomingMessage) {
  for await (const _ of req) {
    // discard
  }
}

export function contentTypeOf(req: IncomingMessage): string {
  return req.headers['content-type'] ?? 'application/octet-stream';
}

export function userMeta(req: IncomingMessage): Record<string, string> {
  const m: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) {
    if (k.startsWith('x-amz-meta-') && typeof v === 'string') m[k.slice(11)] = v;
  }
  return m;
}

export function objectHeaders(info: ObjectInfo): Record<string, string> {
  const h: Record<string, string> = {
    ETag: `"${info.etag}"`,
    'Last-Modified': httpDate(info.lastModified),
    'Content-Type': info.contentType,
    'Accept-Ranges': 'bytes',
  };
  for (const [k, v] of Object.entries(info.metadata)) h[`x-amz-meta-${k}`] = v;
  return h;
}

/**
 * Stream the request body into `write`, decoding aws-chunked bodies and enforcing the
 * signed or declared length and the key's cap as the bytes arrive.
 */
export async function receive(
  c: Authed,
  write: (body: Readable, o: PutOptions) => Promise<ObjectInfo>,
  maxBytes: number | undefined = c.decision.maxBytes,
): Promise<ObjectInfo> {
  const { req, auth } = c;
  const o: PutOptions = {};
  const steps: Transform[] = [];
  if (auth.payloadHash.startsWith('STREAMING-')) {
    if (auth.payloadHash !== 'STREAMING-UNSIGNED-PAYLOAD-TRAILER') {
      throw new StorageError(
        'NotImplemented',
        501,
        'signed aws-chunked uploads are not supported; use an unsigned payload trailer',
      );
    }
    const dec = Number(req.headers['x-amz-decoded-content-length']);
    if (!Number.isSafeInteger(dec) || dec < 0) {
      throw new StorageError(
        'MissingContentLength',
        411,
        'x-amz-decoded-content-length is required with aws-chunked',
      );
    }
    o.exactBytes = dec;
    steps.push(new AwsChunkedDecoder(req.headers['x-amz-trailer'] as string | undefined));
  } else {
    const cl = req.headers['content-length'];
    if (cl !== undefined) o.exactBytes = Number(cl);
    if (/^[0-9a-f]{64}$/.test(auth.payloadHash)) o.expectedSha256 = auth.payloadHash;
  }
  const md5 = req.headers['content-md5'];
  if (typeof md5 === 'string') o.expectedMd5 = md5;
  if (maxBytes !== undefined) {
    if (o.exactBytes !== undefined && o.exactBytes > maxBytes) {
      throw new StorageError('EntityTooLarge', 400, `this key allows at most ${maxBytes} bytes`);
    }
    o.maxBytes = maxBytes;
  }
  if (o.exactBytes !== undefined && o.maxBytes !== undefined)
    o.maxBytes = Math.min(o.maxBytes, o.exactBytes);
  const body = counted(
    req,
    (n) => {
      c.bytes += n;
    },
    ...steps,
  );
  const info = await write(body, o);
  c.env.metrics?.bytes.inc({ direction: 'in' }, c.bytes);
  return info;
}

/**
 * A key a write may create: one an XML listing can carry. Keys with control characters other
 * than tab, LF and CR are refused (XML 1.0 cannot hold them, even as character references).
 */
export function checkNewKey(key: string): void {
  if (!xmlRepresentable(key)) {
    throw new StorageError(
      'InvalidArgument',
      400,
      'object keys must not contain control characters other than tab, LF and CR (XML listings cannot carry them); choose another key',
    );
  }
}
