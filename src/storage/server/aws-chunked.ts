/**
 * Decoder for `Content-Encoding: aws-chunked` bodies with an unsigned trailer
 * (`x-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER`), which the AWS SDK v3 sends for
 * streamed uploads so it can append a checksum:
 *
 *   <hex size>\r\n<bytes>\r\n ... 0\r\n<trailer>:<value>\r\n\r\n
 *
 * The trailing checksum (crc32, sha1 or sha256) is checked against the decoded bytes.
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { crc32 } from 'node:zlib';
import { StorageError } from '../storage-error.js';

const bad = (msg: string) => new StorageError('InvalidRequest', 400, `aws-chunked body: ${msg}`);

export class AwsChunkedDecoder extends Transform {
  #buf: Buffer = Buffer.alloc(0);
  /** Bytes left in the current chunk's data, or -1 while reading a size line. */
  #left = -1;
  #needCrlf = false;
  #done = false;
  #trailerText = '';
  #crc = 0;
  #sha1: Hash | null = null;
  #sha256: Hash | null = null;
  readonly trailers: Record<string, string> = {};
  decodedBytes = 0;

  constructor(expectedTrailer: string | undefined) {
    super();
    const t = expectedTrailer?.toLowerCase();
    if (t === 'x-amz-checksum-sha1') this.#sha1 = createHash('sha1');
    if (t === 'x-amz-checksum-sha256') this.#sha256 = createHash('sha256');
  }

  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    this.#buf = this.#buf.length ? Buffer.concat([this.#buf, chunk]) : chunk;
    try {
      this.#drain();
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }

  #drain() {
    for (;;) {
      if (this.#done) {
        this.#trailerText += this.#buf.toString('latin1');
        this.#buf = Buffer.alloc(0);
        if (this.#trailerText.length > 8192) throw bad('trailer too long');
        return;
      }
      if (this.#needCrlf) {
        if (this.#buf.length < 2) return;
        if (this.#buf[0] !== 0x0d || this.#buf[1] !== 0x0a) throw bad('missing CRLF after chunk');
        this.#buf = this.#buf.subarray(2);
        this.#needCrlf = false;
      }
      if (this.#left < 0) {
        const nl = this.#buf.indexOf('\r\n');
        if (nl < 0) {
          if (this.#buf.length > 256) throw bad('chunk size line too long');
          return;
        }
        const line = this.#buf.subarray(0, nl).toString('latin1');
        const m = /^([0-9a-fA-F]{1,16})(;.*)?$/.exec(line);
        if (!m) throw bad('bad chunk size line');
        if (m[2]) {
          throw new StorageError(
            'NotImplemented',
            501,
            'signed aws-chunked uploads are not supported; use UNSIGNED-PAYLOAD or STREAMING-UNSIGNED-PAYLOAD-TRAILER',
          );
        }
        this.#left = Number.parseInt(m[1]!, 16);
        this.#buf = this.#buf.subarray(nl + 2);
        if (this.#left === 0) {
          this.#done = true;
          continue;
        }
      }
      if (this.#buf.length === 0) return;
      const n = Math.min(this.#left, this.#buf.length);
      const data = this.#buf.subarray(0, n);
      this.#buf = this.#buf.subarray(n);
      this.#left -= n;
      this.decodedBytes += n;
      this.#crc = crc32(data, this.#crc);
      this.#sha1?.update(data);
      this.#sha256?.update(data);
      this.push(data);
      if (this.#left === 0) {
        this.#left = -1;
        this.#needCrlf = true;
      } else {
        return;
      }
    }
  }

  override _flush(cb: TransformCallback): void {
    if (!this.#done) {
      cb(bad('the body ended before the last chunk'));
      return;
    }
    for (const line of this.#trailerText.split('\r\n')) {
      if (line === '') continue;
      const i = line.indexOf(':');
      if (i < 0) {
        cb(bad('malformed trailer'));
        return;
      }
      this.trailers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
    }
    const crcB64 = () => {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(this.#crc >>> 0);
      return b.toString('base64');
    };
    const checks: [string, () => string][] = [
      ['x-amz-checksum-crc32', crcB64],
      ['x-amz-checksum-sha1', () => this.#sha1?.digest('base64') ?? ''],
      ['x-amz-checksum-sha256', () => this.#sha256?.digest('base64') ?? ''],
    ];
    for (const [name, compute] of checks) {
      const want = this.trailers[name];
      if (want !== undefined && compute() !== want) {
        cb(new StorageError('BadDigest', 400, `the ${name} trailer does not match the body`));
        return;
      }
    }
    cb();
  }
}
