import { ValidationError } from '../../core/errors.js';

/** The error for a bad cache option at `path`. */
export function invalidOption(path: string, message: string): ValidationError {
  return new ValidationError(`cache: ${path} ${message}`, [{ path, message }]);
}

/**
 * Checks a ttl given by a caller: a finite number >= 0 (0 = no expiry; Infinity is read as 0);
 * undefined reads as 0.
 */
export function checkTtl(ttl: unknown, path = 'ttlMs'): number {
  if (ttl === undefined) return 0;
  if (typeof ttl !== 'number' || Number.isNaN(ttl) || ttl < 0) {
    throw invalidOption(path, `must be a number of ms >= 0 (0 = no expiry), got ${String(ttl)}`);
  }
  return ttl === Number.POSITIVE_INFINITY ? 0 : ttl;
}
