/**
 * SigV4 verification for a server: Authorization-header and presigned-query requests.
 * Everything is checked before the signature is computed, so a malformed request is refused
 * with a precise reason; the signature itself is compared in constant time.
 */
import { timingSafeEqual } from 'node:crypto';
import { CdpError } from '../../core/index.js';
import {
  canonicalUri,
  decodeComponent,
  isCanonicalEncoded,
  uriEncode,
} from '../internal/uri-encoding.js';
import { AuthError } from '../storage-error.js';
import {
  ALGORITHM,
  credentialScope,
  EMPTY_SHA256,
  type HeaderBag,
  headerValue,
  MAX_EXPIRES_SECONDS,
  type PathMode,
  parseAmzDate,
  type QueryPairs,
  signatureBytes,
  signingKey,
  stringToSign,
  UNSIGNED_PAYLOAD,
} from './sign.js';

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
  /**
   * Other region names accepted in the credential scope; the signature is computed with the
   * name as sent. The storage server accepts `US`, S3's legacy name for us-east-1, which
   * s3cmd's default configuration signs with.
   */
  regionAliases?: readonly string[];
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
const SHA_RE = SIG_RE;
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

/** The given signature as bytes, decoded into one reused buffer (no allocation). */
const sigScratch = Buffer.alloc(32);
function hexToScratch(hex: string): Buffer {
  for (let i = 0; i < 32; i++) {
    const h = hex.charCodeAt(2 * i);
    const l = hex.charCodeAt(2 * i + 1);
    // Lower-case hex only (checked by SIG_RE): '0'-'9' are 48-57, 'a'-'f' are 97-102.
    sigScratch[i] = ((h < 58 ? h - 48 : h - 87) << 4) | (l < 58 ? l - 48 : l - 87);
  }
  return sigScratch;
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
  if (region !== o.region && !o.regionAliases?.includes(region)) {
    throw deny(
      'AuthorizationHeaderMalformed',
      `credential region ${region} is wrong; this server expects ${o.region}`,
      400,
    );
  }
  if (svc !== service) {
    throw deny('AuthorizationHeaderMalformed', `credential service must be ${service}`, 400);
  }
  return { accessKeyId, date8, region };
}

interface Common {
  accessKeyId: string;
  date8: string;
  region: string;
  amz: string;
  signedHeaders: string[];
  /** The SignedHeaders text as sent (checked canonical: sorted, unique, lower case). */
  signedHeadersRaw: string;
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

/** Canonical (SigV4) encoding of one query component, reusing the raw text when it is one. */
function encodeQueryComponent(raw: string, decoded: string): string {
  return isCanonicalEncoded(raw, false) ? raw : uriEncode(decoded);
}

/**
 * Parse a raw query (no leading `?`) into decoded pairs and their canonical encodings, in
 * one pass: `+` is not a space, an empty parameter and a malformed escape are refused.
 */
function parseQuery(raw: string): { pairs: QueryPairs; enc: string[] } {
  const pairs: QueryPairs = [];
  const enc: string[] = [];
  if (raw === '') return { pairs, enc };
  let start = 0;
  for (;;) {
    let amp = raw.indexOf('&', start);
    if (amp < 0) amp = raw.length;
    if (amp === start) {
      throw new AuthError('InvalidURI', 400, 'empty query parameter (`&&` or a trailing `&`)');
    }
    const eq = raw.indexOf('=', start);
    const rk = eq < 0 || eq > amp ? raw.slice(start, amp) : raw.slice(start, eq);
    const rv = eq < 0 || eq > amp ? '' : raw.slice(eq + 1, amp);
    const k = decodeComponent(rk, 'query name');
    const v = decodeComponent(rv, 'query value');
    pairs.push([k, v]);
    enc.push(encodeQueryComponent(rk, k), encodeQueryComponent(rv, v));
    if (amp === raw.length) break;
    start = amp + 1;
  }
  return { pairs, enc };
}

/** The canonical query from parsed pairs: encoded, sorted by name then value, `skip` left out. */
function canonicalQueryOf(enc: readonly string[], skip: number): string {
  const idx: number[] = [];
  for (let i = 0; i < enc.length; i += 2) if (i >> 1 !== skip) idx.push(i);
  // Insertion sort: a handful of parameters, most of them already in order.
  for (let i = 1; i < idx.length; i++) {
    const cur = idx[i]!;
    const ck = enc[cur]!;
    const cv = enc[cur + 1]!;
    let j = i - 1;
    while (j >= 0) {
      const o = idx[j]!;
      const ok = enc[o]!;
      if (ok < ck || (ok === ck && enc[o + 1]! <= cv)) break;
      idx[j + 1] = o;
      j--;
    }
    idx[j + 1] = cur;
  }
  let out = '';
  for (let i = 0; i < idx.length; i++) {
    const at = idx[i]!;
    out += i === 0 ? `${enc[at]}=${enc[at + 1]}` : `&${enc[at]}=${enc[at + 1]}`;
  }
  return out;
}

function hasDuplicateName(pairs: QueryPairs): string | undefined {
  if (pairs.length > 24) {
    const seen = new Set<string>();
    for (const [k] of pairs) {
      if (seen.has(k)) return k;
      seen.add(k);
    }
    return undefined;
  }
  for (let i = 1; i < pairs.length; i++) {
    const k = pairs[i]![0];
    for (let j = 0; j < i; j++) if (pairs[j]![0] === k) return k;
  }
  return undefined;
}

/**
 * Verify a SigV4-signed request (header or presigned query). Returns what was verified or
 * throws AuthError with the S3 error code.
 *
 * The request is read once from its raw target: the path is decoded once (never
 * dot-normalised), each query component decoded and canonically encoded in the same pass
 * (components that are already canonical are reused as is), the derived signing key comes
 * from a cache, and the signature is compared as 32 bytes in constant time.
 */
export function verifyRequest(req: IncomingRequestParts, o: VerifyOptions): VerifiedRequest {
  const service = o.service ?? 's3';
  const mode = o.mode ?? (service === 's3' ? 's3' : 'generic');
  const q = req.url.indexOf('?');
  const rawPath = q < 0 ? req.url : req.url.slice(0, q);
  const rawQuery = q < 0 ? '' : req.url.slice(q + 1);
  if (rawPath.charCodeAt(0) !== 0x2f) {
    throw deny('InvalidURI', 'the request target must be a path', 400);
  }
  let parsed: { pairs: QueryPairs; enc: string[] };
  let path: string;
  try {
    parsed = parseQuery(rawQuery);
    path = decodeComponent(rawPath, 'path');
  } catch (err) {
    if (err instanceof AuthError) throw err;
    throw new AuthError('InvalidURI', 400, (err as Error).message, { cause: err });
  }
  const pairs = parsed.pairs;
  const dup = hasDuplicateName(pairs);
  if (dup !== undefined) throw deny('AccessDenied', `query parameter ${dup} appears twice`, 400);

  // The authentication parameters, found in one pass.
  let qAlgorithm: string | undefined;
  let qCredential: string | undefined;
  let qDate: string | undefined;
  let qExpires: string | undefined;
  let qSignedHeaders: string | undefined;
  let qSignature: string | undefined;
  let qToken: string | undefined;
  let qContentSha: string | undefined;
  let sigIndex = -1;
  let authParams = 0;
  /** Bit i set: pair i is an authentication parameter (first 31 pairs; the rest by name). */
  let authMask = 0;
  for (let i = 0; i < pairs.length; i++) {
    const [k, v] = pairs[i]!;
    if (k.charCodeAt(0) !== 0x58 /* X */ || !k.startsWith('X-Amz-')) continue;
    authParams++;
    switch (k) {
      case 'X-Amz-Algorithm':
        qAlgorithm = v;
        break;
      case 'X-Amz-Credential':
        qCredential = v;
        break;
      case 'X-Amz-Date':
        qDate = v;
        break;
      case 'X-Amz-Expires':
        qExpires = v;
        break;
      case 'X-Amz-SignedHeaders':
        qSignedHeaders = v;
        break;
      case 'X-Amz-Signature':
        qSignature = v;
        sigIndex = i;
        break;
      case 'X-Amz-Security-Token':
        qToken = v;
        break;
      case 'X-Amz-Content-Sha256':
        qContentSha = v;
        break;
      default:
        authParams--;
        continue;
    }
    if (i < 31) authMask |= 1 << i;
  }
  const auth = headerValue(req.headers, 'authorization');
  const hasQueryAuth = qSignature !== undefined || qAlgorithm !== undefined;
  if (auth !== undefined && hasQueryAuth) {
    throw deny('InvalidArgument', 'use either the Authorization header or a presigned URL', 400);
  }
  if (auth === undefined && !hasQueryAuth) {
    throw deny('AccessDenied', 'the request is not signed; sign it with SigV4');
  }

  let common: Common;
  let expiresAt: number | null = null;
  let payloadHash: string;
  let skip = -1;
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
    common = {
      accessKeyId: cred.accessKeyId,
      date8: cred.date8,
      region: cred.region,
      amz,
      signedHeaders,
      signedHeadersRaw: m[2]!,
      signature: m[3]!,
    };
    payloadHash =
      headerValue(req.headers, 'x-amz-content-sha256') ??
      (service === 's3' ? '' : (o.payloadHash ?? EMPTY_SHA256));
    if (service === 's3' && !PAYLOAD_RE.test(payloadHash)) {
      throw deny('InvalidArgument', 'x-amz-content-sha256 is missing or malformed', 400);
    }
    sessionToken = headerValue(req.headers, 'x-amz-security-token');
  } else {
    if (qAlgorithm !== ALGORITHM) {
      throw deny('AuthorizationQueryParametersError', `X-Amz-Algorithm must be ${ALGORITHM}`, 400);
    }
    const missing =
      qCredential === undefined
        ? 'X-Amz-Credential'
        : qDate === undefined
          ? 'X-Amz-Date'
          : qExpires === undefined
            ? 'X-Amz-Expires'
            : qSignedHeaders === undefined
              ? 'X-Amz-SignedHeaders'
              : qSignature === undefined
                ? 'X-Amz-Signature'
                : undefined;
    if (missing !== undefined) {
      throw deny(
        'AuthorizationQueryParametersError',
        `${missing} is missing from the presigned URL`,
        400,
      );
    }
    const cred = parseCredential(qCredential!, o, service);
    const expires = parseExpires(qExpires!);
    if (Number.isNaN(expires)) {
      throw deny(
        'AuthorizationQueryParametersError',
        'X-Amz-Expires must be an integer number of seconds from 1 to 604800',
        400,
      );
    }
    const signedHeaders = parseSignedHeaders(qSignedHeaders!, req.headers);
    // Explicit fields, not a spread: an object spread here cost more than the HMAC.
    common = {
      accessKeyId: cred.accessKeyId,
      date8: cred.date8,
      region: cred.region,
      amz: qDate!,
      signedHeaders,
      signedHeadersRaw: qSignedHeaders!,
      signature: qSignature!,
    };
    expiresAt = parseAmzDate(common.amz) + expires * 1000;
    payloadHash =
      qContentSha ?? (service === 's3' ? UNSIGNED_PAYLOAD : (o.payloadHash ?? EMPTY_SHA256));
    if (service === 's3' && payloadHash !== UNSIGNED_PAYLOAD && !SHA_RE.test(payloadHash)) {
      throw deny('AuthorizationQueryParametersError', 'X-Amz-Content-Sha256 is malformed', 400);
    }
    sessionToken = qToken;
    skip = sigIndex;
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
  try {
    // S3 mode: the path was decoded once above; encode it once (the raw text when it is safe).
    uri =
      mode === 's3' && !o.normalize
        ? isCanonicalEncoded(rawPath, true)
          ? rawPath
          : uriEncode(path, true)
        : canonicalUri(rawPath, mode, o.normalize);
  } catch (err) {
    throw new AuthError('InvalidURI', 400, (err as Error).message, { cause: err });
  }
  const cq = canonicalQueryOf(parsed.enc, skip);
  let hdrs = '';
  const sh = common.signedHeaders;
  for (let i = 0; i < sh.length; i++) {
    const h = sh[i]!;
    hdrs += `${h}:${headerValue(req.headers, h) ?? ''}\n`;
  }
  const creq = `${req.method}\n${uri}\n${cq}\n${hdrs}\n${common.signedHeadersRaw}\n${payloadHash}`;
  const expected = signatureBytes(
    signingKey(secret, common.date8, common.region, service),
    stringToSign(common.amz, credentialScope(common.date8, common.region, service), creq),
  );
  // SIG_RE checked 64 lower-case hex digits: 32 bytes, the length of `expected`.
  if (!timingSafeEqual(expected, hexToScratch(common.signature))) {
    throw deny(
      'SignatureDoesNotMatch',
      'the request signature does not match; check the secret key and signing method',
    );
  }
  let query: QueryPairs;
  if (authParams === 0) query = pairs;
  else {
    query = [];
    for (let i = 0; i < pairs.length; i++) {
      const p = pairs[i]!;
      if (i < 31 ? (authMask & (1 << i)) === 0 : !QUERY_AUTH.has(p[0])) query.push(p);
    }
  }
  return {
    kind: auth !== undefined ? 'header' : 'query',
    accessKeyId: common.accessKeyId,
    date,
    expiresAt,
    signedHeaders: common.signedHeaders,
    payloadHash,
    path,
    query,
    sessionToken,
  };
}

export function isAuthError(err: unknown): err is AuthError {
  return err instanceof CdpError && err instanceof AuthError;
}
