import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { describe, it } from 'vitest';

/**
 * Server suites run when their engine's URL is set. Otherwise they print one line
 * `skipped: <suite> (set VAR)`; under CI=true a skipped server suite fails the run, because CI
 * must prove the real engines.
 */
export type ServerVariable =
  | 'CDP_DATABASE_URL'
  | 'CDP_REDIS_URL'
  | 'CDP_NATS_URL'
  | 'CDP_AMQP_URL'
  | 'CDP_S3_ENDPOINT';

export function serverUrl(variable: ServerVariable): string | undefined {
  const v = process.env[variable];
  return v && v.length > 0 ? v : undefined;
}

export function describeServer(
  suite: string,
  variable: ServerVariable,
  body: (url: string) => void,
): void {
  const url = serverUrl(variable);
  if (url) {
    describe(suite, () => body(url));
    return;
  }
  console.log(`skipped: ${suite} (set ${variable})`);
  if (process.env.CI === 'true') {
    describe(suite, () => {
      it(`runs under CI (needs ${variable})`, () => {
        throw new Error(
          `${variable} is not set under CI=true: the server suite "${suite}" must run in CI`,
        );
      });
    });
    return;
  }
  // Registered as skipped, so that the report counts it and a file of server suites only is valid.
  describe.skip(suite, () => {
    it(`needs ${variable}`, () => {});
  });
}

/** A fresh database on the server of `url`, dropped by `drop()`: suites never share state. */
export async function createTempDatabase(
  url: string,
  prefix = 'cdp_t',
): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `${prefix}_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const u = new URL(url);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}
