import { randomBytes } from 'node:crypto';
import { importOptional } from '../core/optional-dependency.js';

/** A database made for one suite or benchmark run; `drop()` removes it. */
export interface TempDatabase {
  /** The URL of the new database (the server's URL with its name as the path). */
  readonly url: string;
  readonly name: string;
  drop(): Promise<void>;
}

async function admin(url: string, statement: string): Promise<void> {
  const { default: pg } = await importOptional(
    'pg',
    'a temporary PostgreSQL database',
    () => import('pg'),
  );
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

/**
 * Create a fresh database on the PostgreSQL server of `url`, so that suites and benchmark runs
 * never share state. The name is `<prefix>_<random>`, or `name` when given (a benchmark's fixed
 * name, dropped first if a killed run left it behind).
 */
export async function createTempDatabase(
  url: string,
  options: { prefix?: string; name?: string } = {},
): Promise<TempDatabase> {
  const name = options.name ?? `${options.prefix ?? 'cdp_t'}_${randomBytes(6).toString('hex')}`;
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) {
    throw new Error(`temporary database name "${name}" must be a lower-case SQL identifier`);
  }
  if (options.name) await admin(url, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin(url, `CREATE DATABASE ${name}`);
  const u = new URL(url);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    name,
    drop: () => admin(url, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
  };
}
