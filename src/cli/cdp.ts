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

program.parseAsync(process.argv).catch(fail);
