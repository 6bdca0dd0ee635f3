/**
 * int8 (bigint) columns come back as a JS number when exact, as a BigInt beyond 2^53: never a
 * silently rounded number, and the same on PGlite and on a PostgreSQL server (pg alone would
 * return a string, PGlite alone a rounded number).
 */
export function parseInt8(text: string): number | bigint {
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : BigInt(text);
}

export const INT8_OID = 20;
export const INT8_ARRAY_OID = 1016;

export function parseInt8Array(text: string): (number | bigint | null)[] {
  const inner = text.slice(1, -1);
  if (inner === '') return [];
  return inner.split(',').map((v) => (v === 'NULL' ? null : parseInt8(v)));
}
