/**
 * Where the storage server gets secrets and, optionally, per-key permissions: a KeyResolver
 * (the valet-key service is one), and two plain ones, a fixed list and a chain.
 */
import type { VerifiedPost } from '../sigv4/post-policy.js';
import type { VerifiedRequest } from '../sigv4/verify.js';
import type { S3Op } from './operations.js';

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
  /**
   * Cap on the body size for this request; enforced while streaming. For a multipart upload,
   * the cap holds for the parts' running total and for the completed object.
   */
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
