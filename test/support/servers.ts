import { describe, it } from 'vitest';
import {
  createTempDatabase as createTempDatabaseWith,
  type TempDatabase,
} from '../../src/testing/index.js';

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
  | 'CDP_S3_ENDPOINT'
  | 'CDP_PG_PREPARED_URL'
  | 'CDP_MARIADB_URL'
  /** Comma-separated URLs of at least two PostgreSQL servers (tooling/pg-shard-clusters.sh). */
  | 'CDP_SHARD_TEST_URLS'
  /** Comma-separated URLs of the quorum store's Redis nodes (tooling/redis-quorum-nodes.sh). */
  | 'CDP_QUORUM_TEST_URLS'
  /**
   * Comma-separated URLs of a PostgreSQL primary and two streaming standbys, primary first
   * (tooling/pg-replica-clusters.sh).
   */
  | 'CDP_REPLICA_TEST_URLS';

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

/**
 * The temporary-database helper of `src/testing`, in the `(url, prefix)` form the suites of
 * test/app, test/storage and test/cli call. New callers use `createTempDatabase` from
 * src/testing directly.
 */
export function createTempDatabase(url: string, prefix?: string): Promise<TempDatabase> {
  return createTempDatabaseWith(url, prefix === undefined ? {} : { prefix });
}
