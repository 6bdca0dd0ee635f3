/**
 * Valet Key service: the application hands clients short-lived, narrowly scoped keys so they
 * move bytes straight to and from storage, and keeps what S3 cannot give it: revocation,
 * size caps, client IP ranges, and an audit log.
 *
 * A valet key is an S3 access key: its id (`cdpv_...`) is what the client signs with, its secret
 * is HMAC(master secret, key id), so every server instance that knows the master secret can
 * verify it; the scope (bucket, object or prefix, methods, expiry, size cap, IP range) is a row
 * in SQL. Revoking or rotating a key id marks the row and NOTIFYs; every instance drops the key
 * from its cache on the notification and also polls every `pollMs` (LISTEN can lose messages
 * across reconnects), so outstanding URLs fail within one second everywhere.
 */
import { createHmac } from 'node:crypto';
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { z } from 'zod';
import {
  type Clock,
  type Logger,
  silentLogger,
  systemClock,
  ValidationError,
} from '../../core/index.js';
import type { Migration, SqlClient } from '../../engines/sql/index.js';
import type { AccessRequest, KeyResolver } from '../server/key-resolver.js';
import type { AuditEvent } from '../server/storage-server.js';
import { createPostPolicy, type PostPolicy } from '../sigv4/post-policy.js';
import { presign, s3ObjectPath } from '../sigv4/sign.js';
import { AuthError } from '../storage-error.js';

export const valetKeyMigrations: Migration[] = [
  {
    module: 'storage',
    version: 1,
    name: 'valet keys and audit log',
    sql: `
CREATE TABLE storage_valet_keys (
  key_id text PRIMARY KEY,
  bucket text NOT NULL,
  scope_kind text NOT NULL CHECK (scope_kind IN ('object', 'prefix')),
  scope text NOT NULL,
  methods text[] NOT NULL,
  max_bytes bigint,
  ip_range text,
  expires_at bigint NOT NULL,
  created_at bigint NOT NULL,
  revoked_at bigint
);
CREATE INDEX storage_valet_keys_revoked ON storage_valet_keys (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE TABLE storage_audit (
  id bigserial PRIMARY KEY,
  at bigint NOT NULL,
  event text NOT NULL,
  key_id text,
  op text,
  bucket text,
  object_key text,
  bytes bigint NOT NULL DEFAULT 0,
  outcome text NOT NULL,
  status int,
  code text,
  client_ip text
);
CREATE INDEX storage_audit_key ON storage_audit (key_id, at);
`,
  },
];

const CHANNEL = 'cdp_storage_revocations';
export type ValetMethod = 'GET' | 'HEAD' | 'PUT' | 'POST' | 'DELETE';

const issueSchema = z.object({
  bucket: z.string().min(3).max(63),
  /** One object... */
  key: z.string().min(1).max(1024).optional(),
  /** ...or every key under a prefix. */
  prefix: z.string().max(1024).optional(),
  methods: z.array(z.enum(['GET', 'HEAD', 'PUT', 'POST', 'DELETE'])).min(1),
  /** Lifetime of the key, seconds (1..604800). */
  expiresIn: z.number().int().min(1).max(604_800),
  maxBytes: z.number().int().min(0).optional(),
  /** CIDR such as `203.0.113.0/24` or `2001:db8::/32`, or one address. */
  ipRange: z.string().optional(),
});
export type IssueValetKey = z.input<typeof issueSchema>;

export interface ValetKey {
  keyId: string;
  secretAccessKey: string;
  bucket: string;
  scopeKind: 'object' | 'prefix';
  scope: string;
  methods: ValetMethod[];
  maxBytes: number | null;
  ipRange: string | null;
  expiresAt: number;
}

interface Row {
  key_id: string;
  bucket: string;
  scope_kind: 'object' | 'prefix';
  scope: string;
  methods: string[];
  max_bytes: number | null;
  ip_range: string | null;
  expires_at: number;
  revoked_at: number | null;
}

export interface ValetKeyServiceOptions {
  sql: SqlClient;
  /** Derives every key's secret: keep it secret, share it between server instances. */
  masterSecret: string;
  /** The storage server's origin, for presigned URLs, e.g. http://127.0.0.1:9000. */
  endpoint: string;
  region?: string;
  clock?: Clock;
  logger?: Logger;
  /** Revocation poll period (the LISTEN fallback). Default 250 ms. */
  pollMs?: number;
}

function ipBlock(range: string): BlockList {
  const bl = new BlockList();
  const [addr, bits] = range.split('/') as [string, string | undefined];
  const type = isIPv4(addr) ? 'ipv4' : isIPv6(addr) ? 'ipv6' : null;
  if (!type)
    throw new ValidationError(`ipRange ${range} is not an IP address or CIDR`, [
      { path: 'ipRange', message: 'bad address' },
    ]);
  if (bits === undefined) bl.addAddress(addr, type);
  else {
    const n = Number(bits);
    if (!Number.isInteger(n) || n < 0 || n > (type === 'ipv4' ? 32 : 128)) {
      throw new ValidationError(`ipRange ${range} has a bad prefix length`, [
        { path: 'ipRange', message: 'bad prefix' },
      ]);
    }
    bl.addSubnet(addr, n, type);
  }
  return bl;
}

function ipAllowed(bl: BlockList, ip: string): boolean {
  const v4 = ip.startsWith('::ffff:') && isIPv4(ip.slice(7)) ? ip.slice(7) : ip;
  if (isIPv4(v4)) return bl.check(v4, 'ipv4');
  if (isIPv6(v4)) return bl.check(v4, 'ipv6');
  return false;
}

const METHOD_OF_OP: Record<AccessRequest['op'], ValetMethod | null> = {
  GetObject: 'GET',
  HeadObject: 'HEAD',
  PutObject: 'PUT',
  PostObject: 'POST',
  DeleteObject: 'DELETE',
  CreateMultipartUpload: 'PUT',
  UploadPart: 'PUT',
  CompleteMultipartUpload: 'PUT',
  AbortMultipartUpload: 'PUT',
  ListParts: 'PUT',
  CopyObject: null,
  ListBuckets: null,
  CreateBucket: null,
  HeadBucket: null,
  DeleteBucket: null,
  ListObjects: null,
  ListObjectsV2: null,
  GetBucketAcl: null,
  PutBucketAcl: null,
  GetBucketVersioning: null,
  GetBucketLocation: null,
  ListMultipartUploads: null,
  DeleteObjects: null,
  GetObjectAcl: null,
  PutObjectAcl: null,
  GetObjectTagging: null,
  PutObjectTagging: null,
  DeleteObjectTagging: null,
};

export class ValetKeyService {
  readonly #o: ValetKeyServiceOptions;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #region: string;
  /** Known keys (loaded on demand); absent = not loaded. */
  readonly #cache = new Map<string, { key: ValetKey; ip: BlockList | null } | null>();
  readonly #revoked = new Set<string>();
  #lastRevocation = 0;
  #unlisten: (() => Promise<void>) | undefined;
  #timer: NodeJS.Timeout | undefined;
  #auditQueue: AuditEvent[] = [];
  #flushing: Promise<void> = Promise.resolve();
  #closed = false;

  private constructor(o: ValetKeyServiceOptions) {
    this.#o = o;
    this.#clock = o.clock ?? systemClock;
    this.#log = o.logger ?? silentLogger();
    this.#region = o.region ?? 'us-east-1';
  }

  /** Open: listens for revocations and starts the poll. Run valetKeyMigrations first. */
  static async open(o: ValetKeyServiceOptions): Promise<ValetKeyService> {
    const s = new ValetKeyService(o);
    s.#lastRevocation = 0;
    await s.#pollRevocations();
    s.#unlisten = await o.sql.listen(CHANNEL, (payload) => s.#markRevoked(payload), {
      onReconnect: () => void s.#pollRevocations(),
    });
    s.#timer = setInterval(() => {
      void s.#pollRevocations().catch((err) => s.#log.warn({ err }, 'revocation poll failed'));
      void s.#flushAudit();
    }, o.pollMs ?? 250);
    return s;
  }

  secretFor(keyId: string): string {
    return createHmac('sha256', this.#o.masterSecret).update(keyId).digest('base64url');
  }

  #markRevoked(keyId: string) {
    this.#revoked.add(keyId);
    this.#cache.delete(keyId);
  }

  async #pollRevocations() {
    if (this.#closed) return;
    const r = await this.#o.sql.query<{ key_id: string; revoked_at: number }>(
      'SELECT key_id, revoked_at FROM storage_valet_keys WHERE revoked_at IS NOT NULL AND revoked_at >= $1',
      [this.#lastRevocation],
    );
    for (const row of r.rows) {
      this.#markRevoked(row.key_id);
      if (row.revoked_at > this.#lastRevocation) this.#lastRevocation = row.revoked_at;
    }
  }

  /** Issue a key. Writes an `issue` audit record. */
  async issue(input: IssueValetKey): Promise<ValetKey> {
    const p = issueSchema.parse(input);
    if ((p.key === undefined) === (p.prefix === undefined)) {
      throw new ValidationError('give exactly one of key (one object) or prefix', [
        { path: 'key', message: 'key xor prefix' },
      ]);
    }
    if (p.ipRange) ipBlock(p.ipRange);
    const now = this.#clock.now();
    const keyId = `cdpv_${Buffer.from(crypto.getRandomValues(new Uint8Array(15))).toString('hex')}`;
    const key: ValetKey = {
      keyId,
      secretAccessKey: this.secretFor(keyId),
      bucket: p.bucket,
      scopeKind: p.key !== undefined ? 'object' : 'prefix',
      scope: p.key ?? p.prefix!,
      methods: p.methods,
      maxBytes: p.maxBytes ?? null,
      ipRange: p.ipRange ?? null,
      expiresAt: now + p.expiresIn * 1000,
    };
    await this.#o.sql.query(
      `INSERT INTO storage_valet_keys (key_id, bucket, scope_kind, scope, methods, max_bytes, ip_range, expires_at, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
      [
        keyId,
        key.bucket,
        key.scopeKind,
        key.scope,
        key.methods,
        key.maxBytes,
        key.ipRange,
        key.expiresAt,
        now,
      ],
    );
    await this.#o.sql.query(
      `INSERT INTO storage_audit (at, event, key_id, bucket, object_key, outcome) VALUES ($1, 'issue', $2, $3, $4, 'ok')`,
      [now, keyId, key.bucket, key.scope],
    );
    return key;
  }

  /** Revoke a key id: every outstanding URL signed with it fails on every instance within ~1 s. */
  async revoke(keyId: string): Promise<void> {
    const now = this.#clock.now();
    await this.#o.sql.transaction(async (tx) => {
      await tx.query(
        'UPDATE storage_valet_keys SET revoked_at = $2 WHERE key_id = $1 AND revoked_at IS NULL',
        [keyId, now],
      );
      await tx.query(
        `INSERT INTO storage_audit (at, event, key_id, outcome) VALUES ($1, 'revoke', $2, 'ok')`,
        [now, keyId],
      );
      await tx.notify(CHANNEL, keyId);
    });
    this.#markRevoked(keyId);
  }

  /** Rotate: revoke the id and issue a new key with the same scope and remaining lifetime. */
  async rotate(keyId: string): Promise<ValetKey> {
    const old = await this.#load(keyId);
    if (!old)
      throw new ValidationError(`valet key ${keyId} does not exist`, [
        { path: 'keyId', message: 'unknown' },
      ]);
    const remaining = Math.max(1, Math.ceil((old.key.expiresAt - this.#clock.now()) / 1000));
    await this.revoke(keyId);
    const input: IssueValetKey = {
      bucket: old.key.bucket,
      methods: old.key.methods,
      expiresIn: Math.min(remaining, 604_800),
      ...(old.key.scopeKind === 'object' ? { key: old.key.scope } : { prefix: old.key.scope }),
    };
    if (old.key.maxBytes !== null) input.maxBytes = old.key.maxBytes;
    if (old.key.ipRange !== null) input.ipRange = old.key.ipRange;
    return this.issue(input);
  }

  /** A presigned URL for one object under the key. PUT with a size signs Content-Length. */
  presignUrl(
    key: ValetKey,
    o: {
      method: 'GET' | 'HEAD' | 'PUT' | 'DELETE';
      objectKey?: string;
      expiresIn?: number;
      contentLength?: number;
      /** Another origin than the service's (one instance of several, in tests). */
      endpoint?: string;
    },
  ): string {
    const objectKey = o.objectKey ?? (key.scopeKind === 'object' ? key.scope : undefined);
    if (objectKey === undefined)
      throw new ValidationError('objectKey is required for a prefix key', [
        { path: 'objectKey', message: 'required' },
      ]);
    const now = this.#clock.now();
    const u = new URL(o.endpoint ?? this.#o.endpoint);
    const headers: Record<string, string> = {};
    if (o.contentLength !== undefined) headers['content-length'] = String(o.contentLength);
    const expiresIn = Math.min(
      o.expiresIn ?? 900,
      Math.max(1, Math.floor((key.expiresAt - now) / 1000)),
    );
    return presign({
      method: o.method,
      protocol: u.protocol,
      host: u.host,
      path: s3ObjectPath(key.bucket, objectKey),
      headers,
      credentials: { accessKeyId: key.keyId, secretAccessKey: key.secretAccessKey },
      region: this.#region,
      date: now,
      expiresIn,
    }).url;
  }

  /** A browser POST policy for the key (size capped by the key's maxBytes). */
  postPolicy(
    key: ValetKey,
    o: { objectKey?: string; contentType?: string; expiresIn?: number } = {},
  ): PostPolicy & { url: string } {
    const now = this.#clock.now();
    const objectKey = o.objectKey ?? key.scope;
    const policy = createPostPolicy({
      bucket: key.bucket,
      key: objectKey,
      keyIsPrefix: key.scopeKind === 'prefix' && o.objectKey === undefined,
      credentials: { accessKeyId: key.keyId, secretAccessKey: key.secretAccessKey },
      region: this.#region,
      now,
      expiresIn: Math.min(
        o.expiresIn ?? 900,
        Math.max(1, Math.floor((key.expiresAt - now) / 1000)),
      ),
      ...(key.maxBytes !== null ? { maxBytes: key.maxBytes } : {}),
      ...(o.contentType !== undefined ? { contentType: o.contentType } : {}),
    });
    return { ...policy, url: `${this.#o.endpoint.replace(/\/$/, '')}/${key.bucket}` };
  }

  async #load(keyId: string): Promise<{ key: ValetKey; ip: BlockList | null } | null> {
    if (this.#cache.has(keyId)) return this.#cache.get(keyId)!;
    const r = await this.#o.sql.query<Row>('SELECT * FROM storage_valet_keys WHERE key_id = $1', [
      keyId,
    ]);
    const row = r.rows[0];
    if (!row || row.revoked_at !== null) {
      if (row) this.#revoked.add(keyId);
      return null;
    }
    const key: ValetKey = {
      keyId,
      secretAccessKey: this.secretFor(keyId),
      bucket: row.bucket,
      scopeKind: row.scope_kind,
      scope: row.scope,
      methods: row.methods as ValetMethod[],
      maxBytes: row.max_bytes,
      ipRange: row.ip_range,
      expiresAt: Number(row.expires_at),
    };
    const entry = { key, ip: row.ip_range ? ipBlock(row.ip_range) : null };
    if (!this.#revoked.has(keyId)) this.#cache.set(keyId, entry);
    return entry;
  }

  /** The KeyResolver to give the storage server (chain it with the root keys). */
  resolver(): KeyResolver & { prepare(accessKeyId: string): Promise<void> } {
    return {
      prepare: async (id) => {
        if (id.startsWith('cdpv_') && !this.#revoked.has(id)) await this.#load(id);
      },
      lookup: (id) => {
        if (!id.startsWith('cdpv_') || this.#revoked.has(id)) return undefined;
        const e = this.#cache.get(id);
        return e ? { secretAccessKey: e.key.secretAccessKey } : undefined;
      },
      authorize: (r) => this.#authorize(r),
    };
  }

  #authorize(r: AccessRequest) {
    const e = this.#cache.get(r.accessKeyId);
    if (!e || this.#revoked.has(r.accessKeyId))
      throw new AuthError('AccessDenied', 403, 'this valet key was revoked');
    const k = e.key;
    if (this.#clock.now() > k.expiresAt)
      throw new AuthError('AccessDenied', 403, 'this valet key has expired');
    const method = METHOD_OF_OP[r.op];
    if (method === null || !k.methods.includes(method)) {
      throw new AuthError('AccessDenied', 403, `this valet key does not allow ${r.op}`);
    }
    const inScope = (bucket: string | undefined, key: string | undefined) =>
      bucket === k.bucket &&
      key !== undefined &&
      (k.scopeKind === 'object' ? key === k.scope : key.startsWith(k.scope));
    if (!inScope(r.bucket, r.key))
      throw new AuthError('AccessDenied', 403, 'the object is outside this valet key scope');
    if (e.ip && !ipAllowed(e.ip, r.clientIp)) {
      throw new AuthError('AccessDenied', 403, 'this valet key is not valid from your address');
    }
    if (k.maxBytes !== null) return { maxBytes: k.maxBytes };
    return undefined;
  }

  /** Give this as the server's onAudit: events are written to storage_audit in batches. */
  audit = (e: AuditEvent): void => {
    if (this.#closed) return;
    this.#auditQueue.push(e);
  };

  #flushAudit(): Promise<void> {
    this.#flushing = this.#flushing.then(async () => {
      const batch = this.#auditQueue;
      if (batch.length === 0) return;
      this.#auditQueue = [];
      const values: unknown[] = [];
      const rows: string[] = [];
      for (const e of batch) {
        const b = values.length;
        rows.push(
          `($${b + 1}, 'use', $${b + 2}, $${b + 3}, $${b + 4}, $${b + 5}, $${b + 6}, $${b + 7}, $${b + 8}, $${b + 9}, $${b + 10})`,
        );
        values.push(
          e.at,
          e.keyId,
          e.op,
          e.bucket,
          e.key,
          e.bytes,
          e.outcome,
          e.status,
          e.code,
          e.clientIp,
        );
      }
      await this.#o.sql
        .query(
          `INSERT INTO storage_audit (at, event, key_id, op, bucket, object_key, bytes, outcome, status, code, client_ip) VALUES ${rows.join(', ')}`,
          values as never,
        )
        .catch((err) => this.#log.error({ err }, 'audit write failed'));
    });
    return this.#flushing;
  }

  /** Audit rows for a key id, oldest first. */
  async auditFor(keyId: string) {
    await this.#flushAudit();
    const r = await this.#o.sql.query<{
      event: string;
      op: string | null;
      object_key: string | null;
      bytes: number;
      outcome: string;
      code: string | null;
    }>(
      'SELECT event, op, object_key, bytes, outcome, code FROM storage_audit WHERE key_id = $1 ORDER BY id',
      [keyId],
    );
    return r.rows;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    clearInterval(this.#timer);
    await this.#flushAudit();
    this.#closed = true;
    await this.#unlisten?.();
  }
}
