/**
 * cloud-data-patterns/replication/postgres: a replica router over PostgreSQL URLs, on `pg`
 * (an optional peer dependency; importing this entry without it fails with a
 * `MissingDependencyError` that names the package to install).
 */
import type { Logger } from 'pino';
import type { Clock } from '../core/clock.js';
import { redactUrl } from '../core/config.js';
import { ConfigError } from '../core/errors.js';
import { importOptional } from '../core/optional-dependency.js';
import type { SqlClient } from '../engines/sql/sql-client.js';
import { type ReadConsistency, ReplicaRouter } from './replica-router.js';

const { PgSqlClient } = await importOptional(
  'pg',
  'the PostgreSQL replica router (cloud-data-patterns/replication/postgres)',
  () => import('../engines/sql/pg-sql-client.js'),
);

export interface OpenReplicaRouterOptions {
  /** postgres://... of the primary. */
  primaryUrl: string;
  /** postgres://... of each streaming standby; each is checked to be one. */
  replicaUrls: readonly string[];
  /** Pool size per server. Default 10. */
  max?: number;
  pollIntervalMs?: number;
  waitForReplicaMs?: number;
  defaultRead?: ReadConsistency;
  /** The variable the URLs came from, named in errors. Default CDP_REPLICA_URLS. */
  variable?: string;
  clock?: Clock;
  logger?: Logger;
}

/** The name a server is reported under: host:port. */
export function serverName(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || '5432'}`;
  } catch {
    throw new ConfigError(
      `not a PostgreSQL URL: ${redactUrl(url)}; expected postgres://user@host:port/db`,
    );
  }
}

/** The URL with `synchronous_commit` set for every session it opens. */
export function withSynchronousCommit(url: string, level: 'remote_apply' | 'local'): string {
  const u = new URL(url);
  u.searchParams.set('options', `-c synchronous_commit=${level}`);
  return u.toString();
}

/**
 * Opens pools to the primary (twice: one for asynchronous commits, `synchronous_commit =
 * local`, and one for `{ commit: 'sync' }` writes, `remote_apply`) and to every replica, and a
 * `ReplicaRouter` over them. `close()` closes the router and every pool.
 */
export async function openReplicaRouter(options: OpenReplicaRouterOptions): Promise<ReplicaRouter> {
  const variable = options.variable ?? 'CDP_REPLICA_URLS';
  const opened: SqlClient[] = [];
  const open = async (url: string) => {
    const client = await PgSqlClient.open({
      url,
      max: options.max ?? 10,
      variable,
      applicationName: 'cdp-replica-router',
      ...(options.logger ? { logger: options.logger } : {}),
    });
    opened.push(client);
    return client;
  };
  try {
    const primaryName = serverName(options.primaryUrl);
    const names = options.replicaUrls.map(serverName);
    const primary = await open(withSynchronousCommit(options.primaryUrl, 'local'));
    const syncClient = await open(withSynchronousCommit(options.primaryUrl, 'remote_apply'));
    const replicas = [];
    for (const [i, url] of options.replicaUrls.entries()) {
      replicas.push({ name: names[i]!, client: await open(url) });
    }
    return await ReplicaRouter.open({
      primary: { name: primaryName, client: primary, syncClient },
      replicas,
      closeClients: true,
      ...(options.pollIntervalMs !== undefined ? { pollIntervalMs: options.pollIntervalMs } : {}),
      ...(options.waitForReplicaMs !== undefined
        ? { waitForReplicaMs: options.waitForReplicaMs }
        : {}),
      ...(options.defaultRead ? { defaultRead: options.defaultRead } : {}),
      ...(options.clock ? { clock: options.clock } : {}),
      ...(options.logger ? { logger: options.logger } : {}),
    });
  } catch (err) {
    await Promise.all(opened.map((c) => c.close().catch(() => {})));
    throw err;
  }
}
