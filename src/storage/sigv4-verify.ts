/**
 * SigV4 verification for a server: Authorization-header and presigned-query requests.
 * Everything is checked before the signature is computed, so a malformed request is refused
 * with a precise reason; the signature itself is compared in constant time.
 */
import { timingSafeEqual } from 'node:crypto';
import { CdpError } from '../core/index.js';
import {
  ALGORITHM,
  canonicalQuery,
  canonicalRequest,
  canonicalUri,
  credentialScope,
  decodeComponent,
  EMPTY_SHA256,
  type HeaderBag,
  headerValue,
  MAX_EXPIRES_SECONDS,
  type PathMode,
  parseAmzDate,
  parseRawQuery,
  type QueryPairs,
  signatureHex,
  signingKey,
  stringToSign,
  UNSIGNED_PAYLOAD,
} from './sigv4.js';
import { AuthError } from './storage-error.js';

export interface IncomingRequestParts {
  method: string;
  /** Raw request target as received (`req.url`): path and query, never normalised. */
  url: string;
  headers: HeaderBag;
}

export interface VerifyOptions {
  region: string;
  service?: string;
  mode?: PathMode;
  normalize?: boolean;
  /** Current time, epoch milliseconds (from a Clock). */
  now: number;
  /** Secret for an access key id, or undefined when the key is unknown. */
  lookup(accessKeyId: string): { secretAccessKey: string } | undefined;
  /** Allowed clock skew; also the limit on dates in the future. Default 15 minutes. */
  maxSkewMs?: number;
  /**
   * Generic services only: the body hash a presigned request committed to (default: the hash
   * of the empty body). S3 reads it from X-Amz-Content-Sha256 or uses UNSIGNED-PAYLOAD.
   */
  payloadHash?: string;
}

export interface VerifiedRequest {
  kind: 'header' | 'query';
  accessKeyId: string;
  /** Signing time, epoch ms. */
  date: number;
  /** Presigned URLs only: last valid instant, epoch ms. */
  expiresAt: number | null;
  signedHeaders: readonly string[];
  /** Hash the client committed to (hex, UNSIGNED-PAYLOAD or a STREAMING-* marker). */
  payloadHash: string;
  /** The decoded request path (never dot-normalised). */
  path: string;
  /** Query parameters other than the X-Amz-* authentication ones, decoded. */
  query: QueryPairs;
  sessionToken: string | undefined;
}

const SIG_RE = /^[0-9a-f]{64}$/;
const SIGNED_HEADERS_RE = /^[a-z0-9-]+(;[a-z0-9-]+)*$/;
const QUERY_AUTH = new Set([
  'X-Amz-Algorithm',
  'X-Amz-Credential',
  'X-Amz-Date',
  'X-Amz-Expires',
  'X-Amz-SignedHeaders',
  'X-Amz-Signature',
  'X-Amz-Security-Token',
  'X-Amz-Content-Sha256',
]);
const PAYLOAD_RE =
  /^([0-9a-f]{64}|UNSIGNED-PAYLOAD|STREAMING-UNSIGNED-PAYLOAD-TRAILER|STREAMING-AWS4-HMAC-SHA256-PAYLOAD|STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER)$/;

function deny(code: string, message: string, status = 403): AuthError {
  return new AuthError(code, status, message);
}

/** Strict decimal integer 1..604800: refuses 0, -1, +60, 60.0, 1e3, 0x3c, '', ' 60'. */
export function parseExpires(raw: string): number {
  if (!/^[1-9][0-9]{0,5}$/.test(raw)) return Number.NaN;
  const n = Number(raw);
  return n <= MAX_EXPIRES_SECONDS ? n : Number.NaN;
}

function constantTimeEqualHex(a: string, b: string): boolean {
  const ab = Buffer.from(a, 'latin1');
  const bb = Buffer.from(b, 'latin1');
  if (ab.length !== bb.length) {
    // Compare against itself so the time does not depend on where the strings differ.
    timingSafeEqual(ab, ab);
    return false;
  }
  return timingSafeEqual(ab, bb);
}

function parseSignedHeaders(raw: string, headers: HeaderBag): string[] {
  if (!SIGNED_HEADERS_RE.test(raw)) {
    throw deny(
      'AuthorizationHeaderMalformed',
      'SignedHeaders must be lower-case names joined by ;',
      400,
    );
  }
  const list = raw.split(';');
  for (let i = 1; i < list.length; i++) {
    if (list[i - 1]! >= list[i]!) {
      throw deny('AuthorizationHeaderMalformed', 'SignedHeaders must be sorted and unique', 400);
    }
  }
  if (!list.includes('host')) {
    throw deny('AccessDenied', 'SignedHeaders must include host; sign the Host header');
  }
  for (const h of list) {
    if (headers[h] === undefined) {
      throw deny('AccessDenied', `signed header ${h} is missing from the request`);
    }
  }
  return list;
}

function parseCredential(raw: string, o: VerifyOptions, service: string) {
  const parts = raw.split('/');
  if (parts.length !== 5 || parts[0] === '' || parts[4] !== 'aws4_request') {
    throw deny(
      'AuthorizationHeaderMalformed',
      'Credential must be <key>/<yyyymmdd>/<region>/<service>/aws4_request',
      400,
    );
  }
  const [accessKeyId, date8, region, svc] = parts as [string, string, string, string];
  if (!/^\d{8}$/.test(date8)) {
    throw deny('AuthorizationHeaderMalformed', 'credential date must be yyyymmdd', 400);
  }
  if (region !== o.region) {
    throw deny(
      'AuthorizationHeaderMalformed',
      `credential region ${region} is wrong; this server expects ${o.region}`,
      400,
    );
  }
  if (svc !== service) {
    throw deny('AuthorizationHeaderMalformed', `credential service must be ${service}`, 400);
  }
  return { accessKeyId, date8 };
}

interface Common {
  accessKeyId: string;
  date8: string;
  amz: string;
  signedHeaders: string[];
  signature: string;
}

function checkCommon(c: Common, o: VerifyOptions, service: string) {
  const date = parseAmzDate(c.amz);
  if (Number.isNaN(date)) {
    throw deny('AccessDenied', 'X-Amz-Date must be a real date as yyyymmddThhmmssZ');
  }
  if (c.amz.slice(0, 8) !== c.date8) {
    throw deny('SignatureDoesNotMatch', 'the credential date does not match X-Amz-Date');
  }
  if (!SIG_RE.test(c.signature)) {
    throw deny('SignatureDoesNotMatch', 'the signature must be 64 lower-case hex digits');
  }
  const skew = o.maxSkewMs ?? 15 * 60_000;
  if (date - o.now > skew) {
    throw deny('RequestTimeTooSkewed', 'the request is dated more than 15 minutes in the future');
  }
  const key = o.lookup(c.accessKeyId);
  if (!key) throw deny('InvalidAccessKeyId', 'the access key id is not known to this server');
  return { date, secret: key.secretAccessKey, service };
}

/**
 * Verify a SigV4-signed request (header or presigned query). Returns what was verified or
 * throws AuthError with the S3 error code.
 */
export function verifyRequest(req: IncomingRequestParts, o: VerifyOptions): VerifiedRequest {
  const service = o.service ?? 's3';
  const mode = o.mode ?? (service === 's3' ? 's3' : 'generic');
  const q = req.url.indexOf('?');
  const rawPath = q < 0 ? req.url : req.url.slice(0, q);
  const rawQuery = q < 0 ? '' : req.url.slice(q + 1);
  if (!rawPath.startsWith('/')) throw deny('InvalidURI', 'the request target must be a path', 400);
  let pairs: QueryPairs;
  let path: string;
  try {
    pairs = parseRawQuery(rawQuery);
    path = decodeComponent(rawPath, 'path');
  } catch (err) {
    throw new AuthError('InvalidURI', 400, (err as Error).message, { cause: err });
  }
  const seen = new Set<string>();
  for (const [k] of pairs) {
    if (seen.has(k)) throw deny('AccessDenied', `query parameter ${k} appears twice`, 400);
    seen.add(k);
  }
  const auth = headerValue(req.headers, 'authorization');
  const hasQueryAuth = seen.has('X-Amz-Signature') || seen.has('X-Amz-Algorithm');
  if (auth !== undefined && hasQueryAuth) {
    throw deny('InvalidArgument', 'use either the Authorization header or a presigned URL', 400);
  }
  if (auth === undefined && !hasQueryAuth) {
    throw deny('AccessDenied', 'the request is not signed; sign it with SigV4');
  }
  const get = (k: string) => {
    for (const [n, v] of pairs) if (n === k) return v;
    return undefined;
  };

  let common: Common;
  let expiresAt: number | null = null;
  let payloadHash: string;
  let canonicalPairs: QueryPairs;
  let sessionToken: string | undefined;
  if (auth !== undefined) {
    const m =
      /^AWS4-HMAC-SHA256 Credential=([^,\s]+), ?SignedHeaders=([^,\s]+), ?Signature=([^,\s]+)$/.exec(
        auth,
      );
    if (!m) {
      throw deny(
        'AuthorizationHeaderMalformed',
        'Authorization must be AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...',
        400,
      );
    }
    const cred = parseCredential(m[1]!, o, service);
    const amz = headerValue(req.headers, 'x-amz-date');
    if (amz === undefined) throw deny('AccessDenied', 'x-amz-date header is required');
    const signedHeaders = parseSignedHeaders(m[2]!, req.headers);
    if (!signedHeaders.includes('x-amz-date')) {
      throw deny('AccessDenied', 'x-amz-date must be a signed header');
    }
    common = { ...cred, amz, signedHeaders, signature: m[3]! };
    payloadHash =
      headerValue(req.headers, 'x-amz-content-sha256') ??
      (service === 's3' ? '' : (o.payloadHash ?? EMPTY_SHA256));
    if (service === 's3' && !PAYLOAD_RE.test(payloadHash)) {
      throw deny('InvalidArgument', 'x-amz-content-sha256 is missing or malformed', 400);
    }
    sessionToken = headerValue(req.headers, 'x-amz-security-token');
    canonicalPairs = pairs;
  } else {
    if (get('X-Amz-Algorithm') !== ALGORITHM) {
      throw deny('AuthorizationQueryParametersError', `X-Amz-Algorithm must be ${ALGORITHM}`, 400);
    }
    for (const k of [
      'X-Amz-Credential',
      'X-Amz-Date',
      'X-Amz-Expires',
      'X-Amz-SignedHeaders',
      'X-Amz-Signature',
    ]) {
      if (get(k) === undefined) {
        throw deny(
          'AuthorizationQueryParametersError',
          `${k} is missing from the presigned URL`,
          400,
        );
      }
    }
    const cred = parseCredential(get('X-Amz-Credential')!, o, service);
    const expires = parseExpires(get('X-Amz-Expires')!);
    if (Number.isNaN(expires)) {
      throw deny(
        'AuthorizationQueryParametersError',
        'X-Amz-Expires must be an integer number of seconds from 1 to 604800',
        400,
      );
    }
    const signedHeaders = parseSignedHeaders(get('X-Amz-SignedHeaders')!, req.headers);
    common = {
      ...cred,
      amz: get('X-Amz-Date')!,
      signedHeaders,
      signature: get('X-Amz-Signature')!,
    };
    const date = parseAmzDate(common.amz);
    expiresAt = date + expires * 1000;
    payloadHash =
      get('X-Amz-Content-Sha256') ??
      (service === 's3' ? UNSIGNED_PAYLOAD : (o.payloadHash ?? EMPTY_SHA256));
    if (
      service === 's3' &&
      payloadHash !== UNSIGNED_PAYLOAD &&
      !/^[0-9a-f]{64}$/.test(payloadHash)
    ) {
      throw deny('AuthorizationQueryParametersError', 'X-Amz-Content-Sha256 is malformed', 400);
    }
    sessionToken = get('X-Amz-Security-Token');
    canonicalPairs = pairs.filter(([k]) => k !== 'X-Amz-Signature');
  }

  const { date, secret } = checkCommon(common, o, service);
  if (expiresAt !== null) {
    if (o.now > expiresAt)
      throw deny('AccessDenied', 'the presigned URL has expired; ask for a new one');
  } else if (Math.abs(o.now - date) > (o.maxSkewMs ?? 15 * 60_000)) {
    throw deny(
      'RequestTimeTooSkewed',
      'the request time differs from the server time by more than 15 minutes; check the clock',
    );
  }
  let uri: string;
  let cq: string;
  try {
    uri = canonicalUri(rawPath, mode, o.normalize);
    cq = canonicalQuery(canonicalPairs);
  } catch (err) {
    throw new AuthError('InvalidURI', 400, (err as Error).message, { cause: err });
  }
  const creq = canonicalRequest({
    method: req.method,
    uri,
    query: cq,
    headers: req.headers,
    signedHeaders: common.signedHeaders,
    payloadHash,
  });
  const expected = signatureHex(
    signingKey(secret, common.date8, o.region, service),
    stringToSign(common.amz, credentialScope(common.date8, o.region, service), creq),
  );
  if (!constantTimeEqualHex(expected, common.signature)) {
    throw deny(
      'SignatureDoesNotMatch',
      'the request signature does not match; check the secret key and signing method',
    );
  }
  return {
    kind: auth !== undefined ? 'header' : 'query',
    accessKeyId: common.accessKeyId,
    date,
    expiresAt,
    signedHeaders: common.signedHeaders,
    payloadHash,
    path,
    query: pairs.filter(([k]) => !QUERY_AUTH.has(k)),
    sessionToken,
  };
}

export function isAuthError(err: unknown): err is AuthError {
  return err instanceof CdpError && err instanceof AuthError;
}
