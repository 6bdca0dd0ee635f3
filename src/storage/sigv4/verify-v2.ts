/**
 * SigV2 query-string authentication, for the presigned URLs boto3 (`generate_presigned_url`)
 * and s3cmd (`signurl`) make in their default configurations:
 * `?AWSAccessKeyId=<id>&Expires=<epoch seconds>&Signature=<base64 HMAC-SHA1>`.
 *
 * Only presigned URLs: a request signed with a SigV2 Authorization header is refused (SigV4
 * is required there). The string to sign is S3's: method, Content-MD5, Content-Type, Expires,
 * the x-amz-* headers, then the resource (the raw path and the sub-resources, sorted).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { decodeComponent } from '../internal/uri-encoding.js';
import { AuthError } from '../storage-error.js';
import {
  type HeaderBag,
  headerValue,
  MAX_EXPIRES_SECONDS,
  type QueryPairs,
  UNSIGNED_PAYLOAD,
} from './sign.js';
import type { IncomingRequestParts, VerifiedRequest, VerifyOptions } from './verify.js';

/** The query parameters that are part of the SigV2 resource, with their values. */
const V2_SUBRESOURCES = new Set([
  'acl',
  'cors',
  'delete',
  'lifecycle',
  'location',
  'logging',
  'notification',
  'partNumber',
  'policy',
  'requestPayment',
  'response-cache-control',
  'response-content-disposition',
  'response-content-encoding',
  'response-content-language',
  'response-content-type',
  'response-expires',
  'restore',
  'tagging',
  'torrent',
  'uploadId',
  'uploads',
  'versionId',
  'versioning',
  'versions',
  'website',
]);

const AUTH_PARAMS = new Set(['AWSAccessKeyId', 'Expires', 'Signature', 'x-amz-security-token']);

const deny = (code: string, message: string, status = 403) => new AuthError(code, status, message);

/** True when the raw request target carries SigV2 query authentication. */
export function hasV2QueryAuth(url: string): boolean {
  const q = url.indexOf('?');
  if (q < 0) return false;
  const names = url
    .slice(q + 1)
    .split('&')
    .map((p) => p.split('=')[0]);
  return names.includes('AWSAccessKeyId') && names.includes('Signature');
}

function amzHeaders(headers: HeaderBag): string {
  return Object.keys(headers)
    .map((h) => h.toLowerCase())
    .filter((h) => h.startsWith('x-amz-'))
    .sort()
    .map((h) => `${h}:${(headerValue(headers, h) ?? '').trim()}\n`)
    .join('');
}

export function verifyQueryV2(
  req: IncomingRequestParts,
  o: Pick<VerifyOptions, 'now' | 'lookup'>,
): VerifiedRequest {
  const q = req.url.indexOf('?');
  const rawPath = req.url.slice(0, q);
  const pairs: QueryPairs = [];
  try {
    for (const part of req.url.slice(q + 1).split('&')) {
      if (!part) continue;
      const eq = part.indexOf('=');
      pairs.push([
        decodeComponent(eq < 0 ? part : part.slice(0, eq), 'query name'),
        eq < 0 ? '' : decodeComponent(part.slice(eq + 1), 'query value'),
      ]);
    }
  } catch (err) {
    throw new AuthError('InvalidURI', 400, (err as Error).message, { cause: err });
  }
  const get = (n: string) => pairs.find(([k]) => k === n)?.[1];
  const id = get('AWSAccessKeyId') ?? '';
  const sig = get('Signature') ?? '';
  const expiresRaw = get('Expires') ?? '';
  if (!/^[0-9]{1,12}$/.test(expiresRaw))
    throw deny('AuthorizationQueryParametersError', 'Expires must be epoch seconds', 400);
  const expiresAt = Number(expiresRaw) * 1000;
  if (o.now > expiresAt) throw deny('AccessDenied', 'Request has expired; presign the URL again');
  if (expiresAt - o.now > MAX_EXPIRES_SECONDS * 1000)
    throw deny('AuthorizationQueryParametersError', 'Expires is more than 7 days ahead', 400);
  const secret = o.lookup(id)?.secretAccessKey;
  if (!secret) throw deny('InvalidAccessKeyId', 'the access key id is not known here');
  const subs = pairs
    .filter(([k]) => V2_SUBRESOURCES.has(k))
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .map(([k, v]) => (v === '' ? k : `${k}=${v}`));
  const resource = subs.length ? `${rawPath}?${subs.join('&')}` : rawPath;
  const sts = `${req.method}\n${headerValue(req.headers, 'content-md5') ?? ''}\n${headerValue(req.headers, 'content-type') ?? ''}\n${expiresRaw}\n${amzHeaders(req.headers)}${resource}`;
  const expected = createHmac('sha1', secret).update(sts, 'utf8').digest();
  const given = Buffer.from(sig, 'base64');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw deny(
      'SignatureDoesNotMatch',
      'the request signature does not match; check the secret key and signing method',
    );
  }
  let path: string;
  try {
    path = decodeComponent(rawPath, 'path');
  } catch (err) {
    throw new AuthError('InvalidURI', 400, (err as Error).message, { cause: err });
  }
  return {
    kind: 'query',
    accessKeyId: id,
    date: o.now,
    expiresAt,
    signedHeaders: [],
    payloadHash: UNSIGNED_PAYLOAD,
    path,
    query: pairs.filter(([k]) => !AUTH_PARAMS.has(k)),
    sessionToken: get('x-amz-security-token'),
  };
}
