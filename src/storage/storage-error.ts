import { CdpError } from '../core/index.js';

/**
 * A refusal or failure of the storage module, carrying the S3 error code a client expects
 * (`SignatureDoesNotMatch`, `NoSuchKey`, ...) and the HTTP status the server answers with.
 * The CdpError `code` is `STORAGE_<S3 code in upper snake case>`, stable for callers.
 */
export class StorageError extends CdpError {
  readonly s3Code: string;
  readonly status: number;
  constructor(s3Code: string, status: number, message: string, options?: { cause?: unknown }) {
    super(`STORAGE_${s3Code.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase()}`, message, options);
    this.s3Code = s3Code;
    this.status = status;
  }
}

/** Authentication refusals (bad, expired, revoked or out-of-scope signatures): HTTP 403 or 400. */
export class AuthError extends StorageError {}

export function noSuchKey(key: string): StorageError {
  return new StorageError(
    'NoSuchKey',
    404,
    `no object at key ${JSON.stringify(key)}; check the key`,
  );
}
