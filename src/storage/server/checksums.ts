/**
 * Whole-body integrity headers of small request bodies (DeleteObjects): Content-MD5 and the
 * flexible checksums `x-amz-checksum-{crc32,crc32c,sha1,sha256}` that current SDKs send.
 */
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { crc32 } from 'node:zlib';
import { StorageError } from '../storage-error.js';

let crc32cTable: Uint32Array | undefined;

/** CRC-32C (Castagnoli), which node:zlib does not offer. */
function crc32c(data: Uint8Array): number {
  if (!crc32cTable) {
    crc32cTable = new Uint32Array(256);
    for (let i = 0; i < 256; i++) {
      let c = i;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
      crc32cTable[i] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (const b of data) c = crc32cTable[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function u32(n: number): string {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b.toString('base64');
}

const DIGESTS: Record<string, (d: Buffer) => string> = {
  'content-md5': (d) => createHash('md5').update(d).digest('base64'),
  'x-amz-checksum-crc32': (d) => u32(crc32(d)),
  'x-amz-checksum-crc32c': (d) => u32(crc32c(d)),
  'x-amz-checksum-sha1': (d) => createHash('sha1').update(d).digest('base64'),
  'x-amz-checksum-sha256': (d) => createHash('sha256').update(d).digest('base64'),
};

/** Check each integrity header sent against the body; BadDigest on a mismatch. */
export function checkBodyDigests(headers: IncomingHttpHeaders, body: Buffer): void {
  for (const [h, digest] of Object.entries(DIGESTS)) {
    const v = headers[h];
    if (typeof v !== 'string') continue;
    if (digest(body) !== v)
      throw new StorageError('BadDigest', 400, `the body does not match ${h}; send it again`);
  }
  if (headers['x-amz-checksum-crc64nvme'] !== undefined) {
    throw new StorageError(
      'NotImplemented',
      501,
      'x-amz-checksum-crc64nvme is not supported here; use crc32, crc32c, sha1, sha256 or Content-MD5',
    );
  }
}
