/**
 * AWS Signature Version 4, written by hand: canonical request, string to sign, signing key,
 * header and query (presigned URL) signing. Verification lives in verify.ts, the URI encoding
 * both share in internal/uri-encoding.ts.
 *
 * Two path modes:
 * - `s3`: the canonical URI is the request path percent-decoded to bytes and encoded once
 *   (unreserved `A-Z a-z 0-9 - _ . ~` and `/` kept), with no dot-segment removal and no slash
 *   merging: `/b/../k` names the object `../k`, never `k`.
 * - `generic` (every other AWS service, and the aws-c-auth test suite): the raw path is
 *   optionally normalised (dot segments removed, empty segments merged) and then encoded once
 *   more, so a `%` already on the wire becomes `%25`.
 *
 * Paths are always taken from the raw request target, never from `new URL()`, which would
 * resolve `%2e%2e` and change what was signed.
 */
import * as nodeCrypto from 'node:crypto';
import { createHash, createHmac } from 'node:crypto';
import { ValidationError } from '../../core/index.js';
import {
  canonicalUri,
  decodeComponent,
  type PathMode,
  uriEncode,
} from '../internal/uri-encoding.js';

export type { PathMode };

export const ALGORITHM = 'AWS4-HMAC-SHA256';
export const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';
export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
/** The longest presigned URL lifetime AWS allows, in seconds (7 days). */
export const MAX_EXPIRES_SECONDS = 604_800;

export interface SigV4Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

// ---------------------------------------------------------------------------------------------
// Canonical request

/** Query parameters as decoded name/value pairs, in wire order. */
export type QueryPairs = [string, string][];

/** Parse a raw query string (no leading `?`) into decoded pairs; `+` is not a space. */
export function parseRawQuery(raw: string): QueryPairs {
  const pairs: QueryPairs = [];
  if (raw === '') return pairs;
  for (const part of raw.split('&')) {
    if (part === '') {
      throw new ValidationError('empty query parameter (`&&` or a trailing `&`)', [
        { path: 'query', message: 'empty parameter' },
      ]);
    }
    const eq = part.indexOf('=');
    const k = eq < 0 ? part : part.slice(0, eq);
    const v = eq < 0 ? '' : part.slice(eq + 1);
    pairs.push([decodeComponent(k, 'query name'), decodeComponent(v, 'query value')]);
  }
  return pairs;
}

/** Canonical query string: names and values encoded, sorted by name then value. */
export function canonicalQuery(pairs: readonly (readonly [string, string])[]): string {
  const enc = pairs.map(([k, v]) => [uriEncode(k), uriEncode(v)] as const);
  enc.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  let out = '';
  for (let i = 0; i < enc.length; i++) {
    if (i > 0) out += '&';
    out += `${enc[i]![0]}=${enc[i]![1]}`;
  }
  return out;
}

/** Trim and collapse runs of spaces in a header value (SigV4 canonical header value). */
export function canonicalHeaderValue(v: string): string {
  const t = v.trim();
  // Only rewrite when there is something to collapse (a run of spaces or another blank).
  return NEEDS_COLLAPSE.test(t) ? t.replace(/\s+/g, ' ') : t;
}
const NEEDS_COLLAPSE = /[^\S ]| \s/;

/**
 * Headers by lower-case name; a list is several occurrences of the same header, joined with
 * `,` in the canonical form (pass Node's `req.headersDistinct`).
 */
export type HeaderBag = Record<string, string | readonly string[] | undefined>;

export function headerValue(headers: HeaderBag, name: string): string | undefined {
  const v = headers[name];
  if (v === undefined) return undefined;
  if (typeof v === 'string') return canonicalHeaderValue(v);
  if (v.length === 1) return canonicalHeaderValue(v[0]!);
  return v.map(canonicalHeaderValue).join(',');
}

export interface CanonicalRequestInput {
  method: string;
  /** Canonical URI (see canonicalUri). */
  uri: string;
  /** Canonical query string (see canonicalQuery). */
  query: string;
  headers: HeaderBag;
  /** Lower-case, sorted, unique. */
  signedHeaders: readonly string[];
  payloadHash: string;
}

export function canonicalRequest(r: CanonicalRequestInput): string {
  let hdrs = '';
  for (const h of r.signedHeaders) hdrs += `${h}:${headerValue(r.headers, h) ?? ''}\n`;
  return `${r.method}\n${r.uri}\n${r.query}\n${hdrs}\n${r.signedHeaders.join(';')}\n${r.payloadHash}`;
}

/**
 * One-shot crypto.hash (Node >= 20.12): a third of the cost of createHash().update().digest()
 * on inputs the size of a canonical request. Older Node 20 releases get the classic form.
 */
const oneShotHash: ((alg: string, data: string | Uint8Array, enc: 'hex') => string) | undefined = (
  nodeCrypto as { hash?: (alg: string, data: string | Uint8Array, enc: 'hex') => string }
).hash;

export function sha256Hex(data: string | Uint8Array): string {
  if (oneShotHash) return oneShotHash('sha256', data, 'hex');
  return createHash('sha256').update(data).digest('hex');
}

/** `YYYYMMDDTHHMMSSZ` from epoch milliseconds. */
export function amzDate(ms: number): string {
  const iso = new Date(ms).toISOString(); // 2015-08-30T12:36:00.000Z
  return `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}T${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
}

/** Epoch milliseconds of a `YYYYMMDDTHHMMSSZ` date, or NaN when it is not a real date. */
export function parseAmzDate(s: string): number {
  // A server sees the same few dates over and over: remember the last one.
  if (s === lastAmz) return lastAmzMs;
  const ms = parseAmzDateUncached(s);
  lastAmz = s;
  lastAmzMs = ms;
  return ms;
}
let lastAmz = '';
let lastAmzMs = Number.NaN;

function parseAmzDateUncached(s: string): number {
  if (!/^\d{8}T\d{6}Z$/.test(s)) return Number.NaN;
  const y = +s.slice(0, 4);
  const mo = +s.slice(4, 6);
  const d = +s.slice(6, 8);
  const h = +s.slice(9, 11);
  const mi = +s.slice(11, 13);
  const se = +s.slice(13, 15);
  const ms = Date.UTC(y, mo - 1, d, h, mi, se);
  const back = new Date(ms);
  if (
    back.getUTCFullYear() !== y ||
    back.getUTCMonth() !== mo - 1 ||
    back.getUTCDate() !== d ||
    back.getUTCHours() !== h ||
    back.getUTCMinutes() !== mi ||
    back.getUTCSeconds() !== se
  ) {
    return Number.NaN;
  }
  return ms;
}

export function credentialScope(date8: string, region: string, service: string): string {
  return `${date8}/${region}/${service}/aws4_request`;
}

export function stringToSign(amz: string, scope: string, canonical: string): string {
  return `${ALGORITHM}\n${amz}\n${scope}\n${sha256Hex(canonical)}`;
}

/**
 * Derived signing keys, one HMAC instead of four more per signature. Looked up by the secret
 * itself (the same string object for every request of a key, so its hash is computed once),
 * then checked against (date, region, service); two scopes are kept per secret, so URLs
 * signed on both sides of midnight do not evict each other.
 */
interface DerivedKey {
  date8: string;
  region: string;
  service: string;
  key: Buffer;
  /** The previous scope's key for the same secret: yesterday's URLs still verify cheaply. */
  prev: DerivedKey | undefined;
}
const keyCache = new Map<string, DerivedKey>();
/** Enough for every live key of a busy server; past this the oldest entry goes first. */
const KEY_CACHE_SIZE = 4096;

/** kSigning = HMAC chain over date, region, service, "aws4_request"; cached. */
export function signingKey(secret: string, date8: string, region: string, service: string): Buffer {
  const hit = keyCache.get(secret);
  if (hit) {
    if (hit.date8 === date8 && hit.region === region && hit.service === service) return hit.key;
    const p = hit.prev;
    if (p && p.date8 === date8 && p.region === region && p.service === service) return p.key;
  }
  const kDate = createHmac('sha256', `AWS4${secret}`).update(date8).digest();
  const kRegion = createHmac('sha256', kDate).update(region).digest();
  const kService = createHmac('sha256', kRegion).update(service).digest();
  const key = createHmac('sha256', kService).update('aws4_request').digest();
  if (!hit && keyCache.size >= KEY_CACHE_SIZE) keyCache.delete(keyCache.keys().next().value!);
  if (hit) hit.prev = undefined; // keep two scopes per secret, not a chain
  keyCache.set(secret, { date8, region, service, key, prev: hit });
  return key;
}

export function signatureHex(key: Buffer, toSign: string): string {
  return createHmac('sha256', key).update(toSign).digest('hex');
}

/** The signature as 32 bytes (for a constant-time comparison without hex churn). */
export function signatureBytes(key: Buffer, toSign: string): Buffer {
  return createHmac('sha256', key).update(toSign).digest();
}

/** Validate and return presign expiry seconds: an integer 1..604800. */
export function checkExpires(seconds: number): number {
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > MAX_EXPIRES_SECONDS) {
    throw new ValidationError(
      `expiresIn must be an integer number of seconds from 1 to ${MAX_EXPIRES_SECONDS}, got ${seconds}`,
      [{ path: 'expiresIn', message: 'integer 1..604800' }],
    );
  }
  return seconds;
}

// ---------------------------------------------------------------------------------------------
// Signing

export interface SignInput {
  method: string;
  /** Raw request path as it goes on the wire (already percent-encoded), e.g. `/bucket/a%20b`. */
  path: string;
  /** Extra query parameters (decoded); signed. */
  query?: readonly (readonly [string, string])[];
  /** Host with port when not default, e.g. `127.0.0.1:9000`. Always signed. */
  host: string;
  /** Other headers to sign (any case); `host` is added. */
  headers?: Record<string, string | readonly string[]>;
  credentials: SigV4Credentials;
  region: string;
  service?: string;
  /** Signing time, epoch milliseconds. */
  date: number;
  mode?: PathMode;
  normalize?: boolean;
  /** Payload hash; UNSIGNED-PAYLOAD for presigned S3 URLs by default. */
  payloadHash?: string;
}

export interface PresignInput extends SignInput {
  expiresIn: number;
  /** `http:` or `https:` for the returned URL. */
  protocol?: string;
  /**
   * Put `X-Amz-Content-Sha256=UNSIGNED-PAYLOAD` in the query, as the AWS SDK v3 presigner does
   * (default: true for service s3). The S3 API reference example predates it (false).
   */
  contentSha256Param?: boolean;
}

function lowerHeaders(h: Record<string, string | readonly string[]> | undefined, host: string) {
  const out: Record<string, string | readonly string[]> = {};
  if (h) for (const [k, v] of Object.entries(h)) out[k.toLowerCase()] = v;
  out.host = host;
  return out;
}

export interface PresignResult {
  url: string;
  canonicalRequest: string;
  stringToSign: string;
  signature: string;
  /** Query parameters in URL order (sorted by name, as the AWS SDK's formatUrl does). */
  query: [string, string][];
}

/**
 * Presign a request (query-string authentication). The URL lists its parameters sorted by
 * name, encoded as in the canonical query, which is byte for byte what the AWS SDK's
 * S3RequestPresigner + formatUrl produce.
 */
export function presign(p: PresignInput): PresignResult {
  const service = p.service ?? 's3';
  const mode = p.mode ?? (service === 's3' ? 's3' : 'generic');
  const expires = checkExpires(p.expiresIn);
  const amz = amzDate(p.date);
  const date8 = amz.slice(0, 8);
  const scope = credentialScope(date8, p.region, service);
  const headers = lowerHeaders(p.headers, p.host);
  const signed = Object.keys(headers).sort();
  const pairs: [string, string][] = [];
  if (p.query) for (const [k, v] of p.query) pairs.push([k, v]);
  pairs.push(['X-Amz-Algorithm', ALGORITHM]);
  if (p.contentSha256Param ?? service === 's3') {
    pairs.push(['X-Amz-Content-Sha256', p.payloadHash ?? UNSIGNED_PAYLOAD]);
  }
  pairs.push(['X-Amz-Credential', `${p.credentials.accessKeyId}/${scope}`]);
  pairs.push(['X-Amz-Date', amz]);
  pairs.push(['X-Amz-Expires', String(expires)]);
  if (p.credentials.sessionToken) pairs.push(['X-Amz-Security-Token', p.credentials.sessionToken]);
  pairs.push(['X-Amz-SignedHeaders', signed.join(';')]);
  const cq = canonicalQuery(pairs);
  const creq = canonicalRequest({
    method: p.method,
    uri: canonicalUri(p.path, mode, p.normalize),
    query: cq,
    headers,
    signedHeaders: signed,
    payloadHash: p.payloadHash ?? UNSIGNED_PAYLOAD,
  });
  const sts = stringToSign(amz, scope, creq);
  const signature = signatureHex(
    signingKey(p.credentials.secretAccessKey, date8, p.region, service),
    sts,
  );
  // The URL: parameters sorted by encoded name, the signature in its sorted place.
  const sig = `X-Amz-Signature=${signature}`;
  const sortedWithSig = insertSorted(cq, sig);
  const protocol = p.protocol ?? 'https:';
  pairs.push(['X-Amz-Signature', signature]);
  return {
    url: `${protocol}//${p.host}${p.path}?${sortedWithSig}`,
    canonicalRequest: creq,
    stringToSign: sts,
    signature,
    query: pairs,
  };
}

/** Insert `name=value` into an `&`-joined list sorted by name. */
function insertSorted(list: string, item: string): string {
  if (list === '') return item;
  const parts = list.split('&');
  const name = item.slice(0, item.indexOf('='));
  let i = 0;
  while (i < parts.length) {
    const p = parts[i]!;
    const eq = p.indexOf('=');
    const n = eq < 0 ? p : p.slice(0, eq);
    if (n > name) break;
    i++;
  }
  parts.splice(i, 0, item);
  return parts.join('&');
}

export interface SignedHeaders {
  authorization: string;
  'x-amz-date': string;
  'x-amz-content-sha256'?: string;
  'x-amz-security-token'?: string;
  canonicalRequest: string;
  stringToSign: string;
  signature: string;
}

/**
 * Sign with the Authorization header. Signs host, x-amz-date, every header given, the
 * session token when present, and x-amz-content-sha256 for service s3.
 */
export function signHeaders(
  p: SignInput & { sessionTokenSigned?: boolean; contentSha256Header?: boolean },
): SignedHeaders {
  const service = p.service ?? 's3';
  const mode = p.mode ?? (service === 's3' ? 's3' : 'generic');
  const amz = amzDate(p.date);
  const date8 = amz.slice(0, 8);
  const scope = credentialScope(date8, p.region, service);
  const headers = lowerHeaders(p.headers, p.host);
  headers['x-amz-date'] = amz;
  const payloadHash = p.payloadHash ?? (service === 's3' ? UNSIGNED_PAYLOAD : EMPTY_SHA256);
  const withSha = p.contentSha256Header ?? service === 's3';
  if (withSha) headers['x-amz-content-sha256'] = payloadHash;
  if (p.credentials.sessionToken && p.sessionTokenSigned !== false) {
    headers['x-amz-security-token'] = p.credentials.sessionToken;
  }
  const signed = Object.keys(headers).sort();
  const creq = canonicalRequest({
    method: p.method,
    uri: canonicalUri(p.path, mode, p.normalize),
    query: canonicalQuery(p.query ?? []),
    headers,
    signedHeaders: signed,
    payloadHash,
  });
  const sts = stringToSign(amz, scope, creq);
  const signature = signatureHex(
    signingKey(p.credentials.secretAccessKey, date8, p.region, service),
    sts,
  );
  const out: SignedHeaders = {
    authorization: `${ALGORITHM} Credential=${p.credentials.accessKeyId}/${scope}, SignedHeaders=${signed.join(';')}, Signature=${signature}`,
    'x-amz-date': amz,
    canonicalRequest: creq,
    stringToSign: sts,
    signature,
  };
  if (withSha) out['x-amz-content-sha256'] = payloadHash;
  if (p.credentials.sessionToken) out['x-amz-security-token'] = p.credentials.sessionToken;
  return out;
}

/** The raw path of an S3 object in path style: `/bucket/` + the key encoded once. */
export function s3ObjectPath(bucket: string, key: string): string {
  return `/${uriEncode(bucket)}/${uriEncode(key, true)}`;
}

/** Presign a path-style S3 object URL (GET by default) against an endpoint. */
export function presignObject(o: {
  endpoint: string;
  bucket: string;
  key: string;
  method?: string;
  expiresIn: number;
  credentials: SigV4Credentials;
  region: string;
  date: number;
  headers?: Record<string, string>;
  query?: readonly (readonly [string, string])[];
}): string {
  const m = /^(https?:)\/\/([^/?#]+)(\/[^?#]*)?$/.exec(o.endpoint.replace(/\/+$/, ''));
  if (!m) {
    throw new ValidationError(`endpoint ${o.endpoint} is not an http(s) origin`, [
      { path: 'endpoint', message: 'expected http(s)://host[:port]' },
    ]);
  }
  const input: PresignInput = {
    method: o.method ?? 'GET',
    protocol: m[1]!,
    host: m[2]!,
    path: `${m[3] ?? ''}${s3ObjectPath(o.bucket, o.key)}`,
    expiresIn: o.expiresIn,
    credentials: o.credentials,
    region: o.region,
    date: o.date,
  };
  if (o.headers) input.headers = o.headers;
  if (o.query) input.query = o.query;
  return presign(input).url;
}
