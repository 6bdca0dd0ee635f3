/**
 * Which S3 operation a request is, from its method, what it names (the service, a bucket or
 * an object) and its sub-resource parameter (`?acl`, `?tagging`, `?uploads`, ...).
 *
 * Every sub-resource S3 defines is known here. One the server implements maps to its
 * operation; any other answers 501 NotImplemented before anything is read or changed, so a
 * client asking for, say, `PUT ?acl` or `DELETE ?cors` never falls through to PutObject or
 * DeleteBucket. A query parameter that is neither a sub-resource nor a parameter of the
 * operation is refused the same way.
 */
import type { IncomingMessage } from 'node:http';
import { StorageError } from '../storage-error.js';

export type S3Op =
  | 'ListBuckets'
  | 'CreateBucket'
  | 'HeadBucket'
  | 'DeleteBucket'
  | 'ListObjects'
  | 'ListObjectsV2'
  | 'GetBucketAcl'
  | 'PutBucketAcl'
  | 'GetBucketVersioning'
  | 'GetBucketLocation'
  | 'ListMultipartUploads'
  | 'DeleteObjects'
  | 'PutObject'
  | 'PostObject'
  | 'GetObject'
  | 'HeadObject'
  | 'DeleteObject'
  | 'CopyObject'
  | 'GetObjectAcl'
  | 'PutObjectAcl'
  | 'GetObjectTagging'
  | 'PutObjectTagging'
  | 'DeleteObjectTagging'
  | 'CreateMultipartUpload'
  | 'UploadPart'
  | 'ListParts'
  | 'CompleteMultipartUpload'
  | 'AbortMultipartUpload';

/** Every S3 sub-resource (and the list-type switch), implemented or not. */
export const SUBRESOURCES: ReadonlySet<string> = new Set([
  'accelerate',
  'acl',
  'analytics',
  'attributes',
  'cors',
  'delete',
  'encryption',
  'intelligent-tiering',
  'inventory',
  'legal-hold',
  'lifecycle',
  'list-type',
  'location',
  'logging',
  'metadataTable',
  'metrics',
  'notification',
  'object-lock',
  'ownershipControls',
  'policy',
  'policyStatus',
  'publicAccessBlock',
  'renameObject',
  'replication',
  'requestPayment',
  'restore',
  'retention',
  'select',
  'session',
  'tagging',
  'torrent',
  'uploadId',
  'uploads',
  'versioning',
  'versions',
  'website',
]);

type Target = 'service' | 'bucket' | 'object';

/** `target method sub-resource` (sub-resource '' for none) -> the operation. */
const TABLE: Record<string, S3Op> = {
  'service GET ': 'ListBuckets',
  'bucket PUT ': 'CreateBucket',
  'bucket HEAD ': 'HeadBucket',
  'bucket DELETE ': 'DeleteBucket',
  'bucket GET ': 'ListObjects',
  'bucket GET list-type': 'ListObjectsV2',
  'bucket GET acl': 'GetBucketAcl',
  'bucket PUT acl': 'PutBucketAcl',
  'bucket GET versioning': 'GetBucketVersioning',
  'bucket GET location': 'GetBucketLocation',
  'bucket GET uploads': 'ListMultipartUploads',
  'bucket POST delete': 'DeleteObjects',
  'object PUT ': 'PutObject',
  'object GET ': 'GetObject',
  'object HEAD ': 'HeadObject',
  'object DELETE ': 'DeleteObject',
  'object GET acl': 'GetObjectAcl',
  'object PUT acl': 'PutObjectAcl',
  'object GET tagging': 'GetObjectTagging',
  'object PUT tagging': 'PutObjectTagging',
  'object DELETE tagging': 'DeleteObjectTagging',
  'object POST uploads': 'CreateMultipartUpload',
  'object PUT uploadId': 'UploadPart',
  'object GET uploadId': 'ListParts',
  'object POST uploadId': 'CompleteMultipartUpload',
  'object DELETE uploadId': 'AbortMultipartUpload',
};

/** GetObject's and HeadObject's parameters: a version, and `response-*` header overrides. */
const READ_OBJECT_PARAMS = [
  'versionId',
  'response-content-type',
  'response-content-disposition',
  'response-cache-control',
  'response-content-language',
  'response-expires',
  'response-content-encoding',
];

/** The parameters each operation reads, besides its sub-resource and the auth parameters. */
const PARAMS: Partial<Record<S3Op, readonly string[]>> = {
  ListObjects: ['prefix', 'delimiter', 'marker', 'max-keys', 'encoding-type'],
  ListObjectsV2: [
    'prefix',
    'delimiter',
    'max-keys',
    'encoding-type',
    'continuation-token',
    'start-after',
    'fetch-owner',
  ],
  ListMultipartUploads: [
    'prefix',
    'delimiter',
    'key-marker',
    'upload-id-marker',
    'max-uploads',
    'encoding-type',
  ],
  ListParts: ['max-parts', 'part-number-marker'],
  UploadPart: ['partNumber'],
  GetObject: READ_OBJECT_PARAMS,
  HeadObject: READ_OBJECT_PARAMS,
  DeleteObject: ['versionId'],
  GetObjectAcl: ['versionId'],
  GetObjectTagging: ['versionId'],
  PutObjectTagging: ['versionId'],
  DeleteObjectTagging: ['versionId'],
};

/** Query parameters every operation tolerates: query authentication and SDK markers. */
function isAuthOrMarker(name: string): boolean {
  return (
    name.startsWith('X-Amz-') ||
    name.startsWith('x-amz-') ||
    name === 'x-id' ||
    name === 'AWSAccessKeyId' ||
    name === 'Signature' ||
    name === 'Expires'
  );
}

const notImplemented = (what: string) =>
  new StorageError(
    'NotImplemented',
    501,
    `${what} is not implemented by this server; nothing was changed`,
  );

export function classify(
  req: IncomingMessage,
  bucket: string,
  key: string,
  params: Map<string, string>,
): S3Op {
  const method = req.method ?? 'GET';
  const target: Target = !bucket ? 'service' : !key ? 'bucket' : 'object';
  if (!['GET', 'HEAD', 'PUT', 'POST', 'DELETE'].includes(method)) {
    throw new StorageError('MethodNotAllowed', 405, `${method} is not allowed on S3 resources`);
  }
  if (
    target === 'bucket' &&
    method === 'POST' &&
    ![...params.keys()].some((p) => SUBRESOURCES.has(p)) &&
    /^multipart\/form-data/i.test(req.headers['content-type'] ?? '')
  ) {
    return 'PostObject';
  }
  const subs = [...params.keys()].filter((p) => SUBRESOURCES.has(p));
  if (subs.length > 1) throw notImplemented(`combining ?${subs.join(' and ?')}`);
  const sub = subs[0] ?? '';
  if (sub === 'list-type' && params.get('list-type') !== '2')
    throw notImplemented(`list-type=${params.get('list-type')}`);
  let op = TABLE[`${target} ${method} ${sub}`];
  if (!op) {
    if (sub)
      throw notImplemented(
        `${method} ?${sub} on ${target === 'object' ? 'an object' : `a ${target}`}`,
      );
    throw new StorageError(
      'MethodNotAllowed',
      405,
      `${method} is not allowed on ${target === 'object' ? 'an object' : `the ${target}`}`,
    );
  }
  if (op === 'PutObject' && req.headers['x-amz-copy-source'] !== undefined) op = 'CopyObject';
  if (op === 'UploadPart' && req.headers['x-amz-copy-source'] !== undefined)
    throw notImplemented('UploadPartCopy (PUT ?uploadId with x-amz-copy-source)');
  const allowed = PARAMS[op] ?? [];
  for (const name of params.keys()) {
    if (name === sub || isAuthOrMarker(name) || allowed.includes(name)) continue;
    throw notImplemented(`the query parameter ?${name} on ${op}`);
  }
  const v = params.get('versionId');
  if (v !== undefined && v !== 'null')
    throw notImplemented('versioning (versionId other than "null")');
  return op;
}
