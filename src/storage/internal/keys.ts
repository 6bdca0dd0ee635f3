/** Object keys: what a key may be, their order (UTF-8 bytes, as S3), and S3-style paging. */
import type { ListOptions } from '../blob/blob-store.js';
import { StorageError } from '../storage-error.js';

export function validateKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0 || Buffer.byteLength(key) > 1024) {
    throw new StorageError('KeyTooLongError', 400, 'object keys must be 1 to 1024 bytes of UTF-8');
  }
  if (key.includes('\0')) {
    throw new StorageError('InvalidArgument', 400, 'object keys must not contain NUL');
  }
  if (/\p{Surrogate}/u.test(key)) {
    throw new StorageError('InvalidArgument', 400, 'object keys must be well-formed UTF-16');
  }
}

/** Compare keys in UTF-8 byte order, as S3 lists them. */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

export function encodeToken(key: string): string {
  return Buffer.from(key, 'utf8').toString('base64url');
}

export function decodeToken(token: string): string {
  const k = Buffer.from(token, 'base64url').toString('utf8');
  if (encodeToken(k) !== token) {
    throw new StorageError('InvalidArgument', 400, 'the continuation token is not valid');
  }
  return k;
}

/**
 * Page a sorted key list the S3 way (prefix, delimiter, startAfter/continuation, maxKeys).
 * `entries` must be sorted by compareKeys.
 */
export function pageKeys<T extends { key: string }>(
  entries: readonly T[],
  o: ListOptions,
): { items: T[]; commonPrefixes: string[]; isTruncated: boolean; next: string | undefined } {
  const prefix = o.prefix ?? '';
  const max = Math.max(1, Math.min(1000, o.maxKeys ?? 1000));
  let after = o.startAfter;
  if (o.continuationToken) after = decodeToken(o.continuationToken);
  const items: T[] = [];
  const prefixes: string[] = [];
  let last: string | undefined;
  let i = 0;
  if (after !== undefined) {
    let lo = 0;
    let hi = entries.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (compareKeys(entries[mid]!.key, after) <= 0) lo = mid + 1;
      else hi = mid;
    }
    i = lo;
  }
  for (; i < entries.length; i++) {
    const e = entries[i]!;
    if (!e.key.startsWith(prefix)) {
      if (compareKeys(e.key, prefix) > 0) break;
      continue;
    }
    if (items.length + prefixes.length >= max) {
      return { items, commonPrefixes: prefixes, isTruncated: true, next: encodeToken(last!) };
    }
    if (o.delimiter) {
      const d = e.key.indexOf(o.delimiter, prefix.length);
      if (d >= 0) {
        const cp = e.key.slice(0, d + o.delimiter.length);
        if (prefixes[prefixes.length - 1] !== cp) prefixes.push(cp);
        // Skip every key under this common prefix: continue after its last key.
        while (i + 1 < entries.length && entries[i + 1]!.key.startsWith(cp)) i++;
        last = entries[i]!.key;
        continue;
      }
    }
    items.push(e);
    last = e.key;
  }
  return { items, commonPrefixes: prefixes, isTruncated: false, next: undefined };
}
