/**
 * An S3-compatible storage server (path-style addressing) over node:http, backed by
 * FsBlobStore: CreateBucket, HeadBucket, DeleteBucket, ListBuckets, PutObject, GetObject
 * (Range), HeadObject, DeleteObject, ListObjectsV2, CopyObject, multipart upload
 * (Create/UploadPart/Complete/Abort) and browser POST uploads, with S3-shaped XML errors.
 *
 * Every request is authenticated with SigV4 (Authorization header or presigned query) or a
 * signed POST policy. A KeyResolver supplies secrets and may narrow what a key can do (the
 * valet-key service plugs in here); the body is counted while it streams and refused the
 * moment it passes a signed Content-Length or a key's size cap.
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { PassThrough, type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  type Clock,
  type Logger,
  newId,
  type Registry,
  silentLogger,
  systemClock,
} from '../core/index.js';
import { counter } from '../core/metrics.js';
import { AwsChunkedDecoder } from './aws-chunked.js';
import { type ObjectInfo, type PutOptions, parseRangeHeader } from './blob-store.js';
import { FsBlobStore } from './fs-blob-store.js';
import { boundaryOf, readPostForm } from './post-form.js';
import { percentDecode, utf8OrThrow } from './sigv4.js';
import { checkPostSize, type VerifiedPost, verifyPostForm } from './sigv4-post-policy.js';
import { type VerifiedRequest, verifyRequest } from './sigv4-verify.js';
import { StorageError } from './storage-error.js';

export type S3Op =
  | 'ListBuckets'
  | 'CreateBucket'
  | 'HeadBucket'
  | 'DeleteBucket'
  | 'ListObjectsV2'
  | 'PutObject'
  | 'PostObject'
  | 'GetObject'
  | 'HeadObject'
  | 'DeleteObject'
  | 'CopyObject'
  | 'CreateMultipartUpload'
  | 'UploadPart'
  | 'CompleteMultipartUpload'
  | 'AbortMultipartUpload';

export interface AccessRequest {
  accessKeyId: string;
  op: S3Op;
  method: string;
  bucket: string | undefined;
  key: string | undefined;
  /** CopyObject: the source bucket and key, which the key must also be allowed to read. */
  copySource?: { bucket: string; key: string };
  clientIp: string;
  /** Header/query verification, or the POST policy. */
  auth: VerifiedRequest | VerifiedPost;
  /** Declared body size (Content-Length or x-amz-decoded-content-length) when known. */
  contentLength: number | undefined;
  /** True when the body size is bound by the signature (signed content-length or policy). */
  sizeSigned: boolean;
}

export interface AccessDecision {
  /** Cap on the body size for this request; enforced while streaming. */
  maxBytes?: number;
}

/** Where the server gets secrets and, optionally, per-key permissions. */
export interface KeyResolver {
  lookup(accessKeyId: string): { secretAccessKey: string } | undefined;
  /** Called before lookup with the key id the request names: load it (from SQL, ...). */
  prepare?(accessKeyId: string): Promise<void>;
  /** Throw AuthError to refuse; return limits to narrow. Absent: every known key may do all. */
  authorize?(r: AccessRequest): AccessDecision | undefined | Promise<AccessDecision | undefined>;
}

export function staticKeys(
  keys: readonly { accessKeyId: string; secretAccessKey: string }[],
): KeyResolver {
  const m = new Map(keys.map((k) => [k.accessKeyId, { secretAccessKey: k.secretAccessKey }]));
  return { lookup: (id) => m.get(id) };
}

/** Chain resolvers: the first that knows the key answers. */
export function chainKeys(...resolvers: KeyResolver[]): KeyResolver {
  return {
    lookup(id) {
      for (const r of resolvers) {
        const k = r.lookup(id);
        if (k) return k;
      }
      return undefined;
    },
    async prepare(id) {
      for (const r of resolvers) await r.prepare?.(id);
    },
    authorize(req) {
      for (const r of resolvers) if (r.lookup(req.accessKeyId)) return r.authorize?.(req);
      return undefined;
    },
  };
}

export interface AuditEvent {
  at: number;
  keyId: string | null;
  op: S3Op | 'Unknown';
  bucket: string | null;
  key: string | null;
  /** Body bytes moved (in for writes, out for reads). */
  bytes: number;
  outcome: 'ok' | 'refused' | 'error';
  status: number;
  /** S3 error code for refusals and errors. */
  code: string | null;
  clientIp: string;
}

export interface CorsRule {
  allowedOrigins: string[];
  allowedMethods: string[];
  allowedHeaders?: string[];
  exposeHeaders?: string[];
  maxAgeSeconds?: number;
}

export interface StorageServerOptions {
  /** Data folder: buckets under <dir>/buckets, multipart parts under <dir>/uploads. */
  dir: string;
  keys: KeyResolver;
  region?: string;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  clock?: Clock;
  logger?: Logger;
  registry?: Registry;
  onAudit?: (e: AuditEvent) => void;
  /** CORS rules by bucket. */
  cors?: Record<string, CorsRule[]>;
  /** Minimum size of every multipart part but the last (S3: 5 MiB). */
  minPartBytes?: number;
  /** fsync each object (default true). */
  fsync?: boolean;
}

const BUCKET_RE = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const XMLNS = 'http://s3.amazonaws.com/doc/2006-03-01/';

function xmlEscape(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function httpDate(ms: number): string {
  return new Date(ms).toUTCString();
}

function isoDate(ms: number): string {
  return new Date(ms).toISOString();
}

function notFoundBucket(b: string) {
  return new StorageError('NoSuchBucket', 404, `bucket ${b} does not exist; create it first`);
}

/**
 * `src` through `steps` into a counting stream the consumer reads with backpressure. Errors
 * travel downstream; a consumer that stops early does not destroy `src` (the request socket
 * must stay up to carry the error response).
 */
function counted(src: Readable, onBytes: (n: number) => void, ...steps: Transform[]): Readable {
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

interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  op: S3Op | 'Unknown';
  keyId: string | null;
  bucket: string | null;
  key: string | null;
  bytes: number;
  clientIp: string;
  requestId: string;
}

export class StorageServer {
  readonly #o: StorageServerOptions;
  readonly #server: Server;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #region: string;
  readonly #stores = new Map<string, Promise<FsBlobStore>>();
  #uploads: FsBlobStore | undefined;
  readonly #cors: Map<string, CorsRule[]>;
  readonly #metrics;
  #port = 0;

  private constructor(o: StorageServerOptions) {
    this.#o = o;
    this.#clock = o.clock ?? systemClock;
    this.#log = o.logger ?? silentLogger();
    this.#region = o.region ?? 'us-east-1';
    this.#cors = new Map(Object.entries(o.cors ?? {}));
    this.#metrics = o.registry
      ? {
          requests: counter(
            o.registry,
            'cdp_storage_requests_total',
            'S3 requests by operation and outcome',
            ['op', 'outcome'],
          ),
          bytes: counter(
            o.registry,
            'cdp_storage_bytes_total',
            'Body bytes moved by the storage server',
            ['direction'],
          ),
        }
      : null;
    this.#server = createServer({ requestTimeout: 0 }, (req, res) => {
      void this.#handle(req, res);
    });
    this.#server.keepAliveTimeout = 5000;
  }

  static async start(o: StorageServerOptions): Promise<StorageServer> {
    const s = new StorageServer(o);
    await mkdir(join(o.dir, 'buckets'), { recursive: true });
    s.#uploads = await FsBlobStore.open({
      dir: join(o.dir, 'uploads'),
      clock: s.#clock,
      fsync: o.fsync ?? true,
    });
    await new Promise<void>((resolve, reject) => {
      s.#server.once('error', reject);
      s.#server.listen(o.port ?? 0, o.host ?? '127.0.0.1', () => resolve());
    });
    s.#port = (s.#server.address() as AddressInfo).port;
    return s;
  }

  get port(): number {
    return this.#port;
  }

  get url(): string {
    return `http://${this.#o.host ?? '127.0.0.1'}:${this.#port}`;
  }

  setCors(bucket: string, rules: CorsRule[] | undefined): void {
    if (rules) this.#cors.set(bucket, rules);
    else this.#cors.delete(bucket);
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }

  // -------------------------------------------------------------------------------------------

  #bucketDir(b: string) {
    return join(this.#o.dir, 'buckets', b);
  }

  async #bucketExists(b: string): Promise<boolean> {
    try {
      return (await stat(this.#bucketDir(b))).isDirectory();
    } catch {
      return false;
    }
  }

  async #store(b: string): Promise<FsBlobStore> {
    if (!(await this.#bucketExists(b))) {
      this.#stores.delete(b);
      throw notFoundBucket(b);
    }
    let s = this.#stores.get(b);
    if (!s) {
      s = FsBlobStore.open({
        dir: this.#bucketDir(b),
        clock: this.#clock,
        fsync: this.#o.fsync ?? true,
      });
      this.#stores.set(b, s);
    }
    return s;
  }

  #audit(c: Ctx, outcome: AuditEvent['outcome'], status: number, code: string | null) {
    this.#metrics?.requests.inc({ op: c.op, outcome });
    this.#o.onAudit?.({
      at: this.#clock.now(),
      keyId: c.keyId,
      op: c.op,
      bucket: c.bucket,
      key: c.key,
      bytes: c.bytes,
      outcome,
      status,
      code,
      clientIp: c.clientIp,
    });
  }

  #corsHeaders(c: Ctx) {
    const origin = c.req.headers.origin;
    if (!origin || !c.bucket) return;
    const rule = this.#cors
      .get(c.bucket)
      ?.find(
        (r) =>
          r.allowedOrigins.some((o) => o === '*' || o === origin) &&
          r.allowedMethods.includes(c.req.method ?? ''),
      );
    if (!rule) return;
    c.res.setHeader(
      'Access-Control-Allow-Origin',
      rule.allowedOrigins.includes('*') ? '*' : origin,
    );
    c.res.setHeader('Vary', 'Origin');
    if (rule.exposeHeaders?.length)
      c.res.setHeader('Access-Control-Expose-Headers', rule.exposeHeaders.join(', '));
  }

  #preflight(c: Ctx): void {
    const origin = c.req.headers.origin;
    const method = c.req.headers['access-control-request-method'];
    const reqHeaders = (c.req.headers['access-control-request-headers'] ?? '')
      .split(',')
      .map((h) => h.trim().toLowerCase())
      .filter(Boolean);
    const rule = c.bucket
      ? this.#cors
          .get(c.bucket)
          ?.find(
            (r) =>
              r.allowedOrigins.some((o) => o === '*' || o === origin) &&
              typeof method === 'string' &&
              r.allowedMethods.includes(method) &&
              reqHeaders.every((h) =>
                (r.allowedHeaders ?? []).some((a) => a === '*' || a.toLowerCase() === h),
              ),
          )
      : undefined;
    if (!origin || !rule) {
      throw new StorageError(
        'AccessForbidden',
        403,
        'CORSResponse: this CORS request is not allowed by the bucket rules',
      );
    }
    c.res.setHeader(
      'Access-Control-Allow-Origin',
      rule.allowedOrigins.includes('*') ? '*' : origin,
    );
    c.res.setHeader('Access-Control-Allow-Methods', rule.allowedMethods.join(', '));
    if (reqHeaders.length) c.res.setHeader('Access-Control-Allow-Headers', reqHeaders.join(', '));
    if (rule.maxAgeSeconds !== undefined)
      c.res.setHeader('Access-Control-Max-Age', String(rule.maxAgeSeconds));
    c.res.setHeader(
      'Vary',
      'Origin, Access-Control-Request-Headers, Access-Control-Request-Method',
    );
    c.res.writeHead(200).end();
  }

  async #handle(req: IncomingMessage, res: ServerResponse) {
    const c: Ctx = {
      req,
      res,
      op: 'Unknown',
      keyId: null,
      bucket: null,
      key: null,
      bytes: 0,
      clientIp: req.socket.remoteAddress ?? '',
      requestId: newId(),
    };
    res.setHeader('x-amz-request-id', c.requestId);
    res.setHeader('Server', 'cdp-storage');
    try {
      await this.#route(c);
      this.#audit(c, 'ok', res.statusCode, null);
    } catch (err) {
      const se =
        err instanceof StorageError
          ? err
          : new StorageError('InternalError', 500, 'internal error; see the server log', {
              cause: err,
            });
      if (se.status >= 500) this.#log.error({ err }, 'storage request failed');
      this.#audit(c, se.status < 500 ? 'refused' : 'error', se.status, se.s3Code);
      this.#sendError(c, se);
    }
  }

  #sendError(c: Ctx, e: StorageError) {
    const { req, res } = c;
    if (res.headersSent) {
      res.destroy();
      return;
    }
    this.#corsHeaders(c);
    const resource = (req.url ?? '/').split('?')[0]!;
    const body =
      `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${e.s3Code}</Code><Message>${xmlEscape(e.message)}</Message>` +
      `<Resource>${xmlEscape(resource)}</Resource><RequestId>${c.requestId}</RequestId></Error>`;
    const headers: Record<string, string | number> = { 'Content-Type': 'application/xml' };
    const size = (e as StorageError & { size?: number }).size;
    if (e.s3Code === 'InvalidRange' && size !== undefined)
      headers['Content-Range'] = `bytes */${size}`;
    // Refuse the rest of an upload we will not read: close after answering.
    if (!req.complete) headers.Connection = 'close';
    if (req.method === 'HEAD') {
      res.writeHead(e.status, headers).end();
    } else {
      headers['Content-Length'] = Buffer.byteLength(body);
      res.writeHead(e.status, headers).end(body);
    }
    if (!req.complete) req.resume();
  }

  async #route(c: Ctx): Promise<void> {
    const { req } = c;
    const rawUrl = req.url ?? '/';
    const q = rawUrl.indexOf('?');
    const rawPath = q < 0 ? rawUrl : rawUrl.slice(0, q);
    if (!rawPath.startsWith('/'))
      throw new StorageError('InvalidURI', 400, 'the request target must be a path');
    let path: string;
    try {
      path = utf8OrThrow(percentDecode(rawPath), 'path');
    } catch (err) {
      throw new StorageError('InvalidURI', 400, (err as Error).message);
    }
    const slash = path.indexOf('/', 1);
    const bucket = slash < 0 ? path.slice(1) : path.slice(1, slash);
    const key = slash < 0 ? '' : path.slice(slash + 1);
    c.bucket = bucket || null;
    c.key = key || null;
    if (bucket && !BUCKET_RE.test(bucket)) {
      throw new StorageError(
        'InvalidBucketName',
        400,
        'bucket names are 3-63 characters of a-z 0-9 . -',
      );
    }
    const method = req.method ?? 'GET';
    if (method === 'OPTIONS') {
      this.#preflight(c);
      return;
    }
    // The operation, from method, path and sub-resource parameters.
    const params = new Map<string, string>();
    if (q >= 0) {
      for (const part of rawUrl.slice(q + 1).split('&')) {
        if (!part) continue;
        const i = part.indexOf('=');
        try {
          const k = utf8OrThrow(percentDecode(i < 0 ? part : part.slice(0, i)), 'query');
          params.set(k, i < 0 ? '' : utf8OrThrow(percentDecode(part.slice(i + 1)), 'query'));
        } catch (err) {
          throw new StorageError('InvalidURI', 400, (err as Error).message);
        }
      }
    }
    const isForm =
      method === 'POST' &&
      bucket &&
      !key &&
      /^multipart\/form-data/i.test(req.headers['content-type'] ?? '');
    let op: S3Op;
    if (!bucket) {
      if (method !== 'GET')
        throw new StorageError('MethodNotAllowed', 405, 'only GET is allowed on /');
      op = 'ListBuckets';
    } else if (!key) {
      if (isForm) op = 'PostObject';
      else if (method === 'PUT') op = 'CreateBucket';
      else if (method === 'HEAD') op = 'HeadBucket';
      else if (method === 'DELETE') op = 'DeleteBucket';
      else if (method === 'GET') {
        if (params.get('list-type') !== '2') {
          throw new StorageError(
            'NotImplemented',
            501,
            'only ListObjectsV2 (list-type=2) is supported',
          );
        }
        op = 'ListObjectsV2';
      } else
        throw new StorageError('MethodNotAllowed', 405, `${method} is not allowed on a bucket`);
    } else if (method === 'PUT') {
      if (params.has('uploadId')) op = 'UploadPart';
      else if (req.headers['x-amz-copy-source'] !== undefined) op = 'CopyObject';
      else op = 'PutObject';
    } else if (method === 'GET') op = 'GetObject';
    else if (method === 'HEAD') op = 'HeadObject';
    else if (method === 'DELETE')
      op = params.has('uploadId') ? 'AbortMultipartUpload' : 'DeleteObject';
    else if (method === 'POST' && params.has('uploads')) op = 'CreateMultipartUpload';
    else if (method === 'POST' && params.has('uploadId')) op = 'CompleteMultipartUpload';
    else throw new StorageError('MethodNotAllowed', 405, `${method} is not allowed on an object`);
    c.op = op;

    if (op === 'PostObject') {
      await this.#postObject(c, bucket);
      return;
    }

    // Authenticate.
    const named =
      /Credential=([^/,\s]+)\//.exec(String(req.headers.authorization ?? ''))?.[1] ??
      params.get('X-Amz-Credential')?.split('/')[0];
    if (named && this.#o.keys.prepare) await this.#o.keys.prepare(named);
    const now = this.#clock.now();
    const auth = verifyRequest(
      { method, url: rawUrl, headers: req.headersDistinct as Record<string, string[]> },
      { region: this.#region, now, lookup: (id) => this.#o.keys.lookup(id) },
    );
    c.keyId = auth.accessKeyId;
    const chunked = auth.payloadHash.startsWith('STREAMING-');
    const declared = chunked
      ? Number(req.headers['x-amz-decoded-content-length'] ?? Number.NaN)
      : req.headers['content-length'] !== undefined
        ? Number(req.headers['content-length'])
        : undefined;
    let copySource: { bucket: string; key: string } | undefined;
    if (op === 'CopyObject')
      copySource = this.#copySource(req.headers['x-amz-copy-source'] as string);
    const access: AccessRequest = {
      accessKeyId: auth.accessKeyId,
      op,
      method,
      bucket,
      key: key || undefined,
      clientIp: c.clientIp,
      auth,
      contentLength: declared !== undefined && Number.isFinite(declared) ? declared : undefined,
      sizeSigned: auth.signedHeaders.includes(
        chunked ? 'x-amz-decoded-content-length' : 'content-length',
      ),
    };
    if (copySource) access.copySource = copySource;
    const decision = (await this.#o.keys.authorize?.(access)) ?? {};
    this.#corsHeaders(c);
    const responseOverrides = (h: Record<string, string>) => {
      for (const [p, hn] of [
        ['response-content-type', 'Content-Type'],
        ['response-content-disposition', 'Content-Disposition'],
        ['response-cache-control', 'Cache-Control'],
        ['response-content-language', 'Content-Language'],
        ['response-expires', 'Expires'],
        ['response-content-encoding', 'Content-Encoding'],
      ] as const) {
        const v = params.get(p);
        if (v !== undefined) h[hn] = v;
      }
    };

    switch (op) {
      case 'ListBuckets':
        return this.#listBuckets(c);
      case 'CreateBucket': {
        await this.#drain(req);
        await mkdir(this.#bucketDir(bucket), { recursive: true });
        c.res.writeHead(200, { Location: `/${bucket}`, 'Content-Length': 0 }).end();
        return;
      }
      case 'HeadBucket': {
        if (!(await this.#bucketExists(bucket))) throw notFoundBucket(bucket);
        c.res.writeHead(200, { 'x-amz-bucket-region': this.#region }).end();
        return;
      }
      case 'DeleteBucket': {
        const s = await this.#store(bucket);
        const page = await s.list({ maxKeys: 1 });
        if (page.objects.length)
          throw new StorageError(
            'BucketNotEmpty',
            409,
            'the bucket is not empty; delete its objects first',
          );
        this.#stores.delete(bucket);
        await rm(this.#bucketDir(bucket), { recursive: true, force: true });
        c.res.writeHead(204).end();
        return;
      }
      case 'ListObjectsV2':
        return this.#listObjects(c, bucket, params);
      case 'PutObject': {
        const s = await this.#store(bucket);
        const info = await this.#receive(c, auth, decision, (body, o) =>
          s.put(key, body, {
            ...o,
            contentType: this.#contentType(req),
            metadata: this.#userMeta(req),
          }),
        );
        c.res.writeHead(200, { ETag: `"${info.etag}"`, 'Content-Length': 0 }).end();
        return;
      }
      case 'GetObject':
      case 'HeadObject': {
        const s = await this.#store(bucket);
        if (op === 'HeadObject') {
          const info = await s.head(key);
          if (!info) throw new StorageError('NoSuchKey', 404, 'no such key');
          const h = this.#objectHeaders(info);
          h['Content-Length'] = String(info.size);
          responseOverrides(h);
          const inm = req.headers['if-none-match'];
          if (inm?.split(',').some((t) => t.trim() === `"${info.etag}"` || t.trim() === '*')) {
            c.res.writeHead(304, h).end();
            return;
          }
          c.res.writeHead(200, h).end();
          return;
        }
        const range = parseRangeHeader(req.headers.range);
        if (range === 'invalid') {
          const info = await s.head(key);
          if (!info) throw new StorageError('NoSuchKey', 404, 'no such key');
          const e = new StorageError(
            'InvalidRange',
            416,
            'the Range header is not a valid single byte range',
          );
          (e as StorageError & { size: number }).size = info.size;
          throw e;
        }
        const got = await s.get(key, range ? { range } : {});
        const h = this.#objectHeaders(got.info);
        responseOverrides(h);
        const inm = req.headers['if-none-match'];
        if (inm?.split(',').some((t) => t.trim() === `"${got.info.etag}"` || t.trim() === '*')) {
          got.body.destroy();
          c.res.writeHead(304, h).end();
          return;
        }
        const len = got.range ? got.range.end - got.range.start + 1 : got.info.size;
        h['Content-Length'] = String(len);
        if (got.range)
          h['Content-Range'] = `bytes ${got.range.start}-${got.range.end}/${got.info.size}`;
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
        this.#metrics?.bytes.inc({ direction: 'out' }, c.bytes);
        return;
      }
      case 'DeleteObject': {
        const s = await this.#store(bucket);
        await s.delete(key);
        c.res.writeHead(204).end();
        return;
      }
      case 'CopyObject': {
        const src = copySource!;
        const from = await this.#store(src.bucket);
        const to = await this.#store(bucket);
        const replace =
          String(req.headers['x-amz-metadata-directive'] ?? 'COPY').toUpperCase() === 'REPLACE';
        let info: ObjectInfo;
        if (src.bucket === bucket) {
          info = await to.copy(
            src.key,
            key,
            replace ? { metadata: this.#userMeta(req), contentType: this.#contentType(req) } : {},
          );
        } else {
          const got = await from.get(src.key);
          info = await to.put(key, got.body, {
            contentType: replace ? this.#contentType(req) : got.info.contentType,
            metadata: replace ? this.#userMeta(req) : got.info.metadata,
            etag: got.info.etag,
          });
        }
        await this.#drain(req);
        this.#xml(
          c,
          200,
          `<CopyObjectResult xmlns="${XMLNS}"><LastModified>${isoDate(info.lastModified)}</LastModified><ETag>"${info.etag}"</ETag></CopyObjectResult>`,
        );
        return;
      }
      case 'CreateMultipartUpload': {
        await this.#store(bucket);
        await this.#drain(req);
        const uploadId = newId().replaceAll('-', '');
        await this.#uploads!.put(
          `${uploadId}/meta`,
          JSON.stringify({
            bucket,
            key,
            contentType: this.#contentType(req),
            metadata: this.#userMeta(req),
          }),
        );
        this.#xml(
          c,
          200,
          `<InitiateMultipartUploadResult xmlns="${XMLNS}"><Bucket>${xmlEscape(bucket)}</Bucket><Key>${xmlEscape(key)}</Key><UploadId>${uploadId}</UploadId></InitiateMultipartUploadResult>`,
        );
        return;
      }
      case 'UploadPart': {
        const uploadId = params.get('uploadId')!;
        const n = Number(params.get('partNumber'));
        if (!Number.isInteger(n) || n < 1 || n > 10000)
          throw new StorageError('InvalidArgument', 400, 'partNumber must be 1..10000');
        await this.#uploadMeta(uploadId, bucket, key);
        const info = await this.#receive(c, auth, decision, (body, o) =>
          this.#uploads!.put(`${uploadId}/part/${String(n).padStart(5, '0')}`, body, o),
        );
        c.res.writeHead(200, { ETag: `"${info.etag}"`, 'Content-Length': 0 }).end();
        return;
      }
      case 'CompleteMultipartUpload':
        return this.#complete(c, params.get('uploadId')!, bucket, key);
      case 'AbortMultipartUpload': {
        const uploadId = params.get('uploadId')!;
        await this.#uploadMeta(uploadId, bucket, key);
        await this.#dropUpload(uploadId);
        c.res.writeHead(204).end();
        return;
      }
    }
  }

  #copySource(raw: string): { bucket: string; key: string } {
    let s: string;
    try {
      s = utf8OrThrow(percentDecode(raw.split('?')[0]!), 'x-amz-copy-source');
    } catch (err) {
      throw new StorageError('InvalidArgument', 400, (err as Error).message);
    }
    if (s.startsWith('/')) s = s.slice(1);
    const i = s.indexOf('/');
    if (i < 1 || i === s.length - 1)
      throw new StorageError('InvalidArgument', 400, 'x-amz-copy-source must be bucket/key');
    return { bucket: s.slice(0, i), key: s.slice(i + 1) };
  }

  #contentType(req: IncomingMessage): string {
    return req.headers['content-type'] ?? 'application/octet-stream';
  }

  #userMeta(req: IncomingMessage): Record<string, string> {
    const m: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (k.startsWith('x-amz-meta-') && typeof v === 'string') m[k.slice(11)] = v;
    }
    return m;
  }

  #objectHeaders(info: ObjectInfo): Record<string, string> {
    const h: Record<string, string> = {
      ETag: `"${info.etag}"`,
      'Last-Modified': httpDate(info.lastModified),
      'Content-Type': info.contentType,
      'Accept-Ranges': 'bytes',
    };
    for (const [k, v] of Object.entries(info.metadata)) h[`x-amz-meta-${k}`] = v;
    return h;
  }

  #xml(c: Ctx, status: number, inner: string) {
    const body = `<?xml version="1.0" encoding="UTF-8"?>\n${inner}`;
    c.res
      .writeHead(status, {
        'Content-Type': 'application/xml',
        'Content-Length': Buffer.byteLength(body),
      })
      .end(body);
  }

  async #drain(req: IncomingMessage) {
    for await (const _ of req) {
      // discard
    }
  }

  /**
   * Stream the request body into `write`, decoding aws-chunked bodies and enforcing the
   * signed or declared length and the key's cap as the bytes arrive.
   */
  async #receive(
    c: Ctx,
    auth: VerifiedRequest,
    decision: AccessDecision,
    write: (body: Readable, o: PutOptions) => Promise<ObjectInfo>,
  ): Promise<ObjectInfo> {
    const { req } = c;
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
    if (decision.maxBytes !== undefined) {
      if (o.exactBytes !== undefined && o.exactBytes > decision.maxBytes) {
        throw new StorageError(
          'EntityTooLarge',
          400,
          `this key allows at most ${decision.maxBytes} bytes`,
        );
      }
      o.maxBytes = decision.maxBytes;
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
    this.#metrics?.bytes.inc({ direction: 'in' }, c.bytes);
    return info;
  }

  async #listBuckets(c: Ctx) {
    const names = (await readdir(join(this.#o.dir, 'buckets')))
      .filter((n) => BUCKET_RE.test(n))
      .sort();
    const items = await Promise.all(
      names.map(
        async (n) =>
          `<Bucket><Name>${n}</Name><CreationDate>${isoDate((await stat(this.#bucketDir(n))).birthtimeMs)}</CreationDate></Bucket>`,
      ),
    );
    this.#xml(
      c,
      200,
      `<ListAllMyBucketsResult xmlns="${XMLNS}"><Owner><ID>cdp</ID><DisplayName>cdp</DisplayName></Owner><Buckets>${items.join('')}</Buckets></ListAllMyBucketsResult>`,
    );
  }

  async #listObjects(c: Ctx, bucket: string, p: Map<string, string>) {
    const s = await this.#store(bucket);
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
    let x = `<ListBucketResult xmlns="${XMLNS}"><Name>${xmlEscape(bucket)}</Name><Prefix>${enc(p.get('prefix') ?? '')}</Prefix>`;
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
    this.#xml(c, 200, x);
  }

  async #uploadMeta(uploadId: string, bucket: string, key: string) {
    if (!/^[0-9a-f]{32}$/.test(uploadId))
      throw new StorageError('NoSuchUpload', 404, 'no such multipart upload');
    let meta: {
      bucket: string;
      key: string;
      contentType: string;
      metadata: Record<string, string>;
    };
    try {
      const got = await this.#uploads!.get(`${uploadId}/meta`);
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
    if (meta.bucket !== bucket || meta.key !== key)
      throw new StorageError('NoSuchUpload', 404, 'the upload belongs to another object');
    return meta;
  }

  async #dropUpload(uploadId: string) {
    const page = await this.#uploads!.list({ prefix: `${uploadId}/` });
    for (const o of page.objects) await this.#uploads!.delete(o.key);
  }

  async #complete(c: Ctx, uploadId: string, bucket: string, key: string) {
    const meta = await this.#uploadMeta(uploadId, bucket, key);
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
    const s = await this.#store(bucket);
    const infos: ObjectInfo[] = [];
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      if (i > 0 && p.n <= parts[i - 1]!.n)
        throw new StorageError('InvalidPartOrder', 400, 'parts must be listed in ascending order');
      const info = await this.#uploads!.head(`${uploadId}/part/${String(p.n).padStart(5, '0')}`);
      if (!info || info.etag !== p.etag)
        throw new StorageError(
          'InvalidPart',
          400,
          `part ${p.n} was not uploaded or its ETag differs`,
        );
      if (i < parts.length - 1 && info.size < (this.#o.minPartBytes ?? 5 * 1024 * 1024)) {
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
    const uploads = this.#uploads!;
    async function* concat() {
      for (const i of infos) {
        const got = await uploads.get(i.key);
        for await (const ch of got.body) yield ch as Buffer;
      }
    }
    const info = await s.put(key, PassThrough.from(concat()), {
      contentType: meta.contentType,
      metadata: meta.metadata,
      etag,
    });
    await this.#dropUpload(uploadId);
    this.#xml(
      c,
      200,
      `<CompleteMultipartUploadResult xmlns="${XMLNS}"><Location>${xmlEscape(`${this.url}/${bucket}/${key}`)}</Location><Bucket>${xmlEscape(bucket)}</Bucket><Key>${xmlEscape(key)}</Key><ETag>"${info.etag}"</ETag></CompleteMultipartUploadResult>`,
    );
  }

  async #postObject(c: Ctx, bucket: string) {
    const { req } = c;
    const boundary = boundaryOf(req.headers['content-type']);
    const s = await this.#store(bucket);
    const result = await readPostForm(req, boundary, async (fields, file) => {
      let v: VerifiedPost;
      try {
        const cred = fields.find(([n]) => n.toLowerCase() === 'x-amz-credential')?.[1];
        if (cred && this.#o.keys.prepare) await this.#o.keys.prepare(cred.split('/')[0]!);
        v = verifyPostForm(fields, {
          bucket,
          region: this.#region,
          now: this.#clock.now(),
          lookup: (id) => this.#o.keys.lookup(id),
        });
      } catch (err) {
        file.body.resume();
        throw err;
      }
      c.keyId = v.accessKeyId;
      c.key = v.key;
      const decision =
        (await this.#o.keys.authorize?.({
          accessKeyId: v.accessKeyId,
          op: 'PostObject',
          method: 'POST',
          bucket,
          key: v.key,
          clientIp: c.clientIp,
          auth: v,
          contentLength: undefined,
          sizeSigned: v.maxBytes < Number.MAX_SAFE_INTEGER,
        })) ?? {};
      const max = Math.min(v.maxBytes, decision.maxBytes ?? Number.MAX_SAFE_INTEGER);
      const body = counted(file.body, (n) => {
        c.bytes += n;
      });
      const info = await s.put(v.key, body, {
        contentType: v.contentType ?? file.contentType ?? 'application/octet-stream',
        metadata: v.metadata,
        maxBytes: max,
        minBytes: v.minBytes,
      });
      checkPostSize(v, info.size);
      return { info, v };
    });
    this.#corsHeaders(c);
    const status = Number(result.v.fields.success_action_status ?? '204');
    const h = {
      ETag: `"${result.info.etag}"`,
      Location: `${this.url}/${bucket}/${encodeURI(result.info.key)}`,
    };
    if (status === 201) {
      this.#xml(
        c,
        201,
        `<PostResponse><Location>${xmlEscape(h.Location)}</Location><Bucket>${xmlEscape(bucket)}</Bucket><Key>${xmlEscape(result.info.key)}</Key><ETag>"${result.info.etag}"</ETag></PostResponse>`,
      );
      return;
    }
    c.res.writeHead(status === 200 ? 200 : 204, h).end();
  }
}

/**
 * Run the storage server for `cdp storage serve`: prints `listening on http://127.0.0.1:<port>`.
 */
export async function serveStorage(o: {
  dir: string;
  port?: number;
  host?: string;
  accessKeyId: string;
  secretAccessKey: string;
  region?: string;
  logger?: Logger;
  registry?: Registry;
  out?: (line: string) => void;
}): Promise<StorageServer> {
  const opts: StorageServerOptions = {
    dir: o.dir,
    keys: staticKeys([{ accessKeyId: o.accessKeyId, secretAccessKey: o.secretAccessKey }]),
    region: o.region ?? 'us-east-1',
    port: o.port ?? 0,
    host: o.host ?? '127.0.0.1',
  };
  if (o.logger) opts.logger = o.logger;
  if (o.registry) opts.registry = o.registry;
  const s = await StorageServer.start(opts);
  (o.out ?? ((l: string) => process.stdout.write(`${l}\n`)))(`listening on ${s.url}`);
  return s;
}
