/**
 * cloud-data-patterns/storage/s3: the blob store on an S3-compatible endpoint, over the AWS
 * SDK for JavaScript v3 (`@aws-sdk/client-s3`, an optional peer dependency: install it to use
 * this subpath).
 */
export { S3BlobStore, type S3BlobStoreOptions } from './blob/s3-blob-store.js';
