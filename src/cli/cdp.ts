#!/usr/bin/env node
import { Command, InvalidArgumentError } from 'commander';
import { loadConfig } from '../core/config.js';
import { CdpError, ConfigError, errorMessage } from '../core/errors.js';
import { closeOnSignals, Lifecycle } from '../core/lifecycle.js';
import { createLogger } from '../core/logger.js';
import { migrate } from '../engines/sql/migrations.js';
import { openSql } from '../engines/sql/open.js';

/** Print a clear one-line error and exit: 2 for configuration, 1 otherwise. */
function fail(err: unknown): never {
  const code = err instanceof CdpError ? `${err.code}: ` : '';
  process.stderr.write(`error: ${code}${errorMessage(err)}\n`);
  process.exit(err instanceof ConfigError ? 2 : 1);
}

function config() {
  try {
    return loadConfig(process.env);
  } catch (err) {
    fail(err);
  }
}

const program = new Command();
program
  .name('cdp')
  .description('cloud-data-patterns: reference platform and tools')
  .showHelpAfterError();

program
  .command('start')
  .description(
    'run the reference platform (engines chosen by CDP_* variables; embedded defaults when unset)',
  )
  .action(async () => {
    const cfg = config();
    const logger = createLogger({ level: cfg.logLevel });
    const { startPlatform } = await import('../app/platform.js');
    try {
      const platform = await startPlatform({ config: cfg, logger });
      const lifecycle = new Lifecycle(logger);
      lifecycle.use('platform', platform);
      closeOnSignals(lifecycle, logger);
      if (platform.demoKeys)
        process.stdout.write(`demo API keys (shown once) in ${platform.demoKeys.file}\n`);
      process.stdout.write(`listening on ${platform.url}\n`);
    } catch (err) {
      fail(err);
    }
  });

program
  .command('migrate')
  .description(
    "apply the platform's pending migrations (safe to run from several processes at once)",
  )
  .action(async () => {
    const cfg = config();
    const logger = createLogger({ level: cfg.logLevel });
    const { platformMigrations } = await import('../app/platform.js');
    try {
      const sql = await openSql(cfg.database, { logger, max: 2 });
      try {
        const r = await migrate(sql, platformMigrations(), {
          onApplied: (m) => process.stdout.write(`applied ${m.module}#${m.version} ${m.name}\n`),
        });
        process.stdout.write(`${r.applied.length} applied, ${r.skipped} already there\n`);
      } finally {
        await sql.close();
      }
    } catch (err) {
      fail(err);
    }
  });

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a whole number >= 1');
  return n;
}

program
  .command('bench')
  .description(
    'run a benchmark suite: ours and its peers side by side, results in bench/results/<suite>.json',
  )
  .argument('<suite>', 'suite name (sql, ...)')
  .option('--quick', 'a short run (under a minute)')
  .option('--out <dir>', 'results folder', 'bench/results')
  .action(async (suite: string, opts: { quick?: boolean; out: string }) => {
    const { runBench } = await import('../bench/run.js');
    try {
      await runBench(suite, { quick: Boolean(opts.quick), outDir: opts.out });
    } catch (err) {
      fail(err);
    }
  });

program
  .command('doctor')
  .description('show which engine serves each role, connect to each, and say what is unreachable')
  .option('--timeout <ms>', 'per-engine timeout', positiveInt, 3000)
  .action(async (opts: { timeout: number }) => {
    const cfg = config();
    const { runDoctor, formatDoctor } = await import('./doctor.js');
    const checks = await runDoctor(cfg, opts.timeout);
    process.stdout.write(`${formatDoctor(checks)}\n`);
    process.exitCode = checks.every((c) => c.ok) ? 0 : 1;
  });

/** Keep a server running until SIGINT/SIGTERM, then close it. */
function runUntilSignal(name: string, resource: { close(): Promise<void> }, level: string): void {
  const logger = createLogger({ level: level as 'info' });
  const lifecycle = new Lifecycle(logger);
  lifecycle.use(name, resource);
  closeOnSignals(lifecycle, logger);
}

function port(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new InvalidArgumentError('must be a port number from 0 to 65535 (0 picks a free one)');
  return n;
}

// ------------------------------------------------------------------ dead letters

const dlq = program
  .command('dlq')
  .description(
    'dead letters of the platform broker (NATS with CDP_NATS_URL, RabbitMQ with CDP_AMQP_URL, else the running platform)',
  );

interface DlqOptions {
  prefix: string;
  platform?: string;
}

/**
 * The in-process broker keeps its dead letters inside the running platform, so without a broker
 * URL the CLI asks the platform's HTTP API; with one it talks to the broker directly.
 */
async function withDeadLetters<T>(
  opts: DlqOptions,
  viaBroker: (broker: import('../messaging/index.js').Broker) => Promise<T>,
  viaPlatform: (base: string) => Promise<T>,
): Promise<T> {
  const cfg = config();
  if (cfg.natsUrl || cfg.amqpUrl) {
    const { openBroker } = await import('../messaging/index.js');
    const broker = await openBroker({
      natsUrl: cfg.natsUrl,
      amqpUrl: cfg.amqpUrl,
      prefix: opts.prefix,
      logger: createLogger({ level: 'warn' }),
    });
    try {
      return await viaBroker(broker);
    } finally {
      await broker.close();
    }
  }
  const base = opts.platform ?? `http://127.0.0.1:${cfg.http.port || 8080}`;
  return viaPlatform(base);
}

async function platformCall(url: string, init?: RequestInit): Promise<unknown> {
  let res: Response;
  // The platform's private routes need an API key (CDP_API_KEY).
  const apiKey = config().apiKey;
  const headers = new Headers(init?.headers);
  if (apiKey) headers.set('authorization', `Bearer ${apiKey}`);
  try {
    res = await fetch(url, { ...init, headers });
  } catch (err) {
    throw new CdpError(
      'PLATFORM_UNREACHABLE',
      `no platform answers at ${new URL(url).origin} (${errorMessage(err)}); start it with \`cdp start\`, pass --platform <url>, or set CDP_NATS_URL / CDP_AMQP_URL to read a broker directly`,
    );
  }
  const body = (await res.json().catch(() => ({}))) as {
    error?: { code?: string; message?: string };
  };
  if (!res.ok) {
    throw new CdpError(
      body.error?.code ?? 'PLATFORM_ERROR',
      body.error?.message ?? `${init?.method ?? 'GET'} ${url} answered ${res.status}`,
    );
  }
  return body;
}

dlq
  .command('list')
  .description('list dead letters, oldest first')
  .option('--limit <n>', 'at most this many', positiveInt, 100)
  .option('--group <group>', 'only this consumer group')
  .option('--prefix <prefix>', 'stream / exchange prefix of the broker', 'cdp_app')
  .option('--platform <url>', 'running platform to ask when the broker is in-process')
  .option('--json', 'print JSON')
  .action(async (opts: DlqOptions & { limit: number; group?: string; json?: boolean }) => {
    const { dlqList } = await import('../messaging/index.js');
    const { formatDeadLetters } = await import('./messaging-text.js');
    try {
      const list = await withDeadLetters(
        opts,
        (broker) =>
          dlqList(broker, { limit: opts.limit, ...(opts.group ? { group: opts.group } : {}) }),
        async (base) =>
          (
            (await platformCall(`${base}/api/enrollment/dlq`)) as {
              deadLetters: Awaited<ReturnType<typeof dlqList>>;
            }
          ).deadLetters,
      );
      process.stdout.write(
        `${opts.json ? JSON.stringify(list, null, 2) : formatDeadLetters(list)}\n`,
      );
    } catch (err) {
      fail(err);
    }
  });

dlq
  .command('replay')
  .description('publish a dead letter again to its consumer group')
  .argument('<id>', 'dead-letter id (from `cdp dlq list`)')
  .option('--prefix <prefix>', 'stream / exchange prefix of the broker', 'cdp_app')
  .option('--platform <url>', 'running platform to ask when the broker is in-process')
  .action(async (id: string, opts: DlqOptions) => {
    const { dlqReplay } = await import('../messaging/index.js');
    try {
      const r = await withDeadLetters(
        opts,
        (broker) => dlqReplay(broker, id),
        async (base) =>
          (await platformCall(`${base}/api/enrollment/dlq/${encodeURIComponent(id)}/replay`, {
            method: 'POST',
          })) as { id: string; replayed: number },
      );
      process.stdout.write(`replayed ${r.id} (${r.replayed} message)\n`);
    } catch (err) {
      fail(err);
    }
  });

// ------------------------------------------------------------------ storage server

program
  .command('storage')
  .description('the built-in S3-compatible storage server')
  .command('serve')
  .description(
    'serve a folder over the S3 REST API (SigV4, presigned URLs, POST policies); keys from CDP_STORAGE_ACCESS_KEY_ID / CDP_STORAGE_SECRET_ACCESS_KEY',
  )
  .requiredOption('--dir <folder>', 'where buckets and objects are kept')
  .option('--port <port>', 'port (0 picks a free one)', port, 9000)
  .option('--host <host>', 'address to listen on', '127.0.0.1')
  .action(async (opts: { dir: string; port: number; host: string }) => {
    const cfg = config();
    if (!cfg.storage) {
      fail(
        new ConfigError(
          'the storage server needs credentials: set CDP_STORAGE_ACCESS_KEY_ID and CDP_STORAGE_SECRET_ACCESS_KEY (and optionally CDP_STORAGE_REGION)',
          'CDP_STORAGE_ACCESS_KEY_ID',
        ),
      );
    }
    const { serveStorage } = await import('./storage-verbs.js');
    try {
      const server = await serveStorage({
        dir: opts.dir,
        port: opts.port,
        host: opts.host,
        accessKeyId: cfg.storage.accessKeyId,
        secretAccessKey: cfg.storage.secretAccessKey,
        region: cfg.storage.region,
        logger: createLogger({ level: cfg.logLevel }),
      });
      runUntilSignal('storage server', server, cfg.logLevel);
    } catch (err) {
      fail(err);
    }
  });

// ------------------------------------------------------------------ static content hosting

interface StoreOptions {
  store?: string;
  bucket?: string;
  prefix: string;
}

/** The blob store a `cdp static` verb names: a local store folder, or a bucket on CDP_S3_ENDPOINT. */
async function siteStore(opts: StoreOptions) {
  const cfg = config();
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
  return openSiteStore({ kind: 'fs', dir: opts.store ?? join(cfg.dataDir, 'site') });
}

function normalisePrefix(p: string): string {
  const t = p.replace(/^\/+/, '');
  return t === '' || t.endsWith('/') ? t : `${t}/`;
}

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
      const { stat } = await import('node:fs/promises');
      const { serveStatic } = await import('./storage-verbs.js');
      const cfg = config();
      try {
        const isDir = target !== undefined && (await stat(target).catch(() => null))?.isDirectory();
        let server: { url: string; close(): Promise<void> };
        if (isDir && !opts.store) {
          server = await serveStatic({ dir: target!, port: opts.port, host: opts.host });
        } else {
          let storeOpts: StoreOptions = { ...opts, prefix: normalisePrefix(opts.prefix) };
          if (target !== undefined && !opts.store) {
            const [bucket, ...rest] = target.split('/');
            storeOpts = { bucket: bucket!, prefix: normalisePrefix(rest.join('/') || 'site/') };
          }
          const store = await siteStore(storeOpts);
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
        runUntilSignal('static server', server, cfg.logLevel);
      } catch (err) {
        fail(err);
      }
    },
  );

staticCmd
  .command('deploy')
  .description(
    'fingerprint assets, upload a new version with its manifest, and make it live atomically',
  )
  .argument('<dir>', 'the built site')
  .option('--store <folder>', 'local store folder (default: <CDP_DATA_DIR>/site)')
  .option('--bucket <bucket>', 'deploy to this bucket on CDP_S3_ENDPOINT instead')
  .option('--prefix <prefix>', 'site prefix in the store', 'site/')
  .action(async (dir: string, opts: StoreOptions) => {
    const { deployStatic } = await import('../storage/index.js');
    try {
      const store = await siteStore(opts);
      try {
        const r = await deployStatic({ dir, store, prefix: normalisePrefix(opts.prefix) });
        process.stdout.write(
          `deployed version ${r.version}: ${r.files} files, ${r.bytes} bytes${r.previous ? ` (previous ${r.previous})` : ''}\n`,
        );
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
    const { rollbackStatic } = await import('../storage/index.js');
    try {
      const store = await siteStore(opts);
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

program.parseAsync(process.argv).catch(fail);
