import { CdpError } from '../core/errors.js';

/**
 * A PostgreSQL WAL position (`pg_lsn`, written `X/Y` in hex) as a bigint: positions compare
 * as numbers within one timeline.
 */
export type Lsn = bigint;

/** Parses `16/B374D848` into a bigint; undefined for anything else. */
export function parseLsn(text: string): Lsn | undefined {
  const slash = text.indexOf('/');
  if (slash <= 0 || slash > 8 || text.length - slash - 1 > 8 || text.length - slash - 1 < 1) {
    return undefined;
  }
  const hi = text.slice(0, slash);
  const lo = text.slice(slash + 1);
  if (!isHex(hi) || !isHex(lo)) return undefined;
  return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`);
}

/** Formats a bigint position as PostgreSQL prints it (`16/B374D848`). */
export function formatLsn(lsn: Lsn): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

function isHex(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const digit = c >= 48 && c <= 57;
    const upper = c >= 65 && c <= 70;
    const lower = c >= 97 && c <= 102;
    if (!digit && !upper && !lower) return false;
  }
  return s.length > 0;
}

function isDigits(s: string): boolean {
  if (s.length === 0 || s.length > 20) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/**
 * What a write hands back for read-your-writes: the cluster it ran on (the system identifier
 * from `pg_control_system()`, shared by a primary and its standbys), the primary's timeline,
 * and the WAL position at which the write is durable on the primary. A read that carries it is
 * served by a server that has replayed at least `lsn`.
 */
export interface ConsistencyToken {
  systemIdentifier: string;
  timeline: number;
  lsn: Lsn;
}

const PREFIX = 'cdp1';

/** `cdp1.<system identifier>.<timeline>.<lsn>`: URL- and header-safe. */
export function formatConsistencyToken(token: ConsistencyToken): string {
  return `${PREFIX}.${token.systemIdentifier}.${token.timeline}.${formatLsn(token.lsn)}`;
}

/** A consistency token that is not one, or that belongs to another cluster. */
export class ConsistencyTokenError extends CdpError {
  constructor(code: 'REPLICATION_TOKEN_MALFORMED' | 'REPLICATION_TOKEN_FOREIGN', message: string) {
    super(code, message);
  }
}

/**
 * Parses a token. Throws `ConsistencyTokenError` (`REPLICATION_TOKEN_MALFORMED`) for anything
 * that is not `cdp1.<digits>.<digits>.<X/Y>`, and (`REPLICATION_TOKEN_FOREIGN`) when
 * `systemIdentifier` is given and the token names another cluster.
 */
export function parseConsistencyToken(text: string, systemIdentifier?: string): ConsistencyToken {
  const parts = typeof text === 'string' ? text.split('.') : [];
  const lsn = parts.length === 4 ? parseLsn(parts[3]!) : undefined;
  if (
    parts.length !== 4 ||
    parts[0] !== PREFIX ||
    !isDigits(parts[1]!) ||
    !isDigits(parts[2]!) ||
    lsn === undefined
  ) {
    throw new ConsistencyTokenError(
      'REPLICATION_TOKEN_MALFORMED',
      `not a consistency token: "${String(text).slice(0, 80)}"; send back exactly the token a write returned (cdp1.<cluster>.<timeline>.<lsn>), or none`,
    );
  }
  const token: ConsistencyToken = {
    systemIdentifier: parts[1]!,
    timeline: Number(parts[2]),
    lsn,
  };
  if (systemIdentifier !== undefined && token.systemIdentifier !== systemIdentifier) {
    throw new ConsistencyTokenError(
      'REPLICATION_TOKEN_FOREIGN',
      `the consistency token comes from another PostgreSQL cluster (system identifier ${token.systemIdentifier}, this one is ${systemIdentifier}); drop it and read without one`,
    );
  }
  return token;
}

/** The later of two tokens of one cluster (higher timeline, then higher position). */
export function laterToken(
  a: ConsistencyToken | undefined,
  b: ConsistencyToken | undefined,
): ConsistencyToken | undefined {
  if (!a) return b;
  if (!b) return a;
  if (a.timeline !== b.timeline) return a.timeline > b.timeline ? a : b;
  return a.lsn >= b.lsn ? a : b;
}
