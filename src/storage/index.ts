/**
 * cloud-data-patterns/storage: blob stores (filesystem, S3), an S3-compatible storage server,
 * SigV4 signing and verification, the Valet Key service and Static Content Hosting.
 */
export * from './aws-chunked.js';
export * from './blob-store.js';
export * from './fs-blob-store.js';
export * from './post-form.js';
export * from './s3-blob-store.js';
export * from './s3-server.js';
export * from './sigv4.js';
export * from './sigv4-post-policy.js';
export * from './sigv4-verify.js';
export * from './static-deploy.js';
export * from './static-site.js';
export * from './storage-error.js';
export * from './valet-key.js';

import type { Logger } from '../core/index.js';
import type { BlobStore } from './blob-store.js';
import { FsBlobStore } from './fs-blob-store.js';
import { S3BlobStore } from './s3-blob-store.js';
import { DeploymentSource } from './static-deploy.js';
import { FolderSource, serveStaticSite } from './static-site.js';

/** Where `cdp static` reads or writes a deployed site: a local store folder or an S3 bucket. */
export type SiteStore =
  | { kind: 'fs'; dir: string }
  | {
      kind: 's3';
      endpoint: string;
      bucket: string;
      accessKeyId: string;
      secretAccessKey: string;
      region?: string;
    };

/** Open the blob store a CLI verb names. Close it when done. */
export async function openSiteStore(s: SiteStore): Promise<BlobStore> {
  if (s.kind === 'fs') return FsBlobStore.open({ dir: s.dir });
  const o: Parameters<typeof S3BlobStore.connect>[0] = {
    endpoint: s.endpoint,
    bucket: s.bucket,
    accessKeyId: s.accessKeyId,
    secretAccessKey: s.secretAccessKey,
  };
  if (s.region) o.region = s.region;
  return S3BlobStore.connect(o);
}

/**
 * `cdp static serve <dir>` or `cdp static serve <bucket/prefix>`: serve a folder, or the live
 * deployed version in a store. Prints `listening on http://127.0.0.1:<port>`.
 */
export async function serveStatic(o: {
  dir?: string;
  store?: BlobStore;
  prefix?: string;
  port?: number;
  host?: string;
  logger?: Logger;
  out?: (line: string) => void;
}) {
  const source = o.dir
    ? new FolderSource({ root: o.dir })
    : new DeploymentSource({ store: o.store!, ...(o.prefix ? { prefix: o.prefix } : {}) });
  return serveStaticSite({
    source,
    ...(o.port !== undefined ? { port: o.port } : {}),
    ...(o.host ? { host: o.host } : {}),
    ...(o.out ? { out: o.out } : {}),
  });
}
