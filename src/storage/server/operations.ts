/**
 * Which S3 operation a request is, from its method, whether it names a bucket and a key, and
 * its sub-resource parameters.
 */
import type { IncomingMessage } from 'node:http';
import { StorageError } from '../storage-error.js';

export type S3Op =
  | 'ListBuckets'
  | 'CreateBucket'
  | 'HeadBucket'
  | 'DeleteBucket'
  | 'ListObjectsV2'
  | 'PutObject'
  | 'PostObject'
  | 'GetObject'
  | 'HeadObject'
  | 'DeleteObject'
  | 'CopyObject'
  | 'CreateMultipartUpload'
  | 'UploadPart'
  | 'CompleteMultipartUpload'
  | 'AbortMultipartUpload';

export function classify(
  req: IncomingMessage,
  bucket: string,
  key: string,
  params: Map<string, string>,
): S3Op {
  const method = req.method ?? 'GET';
  if (!bucket) {
    if (method !== 'GET')
      throw new StorageError('MethodNotAllowed', 405, 'only GET is allowed on /');
    return 'ListBuckets';
  }
  if (!key) {
    if (method === 'POST' && /^multipart\/form-data/i.test(req.headers['content-type'] ?? ''))
      return 'PostObject';
    if (method === 'PUT') return 'CreateBucket';
    if (method === 'HEAD') return 'HeadBucket';
    if (method === 'DELETE') return 'DeleteBucket';
    if (method === 'GET') {
      if (params.get('list-type') !== '2') {
        throw new StorageError(
          'NotImplemented',
          501,
          'only ListObjectsV2 (list-type=2) is supported',
        );
      }
      return 'ListObjectsV2';
    }
    throw new StorageError('MethodNotAllowed', 405, `${method} is not allowed on a bucket`);
  }
  if (method === 'PUT') {
    if (params.has('uploadId')) return 'UploadPart';
    if (req.headers['x-amz-copy-source'] !== undefined) return 'CopyObject';
    return 'PutObject';
  }
  if (method === 'GET') return 'GetObject';
  if (method === 'HEAD') return 'HeadObject';
  if (method === 'DELETE') return params.has('uploadId') ? 'AbortMultipartUpload' : 'DeleteObject';
  if (method === 'POST' && params.has('uploads')) return 'CreateMultipartUpload';
  if (method === 'POST' && params.has('uploadId')) return 'CompleteMultipartUpload';
  throw new StorageError('MethodNotAllowed', 405, `${method} is not allowed on an object`);
}
