/** Measuring a body as it streams: size limits, SHA-256 and MD5, and the checks of a put. */
import { createHash, type Hash } from 'node:crypto';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import type { BlobBody, PutOptions } from '../blob/blob-store.js';
import { StorageError } from '../storage-error.js';

/** Counts and hashes bytes flowing through, enforcing size limits as they arrive. */
export class MeasuringStream extends Transform {
  bytes = 0;
  readonly #sha = createHash('sha256');
  readonly #md5: Hash = createHash('md5');
  readonly #max: number;
  constructor(maxBytes = Number.POSITIVE_INFINITY) {
    super();
    this.#max = maxBytes;
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.#max) {
      cb(
        new StorageError(
          'EntityTooLarge',
          400,
          `the body is larger than the allowed ${this.#max} bytes`,
        ),
      );
      return;
    }
    this.#sha.update(chunk);
    this.#md5.update(chunk);
    cb(null, chunk);
  }
  digests(): { sha256: string; md5: Buffer } {
    return { sha256: this.#sha.digest('hex'), md5: this.#md5.digest() };
  }
}

export function toReadable(body: BlobBody): Readable {
  if (body instanceof Readable) return body;
  return Readable.from([typeof body === 'string' ? Buffer.from(body) : Buffer.from(body)]);
}

/** Check a measured body against the put options (after the last byte). */
export function checkPut(
  m: MeasuringStream,
  d: { sha256: string; md5: Buffer },
  o: PutOptions,
): void {
  if (o.exactBytes !== undefined && m.bytes !== o.exactBytes) {
    throw new StorageError(
      'IncompleteBody',
      400,
      `expected ${o.exactBytes} bytes, received ${m.bytes}`,
    );
  }
  if (o.minBytes !== undefined && m.bytes < o.minBytes) {
    throw new StorageError('EntityTooSmall', 400, `the body is smaller than ${o.minBytes} bytes`);
  }
  if (o.expectedSha256 !== undefined && o.expectedSha256 !== d.sha256) {
    throw new StorageError(
      'XAmzContentSHA256Mismatch',
      400,
      'the body does not match x-amz-content-sha256',
    );
  }
  if (o.expectedMd5 !== undefined && o.expectedMd5 !== d.md5.toString('base64')) {
    throw new StorageError('BadDigest', 400, 'the body does not match Content-MD5');
  }
}
