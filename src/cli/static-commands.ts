/**
 * `cdp static serve | deploy | rollback`. Each action imports its implementation when it runs,
 * so `cdp --help` loads none of the storage module.
 */
import type { Command } from 'commander';
import type { Config } from '../core/config.js';
import { ConfigError } from '../core/errors.js';
import type { BlobStore } from '../storage/index.js';
import { fail, port, UsageError } from './options.js';

interface StoreOptions {
  store?: string;
  bucket?: string;
  prefix: string;
}

async function folderKind(path: string): Promise<'folder' | 'other' | 'none'> {
  const { stat } = await import('node:fs/promises');
  const st = await stat(path).catch(() => null);
  if (!st) return 'none';
  return st.isDirectory() ? 'folder' : 'other';
}

/**
 * The blob store a `cdp static` verb names: a local store folder, or a bucket on
 * CDP_S3_ENDPOINT. With `mustExist`, a local store folder that is not there is a usage error
 * (serving or rolling back an empty store creates nothing).
 */
async function siteStore(cfg: Config, opts: StoreOptions, mustExist: boolean): Promise<BlobStore> {
  const { openSiteStore } = await import('./storage-verbs.js');
  if (opts.bucket) {
    if (!cfg.s3?.accessKeyId || !cfg.s3.secretAccessKey) {
      throw new ConfigError(
        `--bucket ${opts.bucket} needs an S3 endpoint: set CDP_S3_ENDPOINT, CDP_S3_ACCESS_KEY_ID and CDP_S3_SECRET_ACCESS_KEY, or use --store <folder>`,
        'CDP_S3_ENDPOINT',
      );
    }
    return openSiteStore({
      kind: 's3',
      endpoint: cfg.s3.endpoint,
      bucket: opts.bucket,
      accessKeyId: cfg.s3.accessKeyId,
      secretAccessKey: cfg.s3.secretAccessKey,
      region: cfg.s3.region,
    });
  }
  const { join } = await import('node:path');
  if (!opts.store && cfg.dataDir === 'memory://') {
    throw new ConfigError(
      'CDP_DATA_DIR=memory:// keeps nothing on disk: pass --store <folder> (or --bucket) for the deployed site',
      'CDP_DATA_DIR',
    );
  }
  const dir = opts.store ?? join(cfg.dataDir, 'site');
  if (mustExist) {
    const kind = await folderKind(dir);
    if (kind !== 'folder') {
      throw new UsageError(
        kind === 'none'
          ? `no site store at "${dir}": nothing has been deployed there (deploy a folder with \`cdp static deploy <folder> --store ${dir}\`, or name another store with --store <folder>)`
          : `the site store "${dir}" is not a folder`,
      );
    }
  }
  return openSiteStore({ kind: 'fs', dir });
}

function normalisePrefix(p: string): string {
  let t = p;
  while (t.startsWith('/')) t = t.slice(1);
  return t === '' || t.endsWith('/') ? t : `${t}/`;
}

/** A target written as a path (`./site`, `/srv/site`, `../x`), never a bucket name. */
async function looksLikePath(target: string): Promise<boolean> {
  const { isAbsolute } = await import('node:path');
  return (
    isAbsolute(target) || target.startsWith('.') || target.startsWith('~') || target.endsWith('/')
  );
}

async function loadConfig(): Promise<Config> {
  const { loadConfig } = await import('../core/config.js');
  try {
    return loadConfig(process.env);
  } catch (err) {
    fail(err);
  }
}

function runUntilSignal(
  name: string,
  resource: { close(): Promise<void> },
  level: string,
): Promise<void> {
  return import('./run-until-signal.js').then((m) => m.runUntilSignal(name, resource, level));
}

export function registerStaticCommands(program: Command): void {
  const staticCmd = program
    .command('static')
    .description('Static Content Hosting: serve a folder or a deployed site; deploy and roll back');

  staticCmd
    .command('serve')
    .description(
      'serve <folder>, or the live deployed version from a store (<bucket/prefix> on CDP_S3_ENDPOINT, or --store <folder>)',
    )
    .argument('[target]', 'a folder to serve as is, or bucket/prefix of a deployed site')
    .option('--store <folder>', 'serve the live version deployed to this local store folder')
    .option('--prefix <prefix>', 'site prefix in the store', 'site/')
    .option('--port <port>', 'port (0 picks a free one)', port, 8081)
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .action(
      async (target: string | undefined, opts: StoreOptions & { port: number; host: string }) => {
        const cfg = await loadConfig();
        try {
          const { serveStatic } = await import('./storage-verbs.js');
          const kind = target === undefined ? 'none' : await folderKind(target);
          let server: { url: string; close(): Promise<void> };
          if (target !== undefined && !opts.store && kind === 'folder') {
            server = await serveStatic({ dir: target, port: opts.port, host: opts.host });
          } else {
            let storeOpts: StoreOptions = { ...opts, prefix: normalisePrefix(opts.prefix) };
            if (target !== undefined && !opts.store) {
              if (kind === 'other') throw new UsageError(`"${target}" is a file, not a folder`);
              if (!cfg.s3 || (await looksLikePath(target))) {
                throw new UsageError(
                  `there is no folder "${target}" to serve${cfg.s3 ? '' : ' (and CDP_S3_ENDPOINT is not set, so it is not read as <bucket/prefix>)'}`,
                );
              }
              const [bucket, ...rest] = target.split('/');
              storeOpts = { bucket: bucket!, prefix: normalisePrefix(rest.join('/') || 'site/') };
            }
            const store = await siteStore(cfg, storeOpts, true);
            const s = await serveStatic({
              store,
              prefix: storeOpts.prefix,
              port: opts.port,
              host: opts.host,
            });
            server = {
              url: s.url,
              close: async () => {
                await s.close();
                await store.close?.();
              },
            };
          }
          await runUntilSignal('static server', server, cfg.logLevel);
        } catch (err) {
          fail(err);
        }
      },
    );

  staticCmd
    .command('deploy')
    .description(
      'fingerprint assets, rewrite references to them in HTML and CSS, upload a new version with its manifest, and make it live atomically (identical content: nothing uploaded)',
    )
    .argument('<dir>', 'the built site')
    .option('--store <folder>', 'local store folder (default: <CDP_DATA_DIR>/site)')
    .option('--bucket <bucket>', 'deploy to this bucket on CDP_S3_ENDPOINT instead')
    .option('--prefix <prefix>', 'site prefix in the store', 'site/')
    .action(async (dir: string, opts: StoreOptions) => {
      const cfg = await loadConfig();
      try {
        if ((await folderKind(dir)) !== 'folder')
          throw new UsageError(`there is no folder "${dir}" to deploy`);
        const { deployStatic } = await import('../storage/index.js');
        const { Progress } = await import('./progress.js');
        const out = (l: string) => process.stdout.write(`${l}\n`);
        const store = await siteStore(cfg, opts, false);
        try {
          let progress: InstanceType<typeof Progress> | undefined;
          const r = await deployStatic({
            dir,
            store,
            prefix: normalisePrefix(opts.prefix),
            onUpload: (done, total, path) => {
              progress ??= new Progress({ label: 'deploy', total, line: out });
              progress.step(`uploaded ${path}`, { done, detail: path });
            },
          });
          progress?.end();
          if (!r.unchanged)
            for (const w of r.rewrites) out(`rewrote ${w.file}: ${w.from} -> ${w.to}`);
          for (const m of r.missing) {
            process.stderr.write(
              `warning: ${m.file} refers to ${m.ref}, which is not in ${dir} (left as is)\n`,
            );
          }
          if (r.unchanged) {
            out(
              `unchanged: version ${r.version} is live with this content (${r.files} files); nothing uploaded`,
            );
          } else {
            out(
              `deployed version ${r.version}: ${r.files} files, ${r.bytes} bytes, ${r.rewrites.length} references rewritten${r.previous ? ` (previous ${r.previous})` : ''}`,
            );
          }
        } finally {
          await store.close?.();
        }
      } catch (err) {
        fail(err);
      }
    });

  staticCmd
    .command('rollback')
    .description('make the previous deployed version live again')
    .option('--store <folder>', 'local store folder (default: <CDP_DATA_DIR>/site)')
    .option('--bucket <bucket>', 'the bucket on CDP_S3_ENDPOINT instead')
    .option('--prefix <prefix>', 'site prefix in the store', 'site/')
    .action(async (opts: StoreOptions) => {
      const cfg = await loadConfig();
      try {
        const { rollbackStatic } = await import('../storage/index.js');
        const store = await siteStore(cfg, opts, true);
        try {
          const r = await rollbackStatic({ store, prefix: normalisePrefix(opts.prefix) });
          process.stdout.write(`live version is now ${r.version} (was ${r.from})\n`);
        } finally {
          await store.close?.();
        }
      } catch (err) {
        fail(err);
      }
    });
}
