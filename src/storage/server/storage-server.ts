/**
 * An S3-compatible storage server (path-style addressing) over node:http, backed by
 * FsBlobStore. This file holds the server's life (start, close), the request's way through it
 * (parse the path, classify, authenticate, dispatch to the handler of the operation) and the
 * S3-shaped error answers. Classification is in `operations.ts`, authentication in `auth.ts`,
 * the handlers per resource in `*-handlers.ts`.
 *
 * Every request is authenticated with SigV4 (Authorization header or presigned query) or a
 * signed POST policy. A KeyResolver supplies secrets and may narrow what a key can do (the
 * valet-key service plugs in here); the body is counted while it streams and refused the
 * moment it passes a signed Content-Length or a key's size cap.
 */
import { mkdir } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import {
  type Clock,
  type Logger,
  newId,
  type Registry,
  silentLogger,
  systemClock,
} from '../../core/index.js';
import { counter } from '../../core/metrics.js';
import { FsBlobStore } from '../blob/fs-blob-store.js';
import { percentDecode, utf8OrThrow } from '../internal/uri-encoding.js';
import { StorageError } from '../storage-error.js';
import { authenticate } from './auth.js';
import {
  createBucket,
  deleteBucket,
  getBucketAcl,
  getBucketLocation,
  getBucketVersioning,
  headBucket,
  putBucketAcl,
} from './bucket-handlers.js';
import { Buckets, invalidBucketName, isBucketName } from './buckets.js';
import {
  type ConnectionLimits,
  DEFAULT_LIMITS,
  guardConnections,
  isRefusedConnection,
  wasCutForRate,
  watchBodyRate,
} from './connection-limits.js';
import type { Authed, Ctx, ServerEnv, ServerMetrics } from './context.js';
import { type CorsRule, corsHeaders, preflight } from './cors.js';
import { deleteObjects } from './delete-objects.js';
import type { KeyResolver } from './key-resolver.js';
import { listObjects, listObjectsV2 } from './list-handlers.js';
import {
  abortMultipartUpload,
  completeMultipartUpload,
  createMultipartUpload,
  listMultipartUploads,
  listParts,
  sweepUploads,
  uploadPart,
} from './multipart-handlers.js';
import {
  copyObject,
  deleteObject,
  deleteObjectTagging,
  getObject,
  getObjectAcl,
  getObjectTagging,
  headObject,
  putObject,
  putObjectAcl,
  putObjectTagging,
} from './object-handlers.js';
import { classify, type S3Op } from './operations.js';
import { postObject } from './post-object.js';
import { listBuckets } from './service-handlers.js';
import { xmlEscape } from './xml.js';

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
  /** Time limits, body rate and connections per client: see ConnectionLimits for defaults. */
  limits?: Partial<ConnectionLimits>;
  /**
   * Multipart uploads initiated longer ago than this are dropped by the sweep (default 7
   * days, as a typical S3 lifecycle rule for incomplete uploads).
   */
  abandonedUploadMs?: number;
  /** How often the sweep runs, on the clock (default 1 hour; 0 turns it off). */
  sweepEveryMs?: number;
}

type Handler = (c: Authed) => Promise<void>;

/** The handler of each operation that goes through SigV4 (PostObject has its own policy). */
const HANDLERS: Record<Exclude<S3Op, 'PostObject'>, Handler> = {
  ListBuckets: listBuckets,
  CreateBucket: createBucket,
  HeadBucket: headBucket,
  DeleteBucket: deleteBucket,
  ListObjects: listObjects,
  ListObjectsV2: listObjectsV2,
  GetBucketAcl: getBucketAcl,
  PutBucketAcl: putBucketAcl,
  GetBucketVersioning: getBucketVersioning,
  GetBucketLocation: getBucketLocation,
  ListMultipartUploads: listMultipartUploads,
  DeleteObjects: deleteObjects,
  PutObject: putObject,
  GetObject: getObject,
  HeadObject: headObject,
  DeleteObject: deleteObject,
  CopyObject: copyObject,
  GetObjectAcl: getObjectAcl,
  PutObjectAcl: putObjectAcl,
  GetObjectTagging: getObjectTagging,
  PutObjectTagging: putObjectTagging,
  DeleteObjectTagging: deleteObjectTagging,
  CreateMultipartUpload: createMultipartUpload,
  UploadPart: uploadPart,
  ListParts: listParts,
  CompleteMultipartUpload: completeMultipartUpload,
  AbortMultipartUpload: abortMultipartUpload,
};

export class StorageServer {
  readonly #o: StorageServerOptions;
  readonly #server: Server;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #region: string;
  readonly #cors: Map<string, CorsRule[]>;
  readonly #metrics: ServerMetrics | null;
  readonly #buckets: Buckets;
  readonly #limits: ConnectionLimits;
  readonly #stop = new AbortController();
  #sweeping: Promise<void> | undefined;
  #env: ServerEnv | undefined;
  #port = 0;

  private constructor(o: StorageServerOptions) {
    this.#o = o;
    this.#clock = o.clock ?? systemClock;
    this.#log = o.logger ?? silentLogger();
    this.#region = o.region ?? 'us-east-1';
    this.#cors = new Map(Object.entries(o.cors ?? {}));
    this.#buckets = new Buckets({
      root: join(o.dir, 'buckets'),
      clock: this.#clock,
      fsync: o.fsync ?? true,
    });
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
    this.#limits = { ...DEFAULT_LIMITS, ...o.limits };
    const l = this.#limits;
    this.#server = createServer(
      {
        // The whole-request timeout stays off: a long upload at a good rate is legitimate.
        // Trickled bodies are cut by the body-rate watch, trickled headers by headersTimeout.
        requestTimeout: 0,
        headersTimeout: l.headersTimeoutMs,
        keepAliveTimeout: l.keepAliveTimeoutMs,
        connectionsCheckingInterval: Math.max(10, Math.min(1000, l.headersTimeoutMs / 4)),
      },
      (req, res) => {
        if (isRefusedConnection(req.socket)) return;
        watchBodyRate(req, res, l, this.#clock);
        void this.#handle(req, res);
      },
    );
    this.#server.timeout = l.idleTimeoutMs;
    guardConnections(this.#server, l);
  }

  static async start(o: StorageServerOptions): Promise<StorageServer> {
    const s = new StorageServer(o);
    await mkdir(join(o.dir, 'buckets'), { recursive: true });
    const uploads = await FsBlobStore.open({
      dir: join(o.dir, 'uploads'),
      clock: s.#clock,
      fsync: o.fsync ?? true,
    });
    const self = s;
    s.#env = {
      clock: s.#clock,
      region: s.#region,
      get url() {
        return self.url;
      },
      keys: o.keys,
      buckets: s.#buckets,
      uploads,
      cors: s.#cors,
      metrics: s.#metrics,
      minPartBytes: o.minPartBytes ?? 5 * 1024 * 1024,
    };
    await new Promise<void>((resolve, reject) => {
      s.#server.once('error', reject);
      s.#server.listen(o.port ?? 0, o.host ?? '127.0.0.1', () => resolve());
    });
    s.#port = (s.#server.address() as AddressInfo).port;
    const every = o.sweepEveryMs ?? 3_600_000;
    if (every > 0) s.#sweeping = s.#sweepLoop(every);
    return s;
  }

  /**
   * Drop the multipart uploads initiated more than `abandonedUploadMs` ago (by the clock);
   * returns how many. Runs every `sweepEveryMs` on its own.
   */
  sweepUploads(): Promise<number> {
    return sweepUploads(this.#env!, this.#o.abandonedUploadMs ?? 7 * 86_400_000);
  }

  async #sweepLoop(every: number): Promise<void> {
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      try {
        await this.#clock.sleep(every, signal);
      } catch {
        return;
      }
      try {
        const n = await this.sweepUploads();
        if (n) this.#log.info({ dropped: n }, 'dropped abandoned multipart uploads');
      } catch (err) {
        this.#log.error({ err }, 'sweeping abandoned multipart uploads failed');
      }
    }
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
    this.#stop.abort();
    await this.#sweeping;
    await new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }

  // -------------------------------------------------------------------------------------------

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

  async #handle(req: IncomingMessage, res: ServerResponse) {
    const c: Ctx = {
      env: this.#env!,
      req,
      res,
      op: 'Unknown',
      keyId: null,
      bucket: null,
      key: null,
      bytes: 0,
      clientIp: req.socket.remoteAddress ?? '',
      requestId: newId(),
      params: new Map(),
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
          : wasCutForRate(req)
            ? new StorageError('RequestTimeout', 408, 'the body arrived too slowly', { cause: err })
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
    corsHeaders(c);
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
    if (bucket && !isBucketName(bucket)) throw invalidBucketName(bucket);
    if ((req.method ?? 'GET') === 'OPTIONS') {
      preflight(c);
      return;
    }
    if (q >= 0) {
      for (const part of rawUrl.slice(q + 1).split('&')) {
        if (!part) continue;
        const i = part.indexOf('=');
        try {
          const k = utf8OrThrow(percentDecode(i < 0 ? part : part.slice(0, i)), 'query');
          c.params.set(k, i < 0 ? '' : utf8OrThrow(percentDecode(part.slice(i + 1)), 'query'));
        } catch (err) {
          throw new StorageError('InvalidURI', 400, (err as Error).message);
        }
      }
    }
    const op = classify(req, bucket, key, c.params);
    c.op = op;
    if (op === 'PostObject') {
      await postObject(c, bucket);
      return;
    }
    const a = await authenticate(c, op, bucket, key);
    corsHeaders(a);
    await HANDLERS[op](a);
  }
}
