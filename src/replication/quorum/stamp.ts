/**
 * Version stamps of the quorum store and the per-range digests its anti-entropy compares.
 */
import { createHash } from 'node:crypto';
import { CdpError, ValidationError } from '../../core/errors.js';

/**
 * A per-key version: a counter (ABD's tag, or a clock reading in last-write-wins mode) and the
 * id of the writer that chose it, which breaks ties. Stamps are totally ordered.
 */
export interface VersionStamp {
  readonly counter: number;
  readonly writer: string;
}

/** A value with its stamp, as a node stores it. `value` is the JSON text of the value. */
export interface VersionedValue {
  readonly stamp: VersionStamp;
  readonly value: string;
}

/** Not enough nodes answered: fewer than R for a read, fewer than W for a write. */
export class QuorumUnavailableError extends CdpError {
  /** True when the write may have reached some nodes (its outcome is unknown). */
  readonly mayHaveApplied: boolean;
  constructor(message: string, mayHaveApplied: boolean, options?: { cause?: unknown }) {
    super('QUORUM_UNAVAILABLE', message, options);
    this.mayHaveApplied = mayHaveApplied;
  }
}

const WRITER = /^[\x21-\x7e]{1,64}$/;

/** Writer ids are printable ASCII without spaces, so that every node compares them bytewise. */
export function checkWriterId(writer: string): string {
  if (!WRITER.test(writer))
    throw new ValidationError(
      `writer id ${JSON.stringify(writer)} must be 1 to 64 printable ASCII characters without spaces`,
    );
  return writer;
}

/** Negative when a is older than b, 0 when equal, positive when newer. */
export function compareStamps(a: VersionStamp, b: VersionStamp): number {
  if (a.counter !== b.counter) return a.counter < b.counter ? -1 : 1;
  if (a.writer === b.writer) return 0;
  return a.writer < b.writer ? -1 : 1;
}

export function formatStamp(s: VersionStamp): string {
  return `${s.counter}:${s.writer}`;
}

export function parseStamp(text: string): VersionStamp {
  const i = text.indexOf(':');
  const counter = Number(text.slice(0, i));
  if (i <= 0 || !Number.isSafeInteger(counter))
    throw new ValidationError(
      `malformed version stamp ${JSON.stringify(text)}; expected counter:writer`,
    );
  return { counter, writer: text.slice(i + 1) };
}

/** The leaf (key-hash range) of a key among `leaves` ranges. */
export function leafOf(key: string, leaves: number): number {
  return createHash('md5').update(key).digest().readUInt32BE(0) % leaves;
}

/** 2^48: entry hashes (40 bits) are summed modulo this, exactly in doubles (JS and Lua alike). */
const DIGEST_MODULUS = 2 ** 48;

/** One entry's contribution to its range's digest: 40 bits of SHA-1 of "key\nstamp". */
export function entryHash(key: string, stamp: string): number {
  return Number.parseInt(
    createHash('sha1').update(`${key}\n${stamp}`).digest('hex').slice(0, 10),
    16,
  );
}

/**
 * The digest of a range: its entry count and the sum of its entries' hashes modulo 2^48. It does
 * not depend on the order the entries are listed in, so a node computes it without sorting
 * (Redis computes the same figure in Lua).
 */
export function rangeDigest(entries: Iterable<[key: string, stamp: string]>): string {
  let count = 0;
  let sum = 0;
  for (const [key, stamp] of entries) {
    count++;
    sum = (sum + entryHash(key, stamp)) % DIGEST_MODULUS;
  }
  return count === 0 ? '' : `${count}:${sum}`;
}
