import { createHash } from 'node:crypto';

/**
 * The stable hash behind hash maps: the first 32 bits of MD5 over the key's canonical text
 * (a text key's UTF-8 bytes; an integer key's decimal digits), as an unsigned integer.
 * PostgreSQL and PGlite compute the same value natively (`cdp_shard_slot()`), so slot
 * predicates, copies and checksums run in SQL on every shard; see docs/decisions/shard-slot-hash.md.
 */
export function keyHash32(canonical: string): number {
  return createHash('md5').update(canonical, 'utf8').digest().readUInt32BE(0);
}

/** The slot of a key's canonical text among `slotCount` virtual slots. */
export function slotOf(canonical: string, slotCount: number): number {
  return keyHash32(canonical) % slotCount;
}

/**
 * Jump consistent hash (Lamping and Veach, 2014): the bucket of a 64-bit key among `buckets`.
 * Shipped as the reference the benchmark compares routing and movement against.
 */
export function jumpConsistentHash(key: bigint, buckets: number): number {
  let k = BigInt.asUintN(64, key);
  let b = -1;
  let j = 0;
  while (j < buckets) {
    b = j;
    k = BigInt.asUintN(64, k * 2862933555777941757n + 1n);
    j = Math.floor(((b + 1) * 2 ** 31) / (Number(k >> 33n) + 1));
  }
  return b;
}
