/**
 * The storage module's CLI verbs: `cdp storage serve` and `cdp static serve`, and the blob
 * store a `cdp static` verb names. The module returns servers and data; the lines a user reads
 * are printed here.
 */
import { importOptional, type Logger, type Registry } from '../core/index.js';
import {
  type BlobStore,
  DeploymentSource,
  FolderSource,
  FsBlobStore,
  StorageServer,
  type StorageServerOptions,
  startStaticSite,
  staticKeys,
} from '../storage/index.js';

type Out = (line: string) => void;
const stdout: Out = (l) => process.stdout.write(`${l}\n`);

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
  const { S3BlobStore } = await importOptional(
    '@aws-sdk/client-s3',
    'a site store in an S3 bucket',
    () => import('../storage/s3.js'),
  );
  const o: Parameters<typeof S3BlobStore.open>[0] = {
    endpoint: s.endpoint,
    bucket: s.bucket,
    accessKeyId: s.accessKeyId,
    secretAccessKey: s.secretAccessKey,
  };
  if (s.region) o.region = s.region;
  return S3BlobStore.open(o);
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
  out?: Out;
}) {
  const source = o.dir
    ? new FolderSource({ root: o.dir })
    : new DeploymentSource({ store: o.store!, ...(o.prefix ? { prefix: o.prefix } : {}) });
  const s = await startStaticSite({
    source,
    ...(o.port !== undefined ? { port: o.port } : {}),
    ...(o.host ? { host: o.host } : {}),
  });
  (o.out ?? stdout)(`listening on ${s.url}`);
  return s;
}

/**
 * Run the storage server for `cdp storage serve`: prints `listening on http://127.0.0.1:<port>`.
 */
export async function serveStorage(o: {
  dir: string;
  port?: number;
  host?: string;
  accessKeyId: string;
  secretAccessKey: string;
  region?: string;
  logger?: Logger;
  registry?: Registry;
  out?: Out;
}): Promise<StorageServer> {
  const opts: StorageServerOptions = {
    dir: o.dir,
    keys: staticKeys([{ accessKeyId: o.accessKeyId, secretAccessKey: o.secretAccessKey }]),
    region: o.region ?? 'us-east-1',
    port: o.port ?? 0,
    host: o.host ?? '127.0.0.1',
  };
  if (o.logger) opts.logger = o.logger;
  if (o.registry) opts.registry = o.registry;
  const s = await StorageServer.start(opts);
  (o.out ?? stdout)(`listening on ${s.url}`);
  return s;
}
