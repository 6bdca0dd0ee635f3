import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { CdpError } from '../../core/errors.js';
import type { SqlClient } from './sql-client.js';

/**
 * A module's schema change. Versions are numbered from 1 per module and applied in order, each
 * in its own transaction: a failing migration rolls back whole and stops the run.
 */
export interface Migration {
  /** The module that owns it, e.g. 'events'. */
  module: string;
  /** 1, 2, 3, ... without gaps. */
  version: number;
  /** Short description, e.g. 'create streams table'. */
  name: string;
  /** One or more SQL statements in the PostgreSQL dialect. */
  sql: string;
}

export interface AppliedMigration {
  module: string;
  version: number;
  name: string;
  checksum: string;
}

export class MigrationError extends CdpError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('MIGRATION_FAILED', message, options);
  }
}

/** The database holds migrations this code does not know: it was written by newer code. */
export class SchemaTooNewError extends CdpError {
  readonly module: string;
  readonly databaseVersion: number;
  readonly codeVersion: number;
  constructor(module: string, databaseVersion: number, codeVersion: number) {
    super(
      'SCHEMA_TOO_NEW',
      `the database has migration ${databaseVersion} of module "${module}", but this code knows only up to ` +
        `${codeVersion}: it was written by a newer version of cloud-data-patterns. Upgrade, or point to another database ` +
        '(CDP_DATABASE_URL or CDP_DATA_DIR). Nothing was changed.',
    );
    this.module = module;
    this.databaseVersion = databaseVersion;
    this.codeVersion = codeVersion;
  }
}

/** Fixed key for pg_advisory_xact_lock: the bytes of 'cdp-migr' read as a signed 64-bit integer. */
const MIGRATION_LOCK_KEY = '7234298406553199218';
const TABLE = 'cdp_migrations';

export function checksum(sql: string): string {
  return createHash('sha256').update(sql.replace(/\r\n/g, '\n').trim()).digest('hex').slice(0, 16);
}

function validate(migrations: readonly Migration[]): Map<string, Migration[]> {
  const byModule = new Map<string, Migration[]>();
  for (const m of migrations) {
    if (!/^[a-z][a-z0-9_-]*$/.test(m.module)) {
      throw new MigrationError(
        `migration module name ${JSON.stringify(m.module)} must be lower-case letters, digits, - or _`,
      );
    }
    if (!Number.isInteger(m.version) || m.version < 1) {
      throw new MigrationError(`migration ${m.module}#${m.version} needs a whole version >= 1`);
    }
    const list = byModule.get(m.module) ?? [];
    list.push(m);
    byModule.set(m.module, list);
  }
  for (const [module, list] of byModule) {
    list.sort((a, b) => a.version - b.version);
    list.forEach((m, i) => {
      if (m.version !== i + 1) {
        throw new MigrationError(
          `migrations of module "${module}" must be numbered 1, 2, 3, ... without gaps or repeats; found ${list.map((x) => x.version).join(', ')}`,
        );
      }
    });
  }
  return byModule;
}

export interface MigrateResult {
  applied: AppliedMigration[];
  /** Migrations that were already in the database. */
  skipped: number;
}

async function lockAndEnsureTable(tx: { query: SqlClient['query'] }): Promise<void> {
  await tx.query(`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`);
  await tx.query(`CREATE TABLE IF NOT EXISTS ${TABLE} (
    module text NOT NULL,
    version integer NOT NULL,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (module, version)
  )`);
}

async function readApplied(tx: { query: SqlClient['query'] }): Promise<AppliedMigration[]> {
  const { rows } = await tx.query<AppliedMigration>(
    `SELECT module, version, name, checksum FROM ${TABLE} ORDER BY module, version`,
  );
  return rows;
}

function checkKnown(applied: AppliedMigration[], byModule: Map<string, Migration[]>): void {
  for (const a of applied) {
    const list = byModule.get(a.module);
    if (!list) continue; // a module this process does not load: not ours to judge
    const known = list[a.version - 1];
    if (!known) throw new SchemaTooNewError(a.module, a.version, list.length);
    if (checksum(known.sql) !== a.checksum) {
      throw new MigrationError(
        `migration ${a.module}#${a.version} ("${a.name}") was changed after it was applied (checksum ${a.checksum} in the database, ` +
          `${checksum(known.sql)} in the code). Never edit an applied migration: restore it and add a new one.`,
      );
    }
  }
}

/**
 * Apply every pending migration, in order per module, each once. Every step runs in a
 * transaction that first takes a transaction-scoped advisory lock, so that processes starting
 * together on one database serialize: the second sees what the first recorded and skips it.
 * Before anything runs, the database is checked for migrations newer than the code (refused,
 * nothing changed) and for applied migrations whose text changed (refused).
 */
export async function migrate(
  sql: SqlClient,
  migrations: readonly Migration[],
  options: { logger?: Logger; onApplied?: (m: AppliedMigration) => void } = {},
): Promise<MigrateResult> {
  const byModule = validate(migrations);
  const result: MigrateResult = { applied: [], skipped: 0 };
  const appliedBefore = await sql.transaction(async (tx) => {
    await lockAndEnsureTable(tx);
    const applied = await readApplied(tx);
    checkKnown(applied, byModule);
    return applied;
  });
  const done = new Set(appliedBefore.map((a) => `${a.module}#${a.version}`));
  for (const [module, list] of byModule) {
    for (const m of list) {
      if (done.has(`${module}#${m.version}`)) {
        result.skipped++;
        continue;
      }
      const record: AppliedMigration = {
        module,
        version: m.version,
        name: m.name,
        checksum: checksum(m.sql),
      };
      const applied = await sql
        .transaction(async (tx) => {
          await lockAndEnsureTable(tx);
          // Another process may have applied it while we waited for the lock.
          const { rows } = await tx.query(
            `SELECT 1 FROM ${TABLE} WHERE module = $1 AND version = $2`,
            [module, m.version],
          );
          if (rows.length > 0) return false;
          await tx.exec(m.sql);
          await tx.query(
            `INSERT INTO ${TABLE} (module, version, name, checksum) VALUES ($1, $2, $3, $4)`,
            [record.module, record.version, record.name, record.checksum],
          );
          return true;
        })
        .catch((err: unknown) => {
          throw new MigrationError(
            `migration ${module}#${m.version} ("${m.name}") failed and was rolled back whole: ${(err as Error).message}`,
            { cause: err },
          );
        });
      if (applied) {
        result.applied.push(record);
        options.logger?.info(
          { module, version: m.version, migration: m.name },
          'migration applied',
        );
        options.onApplied?.(record);
      } else {
        result.skipped++;
      }
    }
  }
  return result;
}

/** What has been applied, without changing anything (empty when the table does not exist). */
export async function appliedMigrations(sql: SqlClient): Promise<AppliedMigration[]> {
  const { rows } = await sql.query<{ exists: boolean }>(
    `SELECT to_regclass('${TABLE}') IS NOT NULL AS exists`,
  );
  if (!rows[0]?.exists) return [];
  return readApplied(sql);
}
