/**
 * cloud-data-patterns/storage: blob stores (filesystem, S3), an S3-compatible storage server,
 * SigV4 signing and verification, the Valet Key service and Static Content Hosting.
 *
 * Named exports only: what a user of the module needs. The helpers the adapters share (key
 * checks, range parsing, URI encoding, the aws-chunked decoder, the form reader) stay inside.
 * No engine client is imported here, statically or transitively: S3BlobStore, on the AWS SDK,
 * is exported from the `storage/s3` subpath (`src/storage/s3.ts`).
 */
export type {
  BlobBody,
  BlobStore,
  ByteRange,
  GetResult,
  ListedObject,
  ListOptions,
  ListPage,
  ObjectInfo,
  PutOptions,
  RangeRequest,
} from './blob/blob-store.js';
export { FsBlobStore, type FsBlobStoreOptions } from './blob/fs-blob-store.js';
export type { CorsRule } from './server/cors.js';
export {
  type AccessDecision,
  type AccessRequest,
  chainKeys,
  type KeyResolver,
  staticKeys,
} from './server/key-resolver.js';
export type { S3Op } from './server/operations.js';
export type { AuditEvent, StorageServerOptions } from './server/storage-server.js';
export { StorageServer } from './server/storage-server.js';
export {
  type CreatePostPolicyInput,
  createPostPolicy,
  type PolicyCondition,
  type PostPolicy,
  type PostPolicyDocument,
  type VerifiedPost,
  type VerifyPostOptions,
  verifyPostForm,
} from './sigv4/post-policy.js';
export {
  EMPTY_SHA256,
  MAX_EXPIRES_SECONDS,
  type PresignInput,
  type PresignResult,
  presign,
  presignObject,
  type SignedHeaders,
  type SignInput,
  type SigV4Credentials,
  s3ObjectPath,
  signHeaders,
  UNSIGNED_PAYLOAD,
} from './sigv4/sign.js';
export {
  type IncomingRequestParts,
  isAuthError,
  type VerifiedRequest,
  type VerifyOptions,
  verifyRequest,
} from './sigv4/verify.js';
export type { MissingReference, Rewrite } from './static/references.js';
export {
  type DeployManifest,
  DeploymentSource,
  type DeployOptions,
  type DeployResult,
  deployStatic,
  type ManifestEntry,
  rollbackStatic,
} from './static/static-deploy.js';
export {
  FolderSource,
  type FolderSourceOptions,
  type StaticFile,
  StaticSite,
  type StaticSiteOptions,
  type StaticSource,
  startStaticSite,
} from './static/static-site.js';
export { AuthError, StorageError } from './storage-error.js';
export {
  type IssueValetKey,
  type ValetKey,
  ValetKeyService,
  type ValetKeyServiceOptions,
  type ValetMethod,
  valetKeyMigrations,
} from './valet-key/valet-key.js';
