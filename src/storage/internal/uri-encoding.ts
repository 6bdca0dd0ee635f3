/**
 * The URI encoding of SigV4 and of the storage server's paths: encode bytes once (RFC 3986
 * unreserved kept), check whether raw text is already canonical, percent-decode to bytes and
 * refuse what is not UTF-8. Shared by the signer, the verifier, the storage server and static
 * hosting; not part of the module's public API.
 */
import { ValidationError } from '../../core/index.js';

/** How a path is canonicalised: see sigv4/sign.ts. */
export type PathMode = 's3' | 'generic';

const HEX = '0123456789ABCDEF';
/** 1 where the byte is kept as is by the SigV4 URI encoding (RFC 3986 unreserved). */
const UNRESERVED = new Uint8Array(256);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~') {
  UNRESERVED[c.charCodeAt(0)] = 1;
}
const ESCAPES: string[] = Array.from({ length: 256 }, (_, b) => `%${HEX[b >> 4]}${HEX[b & 15]}`);

/** SigV4 URI-encode a byte sequence; `/` kept when `keepSlash`. */
export function encodeBytes(bytes: Uint8Array, keepSlash: boolean): string {
  let out = '';
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (UNRESERVED[b] === 1 || (keepSlash && b === 0x2f)) out += String.fromCharCode(b);
    else out += ESCAPES[b]!;
  }
  return out;
}

const HEX_UPPER = new Int8Array(128).fill(-1);
for (let i = 0; i < 16; i++) HEX_UPPER['0123456789ABCDEF'.charCodeAt(i)] = i;

/**
 * True when `raw` is already the SigV4 encoding of what it decodes to (its own canonical
 * form): only unreserved characters (and `/` when `keepSlash`) and upper-case `%XX` escapes
 * of bytes that must be escaped. Lets a verifier reuse the text it received instead of
 * decoding and encoding it again. The caller must still check that `raw` decodes (UTF-8).
 */
export function isCanonicalEncoded(raw: string, keepSlash: boolean): boolean {
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c < 128 && UNRESERVED[c] === 1) continue;
    if (c === 0x2f && keepSlash) continue;
    if (c !== 0x25 || i + 2 >= raw.length) return false;
    const h = raw.charCodeAt(i + 1);
    const l = raw.charCodeAt(i + 2);
    const hv = h < 128 ? HEX_UPPER[h]! : -1;
    const lv = l < 128 ? HEX_UPPER[l]! : -1;
    if (hv < 0 || lv < 0) return false;
    const b = (hv << 4) | lv;
    // An escaped unreserved byte (or `/` in a path) is not canonical: it is sent as is.
    if (UNRESERVED[b] === 1 || (keepSlash && b === 0x2f)) return false;
    i += 2;
  }
  return true;
}

const EXTRA_ESCAPES = /[!'()*]/g;
const extraEscape = (c: string) => ESCAPES[c.charCodeAt(0)]!;

/**
 * SigV4 URI-encode a string (its UTF-8 bytes): the same output as the AWS SDK's
 * `escapeUri`/`extendedEncodeURIComponent`. `/` kept when `keepSlash` (object key paths).
 */
export function uriEncode(s: string, keepSlash = false): string {
  let out: string;
  try {
    out = encodeURIComponent(s);
  } catch (err) {
    throw new ValidationError(
      'the string holds a lone UTF-16 surrogate and has no UTF-8 form; pass well-formed text',
      [{ path: 'key', message: String(err) }],
    );
  }
  if (out.length !== s.length || /[!'()*]/.test(out)) out = out.replace(EXTRA_ESCAPES, extraEscape);
  if (keepSlash && out.includes('%2F')) out = out.replaceAll('%2F', '/');
  return out;
}

function hexVal(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

/**
 * Percent-decode to bytes. Characters that are not escapes are taken as their UTF-8 bytes;
 * `+` stays `+` (SigV4 never reads it as a space). Throws on a malformed escape.
 */
export function percentDecode(s: string): Buffer {
  const src = Buffer.from(s, 'utf8');
  if (!src.includes(0x25)) return src;
  const out = Buffer.allocUnsafe(src.length);
  let n = 0;
  for (let i = 0; i < src.length; i++) {
    const b = src[i]!;
    if (b !== 0x25) {
      out[n++] = b;
      continue;
    }
    const hi = i + 2 < src.length ? hexVal(src[i + 1]!) : -1;
    const lo = i + 2 < src.length ? hexVal(src[i + 2]!) : -1;
    if (hi < 0 || lo < 0) {
      throw new ValidationError(`malformed percent escape in ${JSON.stringify(s)}`, [
        { path: 'uri', message: 'a % must be followed by two hex digits' },
      ]);
    }
    out[n++] = (hi << 4) | lo;
    i += 2;
  }
  return out.subarray(0, n);
}

const utf8Strict = new TextDecoder('utf-8', { fatal: true });

/** Bytes to text, refusing invalid UTF-8 (overlong `%c0%ae`, lone continuation bytes...). */
export function utf8OrThrow(bytes: Uint8Array, what: string): string {
  try {
    return utf8Strict.decode(bytes);
  } catch {
    throw new ValidationError(`${what} is not valid UTF-8 once percent-decoded`, [
      { path: what, message: 'invalid UTF-8' },
    ]);
  }
}

/**
 * Percent-decode one URI component to text (`+` stays `+`), refusing malformed escapes and
 * invalid UTF-8. Native decodeURIComponent does exactly that, fast.
 */
export function decodeComponent(s: string, what: string): string {
  if (!s.includes('%')) return s;
  try {
    return decodeURIComponent(s);
  } catch {
    // Say which: a malformed escape, or bytes that are not UTF-8.
    return utf8OrThrow(percentDecode(s), what);
  }
}

/** Remove dot segments and merge empty segments (generic mode with normalize on). */
export function normalizePath(path: string): string {
  const out: string[] = [];
  for (const seg of path.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') out.pop();
    else out.push(seg);
  }
  if (out.length === 0) return '/';
  const trailing = /\/(\.{0,2})$/.test(path);
  return `/${out.join('/')}${trailing ? '/' : ''}`;
}

const SAFE_PATH = /^[A-Za-z0-9\-._~/]*$/;

/** The canonical URI of a raw request path (the part of the request target before `?`). */
export function canonicalUri(rawPath: string, mode: PathMode, normalize = false): string {
  if (rawPath === '') return '/';
  if (mode === 's3') {
    if (SAFE_PATH.test(rawPath)) return rawPath;
    try {
      return uriEncode(decodeURIComponent(rawPath), true);
    } catch {
      return encodeBytes(percentDecode(rawPath), true);
    }
  }
  const p = normalize ? normalizePath(rawPath) : rawPath;
  return encodeBytes(Buffer.from(p, 'utf8'), true);
}
