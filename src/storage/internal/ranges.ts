/** Byte ranges: the Range header of one range, and resolving it against an object's size. */
import type { ByteRange, RangeRequest } from '../blob/blob-store.js';
import { StorageError } from '../storage-error.js';

/** Resolve a range request against a size; throws InvalidRange (416) when unsatisfiable. */
export function resolveRange(r: RangeRequest, size: number): ByteRange {
  if ('suffix' in r) {
    if (r.suffix <= 0 || size === 0) throw invalidRange(size);
    return { start: Math.max(0, size - r.suffix), end: size - 1 };
  }
  if (r.start >= size || (r.end !== undefined && r.end < r.start)) throw invalidRange(size);
  return { start: r.start, end: Math.min(r.end ?? size - 1, size - 1) };
}

export function invalidRange(size: number): StorageError {
  const e = new StorageError(
    'InvalidRange',
    416,
    `the requested range is not satisfiable (object size ${size})`,
  );
  (e as StorageError & { size: number }).size = size;
  return e;
}

/**
 * Parse an HTTP Range header for one range: `bytes=a-b`, `bytes=a-`, `bytes=-n`.
 * Returns null for a header to ignore (several ranges, or not bytes) as RFC 9110 allows.
 * `bytes=-0` is unsatisfiable (416).
 */
export function parseRangeHeader(h: string | undefined): RangeRequest | null | 'invalid' {
  if (h === undefined) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(h.trim());
  if (!m) return /^bytes=/.test(h.trim()) && h.includes(',') ? null : 'invalid';
  const [, a, b] = m;
  if (a === '' && b === '') return 'invalid';
  if (a === '') return { suffix: Number(b) };
  const start = Number(a);
  if (!Number.isSafeInteger(start)) return 'invalid';
  if (b === '') return { start };
  const end = Number(b);
  if (!Number.isSafeInteger(end) || end < start) return 'invalid';
  return { start, end };
}
