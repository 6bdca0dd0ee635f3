/**
 * Authentication and authorization of a request: SigV4 (Authorization header or presigned
 * query) against the KeyResolver's secrets, then the resolver's decision for this operation.
 */
import { percentDecode, utf8OrThrow } from '../internal/uri-encoding.js';
import { verifyRequest } from '../sigv4/verify.js';
import { hasV2QueryAuth, verifyQueryV2 } from '../sigv4/verify-v2.js';
import { StorageError } from '../storage-error.js';
import { invalidBucketName, isBucketName } from './buckets.js';
import type { Authed, Ctx } from './context.js';
import type { AccessRequest } from './key-resolver.js';
import type { S3Op } from './operations.js';

/** The bucket and key an `x-amz-copy-source` header names. */
export function parseCopySource(raw: string): { bucket: string; key: string } {
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
  const bucket = s.slice(0, i);
  if (!isBucketName(bucket)) throw invalidBucketName(bucket);
  return { bucket, key: s.slice(i + 1) };
}

export async function authenticate(c: Ctx, op: S3Op, bucket: string, key: string): Promise<Authed> {
  const { req, env } = c;
  const method = req.method ?? 'GET';
  const named =
    /Credential=([^/,\s]+)\//.exec(String(req.headers.authorization ?? ''))?.[1] ??
    c.params.get('X-Amz-Credential')?.split('/')[0] ??
    c.params.get('AWSAccessKeyId');
  if (named && env.keys.prepare) await env.keys.prepare(named);
  const parts = {
    method,
    url: req.url ?? '/',
    headers: req.headersDistinct as Record<string, string[]>,
  };
  const lookup = (id: string) => env.keys.lookup(id);
  const now = env.clock.now();
  const auth = hasV2QueryAuth(parts.url)
    ? verifyQueryV2(parts, { now, lookup })
    : verifyRequest(parts, {
        region: env.region,
        // S3's legacy name for us-east-1, which s3cmd's default configuration signs with.
        ...(env.region === 'us-east-1' ? { regionAliases: ['US'] } : {}),
        now,
        lookup,
      });
  c.keyId = auth.accessKeyId;
  const chunked = auth.payloadHash.startsWith('STREAMING-');
  const declared = chunked
    ? Number(req.headers['x-amz-decoded-content-length'] ?? Number.NaN)
    : req.headers['content-length'] !== undefined
      ? Number(req.headers['content-length'])
      : undefined;
  let copySource: { bucket: string; key: string } | undefined;
  if (op === 'CopyObject') copySource = parseCopySource(req.headers['x-amz-copy-source'] as string);
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
  const decision = (await env.keys.authorize?.(access)) ?? {};
  const a: Authed = Object.assign(c, { auth, decision, b: bucket, k: key });
  if (copySource) a.copySource = copySource;
  return a;
}
