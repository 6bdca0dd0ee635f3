#!/usr/bin/env node
/**
 * The `cdp` command line. Only commander and the option parsers load at start: each action
 * imports its implementation when it runs, so `cdp --help` and `cdp --version` load no engine
 * client and no module code (a static import test keeps it so).
 */
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import type { Config } from '../core/config.js';
import { CdpError, ConfigError, errorMessage } from '../core/errors.js';
import { fail, httpUrl, port, positiveInt } from './options.js';
import { registerReplicationCommands } from './replication-verbs.js';
import { registerShardCommands } from './shard-verbs.js';
import { registerStaticCommands } from './static-commands.js';

async function config(): Promise<Config> {
  const { loadConfig } = await import('../core/config.js');
  try {
    return loadConfig(process.env);
  } catch (err) {
    fail(err);
  }
}

async function logger(level: string) {
  const { createLogger } = await import('../core/logger.js');
  return createLogger({ level: level as 'info' });
}

/** package.json is two folders up from both src/cli/cdp.ts and dist/cli/cdp.js. */
function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
  return String((pkg as { version: unknown }).version);
}

const program = new Command();
program
  .name('cdp')
  .description('cloud-data-patterns: reference platform and tools')
  .version(version(), '-V, --version', 'print the version of cloud-data-patterns')
  .showHelpAfterError();

program
  .command('start')
  .description(
    'run the reference platform (engines chosen by CDP_* variables; embedded defaults when unset)',
  )
  .action(async () => {
    const cfg = await config();
    const log = await logger(cfg.logLevel);
    const { startPlatform } = await import('../app/platform.js');
    const { Lifecycle } = await import('../core/lifecycle.js');
    const { closeOnSignalsAndLog } = await import('./run-until-signal.js');
    try {
      const platform = await startPlatform({ config: cfg, logger: log });
      const lifecycle = new Lifecycle(log);
      lifecycle.use('platform', platform);
      closeOnSignalsAndLog(lifecycle, log);
      const { referencePath } = await import('../app/api-reference.js');
      if (platform.demoKeys)
        process.stdout.write(`demo API keys (shown once) in ${platform.demoKeys.file}\n`);
      process.stdout.write(
        `listening on ${platform.url}\ndashboard:     ${platform.url}/dashboard/\nAPI reference: ${platform.url}${referencePath}\n`,
      );
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
    const cfg = await config();
    const log = await logger(cfg.logLevel);
    const { platformMigrations } = await import('../app/platform.js');
    const { migrate } = await import('../engines/sql/migrations.js');
    const { openSql } = await import('../engines/sql/open.js');
    const { Progress } = await import('./progress.js');
    try {
      const sql = await openSql(cfg.database, { logger: log, max: 2 });
      try {
        const migrations = platformMigrations();
        const progress = new Progress({
          label: 'migrate',
          total: migrations.length,
          line: (l) => process.stdout.write(`${l}\n`),
        });
        let done = 0;
        const r = await migrate(sql, migrations, {
          onApplied: (m) =>
            progress.step(`applied ${m.module}#${m.version} ${m.name}`, {
              done: ++done,
              detail: `${m.module}#${m.version} ${m.name}`,
            }),
        });
        progress.end();
        process.stdout.write(`${r.applied.length} applied, ${r.skipped} already there\n`);
      } finally {
        await sql.close();
      }
    } catch (err) {
      fail(err);
    }
  });

program
  .command('bench')
  .description(
    'run a benchmark suite: ours and its peers side by side, results in bench/results/<suite>.json',
  )
  .argument('<suite>', 'suite name (sql, ...)')
  .option('--quick', 'a short run (under a minute)')
  .option('--out <dir>', 'results folder', 'bench/results')
  .option(
    '--json',
    'print the results as JSON on stdout instead of the table (progress stays on stderr)',
  )
  .action(async (suite: string, opts: { quick?: boolean; out: string; json?: boolean }) => {
    const { runBench } = await import('../bench/run.js');
    const { Progress } = await import('./progress.js');
    const progress = new Progress({
      label: `bench ${suite}`,
      line: (l) => process.stderr.write(`[${suite}] ${l}\n`),
    });
    try {
      const results = await runBench(suite, {
        quick: Boolean(opts.quick),
        outDir: opts.out,
        progress: (l) => progress.step(l),
        out: (l) => {
          progress.end();
          if (!opts.json) process.stdout.write(`${l}\n`);
        },
      });
      if (opts.json) process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
    } catch (err) {
      fail(err);
    }
  });

program
  .command('doctor')
  .description('show which engine serves each role, connect to each, and say what is unreachable')
  .option('--timeout <ms>', 'per-engine timeout', positiveInt, 3000)
  .option('--json', 'print the checks as JSON (an array, one object per role) and nothing else')
  .action(async (opts: { timeout: number; json?: boolean }) => {
    const cfg = await config();
    const { runDoctor, formatDoctor } = await import('./doctor.js');
    const checks = await runDoctor(cfg, opts.timeout);
    process.stdout.write(`${opts.json ? JSON.stringify(checks, null, 2) : formatDoctor(checks)}\n`);
    process.exitCode = checks.every((c) => c.ok) ? 0 : 1;
  });

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
  const cfg = await config();
  if (cfg.natsUrl || cfg.amqpUrl) {
    const { openBroker } = await import('../messaging/index.js');
    const broker = await openBroker({
      natsUrl: cfg.natsUrl,
      amqpUrl: cfg.amqpUrl,
      prefix: opts.prefix,
      logger: await logger('warn'),
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
  const apiKey = (await config()).apiKey;
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
  .option(
    '--platform <url>',
    'running platform to ask when the broker is in-process',
    httpUrl('http://127.0.0.1:8080'),
  )
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
  .option(
    '--platform <url>',
    'running platform to ask when the broker is in-process',
    httpUrl('http://127.0.0.1:8080'),
  )
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

dlq
  .command('redeliver')
  .description(
    'deliver a message again by id (a dead letter, or one the running platform delivered recently): consumers with an inbox drop it',
  )
  .argument('<id>', 'message id (from `cdp dlq list` or a flow trace)')
  .option(
    '--platform <url>',
    'the running platform (it keeps the recent deliveries)',
    httpUrl('http://127.0.0.1:8080'),
  )
  .action(async (id: string, opts: { platform?: string }) => {
    try {
      const cfg = await config();
      const base = opts.platform ?? `http://127.0.0.1:${cfg.http.port || 8080}`;
      const r = (await platformCall(
        `${base}/api/enrollment/messages/${encodeURIComponent(id)}/redeliver`,
        { method: 'POST' },
      )) as { id: string; from: string; groups: string[] };
      process.stdout.write(`redelivered ${r.id} (from ${r.from}) to ${r.groups.join(', ')}\n`);
    } catch (err) {
      fail(err);
    }
  });

// ------------------------------------------------------------------ workflows

const workflow = program
  .command('workflow')
  .description(
    'durable workflow runs in the database (CDP_DATABASE_URL, or the PGlite folder when no platform holds it)',
  );

async function runsCommand(
  fn: (sql: import('../engines/sql/index.js').SqlClient) => Promise<string>,
) {
  const cfg = await config();
  const { withRuns } = await import('./workflow-verbs.js');
  try {
    process.stdout.write(`${await withRuns(cfg.database, fn)}\n`);
  } catch (err) {
    fail(err);
  }
}

workflow
  .command('list')
  .description('list runs, newest first')
  .option(
    '--status <status>',
    'only runs in this status (pending, running, sleeping, waiting, blocked, completed, failed, cancelled)',
  )
  .option('--name <workflow>', 'only runs of this workflow')
  .option('--queue <queue>', 'only runs of this queue')
  .option('--limit <n>', 'at most this many', positiveInt, 100)
  .option('--json', 'print JSON')
  .action(
    async (opts: {
      status?: string;
      name?: string;
      queue?: string;
      limit: number;
      json?: boolean;
    }) => {
      const { listCommand, parseStatus } = await import('./workflow-verbs.js');
      let status: ReturnType<typeof parseStatus> | undefined;
      try {
        status = opts.status === undefined ? undefined : parseStatus(opts.status);
      } catch (err) {
        fail(err);
      }
      await runsCommand((sql) =>
        listCommand(sql, {
          limit: opts.limit,
          ...(status ? { status } : {}),
          ...(opts.name ? { name: opts.name } : {}),
          ...(opts.queue ? { queue: opts.queue } : {}),
          ...(opts.json ? { json: true } : {}),
        }),
      );
    },
  );

workflow
  .command('show')
  .description('a run with its step history and timing')
  .argument('<id>', 'run id (from `cdp workflow list`)')
  .option('--json', 'print JSON')
  .action(async (id: string, opts: { json?: boolean }) => {
    const { showCommand } = await import('./workflow-verbs.js');
    await runsCommand((sql) => showCommand(sql, id, opts.json === true));
  });

workflow
  .command('cancel')
  .description('cancel a run and its child runs')
  .argument('<id>', 'run id')
  .action(async (id: string) => {
    const { cancelCommand } = await import('./workflow-verbs.js');
    await runsCommand((sql) => cancelCommand(sql, id));
  });

workflow
  .command('resume')
  .description('put a failed, cancelled or blocked run back to work from its last recorded step')
  .argument('<id>', 'run id')
  .action(async (id: string) => {
    const { resumeCommand } = await import('./workflow-verbs.js');
    await runsCommand((sql) => resumeCommand(sql, id));
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
    const cfg = await config();
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
        logger: await logger(cfg.logLevel),
      });
      const { runUntilSignal } = await import('./run-until-signal.js');
      runUntilSignal('storage server', server, cfg.logLevel);
    } catch (err) {
      fail(err);
    }
  });

// ------------------------------------------------------------------ guided tour

program
  .command('demo')
  .description(
    'a guided tour of every pattern on the platform: narrated steps, a summary, exit 0 only if each held (starts a platform on the embedded defaults unless --platform)',
  )
  .option(
    '--platform <url>',
    'a started platform to tour (needs an admin key)',
    httpUrl('http://127.0.0.1:8080'),
  )
  .option('--key <token>', 'an admin API key of that platform (default: CDP_API_KEY)')
  .option('--keys <file>', "take the admin key from the platform's demo-keys.json")
  .option('--json', 'print the summary as JSON on stdout (the narration goes to stderr)')
  .action(async (opts: { platform?: string; key?: string; keys?: string; json?: boolean }) => {
    const cfg = await config();
    const { runDemo, formatSummary } = await import('./demo.js');
    try {
      const summary = await runDemo({
        platform: opts.platform,
        key: opts.key,
        envKey: cfg.apiKey,
        keys: opts.keys,
        narrate: (l) => (opts.json ? process.stderr : process.stdout).write(`${l}\n`),
      });
      if (opts.json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
      else process.stdout.write(`\n${formatSummary(summary)}\n`);
      if (!summary.held && summary.failed)
        process.stderr.write(
          `error: the tour failed at step "${summary.failed.step}": expected ${summary.failed.expected}; got ${summary.failed.got}\n`,
        );
      process.exit(summary.held ? 0 : 1);
    } catch (err) {
      fail(err);
    }
  });

registerStaticCommands(program);
registerReplicationCommands(program);
registerShardCommands(program);

program.parseAsync(process.argv).catch(fail);
