import { access, constants, readFile, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { type Config, redactUrl } from '../core/config.js';
import { errorMessage } from '../core/errors.js';
import { importOptional } from '../core/optional-dependency.js';
// The connectors load their engine clients when they connect (a missing one is a
// MissingDependencyError naming the package), so importing them here loads no client.
import { connectAmqp } from '../engines/amqp/index.js';
import { connectNats } from '../engines/nats/index.js';
import { connectRedis } from '../engines/redis/index.js';

export interface DoctorCheck {
  role: string;
  engine: string;
  target: string;
  ok: boolean;
  detail: string;
  /** What to change when it is not ok. */
  fix?: string;
}

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t = performance.now();
  const value = await fn();
  return { ms: Math.round((performance.now() - t) * 10) / 10, value };
}

/** The folder itself if it exists, else its nearest existing ancestor. */
async function nearestExisting(dir: string): Promise<string> {
  let d = dir;
  for (;;) {
    try {
      await stat(d);
      return d;
    } catch {
      const up = dirname(d);
      if (up === d) return d;
      d = up;
    }
  }
}

/** Whether a folder is writable, or could be created: looks, never creates. */
async function checkFolder(
  role: string,
  engine: string,
  dir: string,
  variable: string,
): Promise<DoctorCheck> {
  const abs = resolve(dir);
  try {
    const existing = await nearestExisting(abs);
    await access(existing, constants.W_OK);
    let detail =
      existing === abs ? 'folder writable' : `folder not there yet; ${existing} is writable`;
    const lock = await readFile(join(abs, 'pglite', 'cdp.lock'), 'utf8').catch(() => undefined);
    if (lock && role === 'sql') detail += `; in use by process ${lock.trim()}`;
    return { role, engine, target: abs, ok: true, detail };
  } catch (err) {
    return {
      role,
      engine,
      target: abs,
      ok: false,
      detail: errorMessage(err),
      fix: `set ${variable} to a folder this user can write`,
    };
  }
}

/** Which engine serves each role, and whether it answers. Never changes anything. */
export async function runDoctor(config: Config, timeoutMs = 3000): Promise<DoctorCheck[]> {
  const checks: Promise<DoctorCheck>[] = [];
  if (config.database.kind === 'postgres') {
    const url = config.database.url;
    checks.push(
      timed(async () => {
        // Engine clients are optional: each is loaded only when its engine is configured.
        const { PgSqlClient } = await importOptional(
          'pg',
          'a PostgreSQL check',
          () => import('../engines/sql/pg-sql-client.js'),
        );
        const c = await PgSqlClient.open({ url, connectTimeoutMs: timeoutMs, max: 1 });
        try {
          const { rows } = await c.query<{ v: string }>('SHOW server_version');
          return rows[0]?.v ?? '?';
        } finally {
          await c.close();
        }
      }).then(
        ({ ms, value }) => ({
          role: 'sql',
          engine: 'postgres',
          target: redactUrl(url),
          ok: true,
          detail: `PostgreSQL ${value}, ${ms} ms`,
        }),
        (err: unknown) => ({
          role: 'sql',
          engine: 'postgres',
          target: redactUrl(url),
          ok: false,
          detail: errorMessage(err),
          fix: 'fix CDP_DATABASE_URL, or unset it to use embedded PGlite',
        }),
      ),
    );
  } else {
    const dir = config.database.dataDir;
    checks.push(
      dir
        ? checkFolder('sql', 'pglite', dir, 'CDP_DATA_DIR')
        : Promise.resolve({
            role: 'sql',
            engine: 'pglite',
            target: 'memory',
            ok: true,
            detail: 'in memory: nothing is kept after exit',
          }),
    );
  }
  if (config.redisUrl) {
    const url = config.redisUrl;
    checks.push(
      timed(async () => {
        const r = await connectRedis({ url, connectTimeoutMs: timeoutMs });
        try {
          return await r.ping();
        } finally {
          r.destroy();
        }
      }).then(
        ({ ms }) => ({
          role: 'cache',
          engine: 'redis',
          target: redactUrl(url),
          ok: true,
          detail: `PONG, ${ms} ms`,
        }),
        (err: unknown) => ({
          role: 'cache',
          engine: 'redis',
          target: redactUrl(url),
          ok: false,
          detail: errorMessage(err),
          fix: 'fix CDP_REDIS_URL, or unset it to cache in process only',
        }),
      ),
    );
  } else {
    checks.push(
      Promise.resolve({
        role: 'cache',
        engine: 'in-process',
        target: '-',
        ok: true,
        detail: 'no distributed tier (set CDP_REDIS_URL for one)',
      }),
    );
  }
  if (config.natsUrl) {
    const url = config.natsUrl;
    const role = 'broker';
    checks.push(
      timed(async () => {
        const { jetstreamManager } = await importOptional(
          '@nats-io/jetstream',
          'a NATS JetStream check',
          () => import('@nats-io/jetstream'),
        );
        const nc = await connectNats({ url, connectTimeoutMs: timeoutMs });
        try {
          const jsm = await jetstreamManager(nc, { timeout: timeoutMs });
          const info = await jsm.getAccountInfo();
          return `JetStream on, ${info.streams} stream(s)`;
        } finally {
          await nc.close();
        }
      }).then(
        ({ ms, value }) => ({
          role,
          engine: 'nats',
          target: redactUrl(url),
          ok: true,
          detail: `${value}, ${ms} ms`,
        }),
        (err: unknown) => ({
          role,
          engine: 'nats',
          target: redactUrl(url),
          ok: false,
          detail: errorMessage(err),
          fix: 'fix CDP_NATS_URL (a NATS server started with -js), or unset it',
        }),
      ),
    );
  }
  if (config.amqpUrl) {
    const url = config.amqpUrl;
    const role = config.natsUrl ? 'broker (unused: CDP_NATS_URL takes precedence)' : 'broker';
    checks.push(
      timed(async () => {
        const conn = await connectAmqp({ url, connectTimeoutMs: timeoutMs });
        await conn.close();
      }).then(
        ({ ms }) => ({
          role,
          engine: 'rabbitmq',
          target: redactUrl(url),
          ok: true,
          detail: `connected, ${ms} ms`,
        }),
        (err: unknown) => ({
          role,
          engine: 'rabbitmq',
          target: redactUrl(url),
          ok: false,
          detail: errorMessage(err),
          fix: 'fix CDP_AMQP_URL, or unset it',
        }),
      ),
    );
  }
  if (!config.natsUrl && !config.amqpUrl) {
    checks.push(
      Promise.resolve({
        role: 'broker',
        engine: 'in-process',
        target: '-',
        ok: true,
        detail: 'messages stay in this process (set CDP_NATS_URL or CDP_AMQP_URL)',
      }),
    );
  }
  if (config.s3) {
    const endpoint = config.s3.endpoint;
    checks.push(
      timed(async () => {
        const res = await fetch(endpoint, {
          method: 'HEAD',
          signal: AbortSignal.timeout(timeoutMs),
        });
        return res.status;
      }).then(
        ({ ms, value }) => ({
          role: 'static sites',
          engine: 's3',
          target: endpoint,
          ok: true,
          detail: `HTTP ${value}, ${ms} ms`,
        }),
        (err: unknown) => ({
          role: 'static sites',
          engine: 's3',
          target: endpoint,
          ok: false,
          detail: errorMessage(err),
          fix: 'fix CDP_S3_ENDPOINT, or unset it and use `cdp static --store <folder>`',
        }),
      ),
    );
  }
  // The platform's media feature keeps its objects under <CDP_DATA_DIR>/storage (a temporary
  // folder when the data is in memory).
  checks.push(
    config.dataDir === 'memory://'
      ? Promise.resolve({
          role: 'media storage',
          engine: 'built-in S3 server (filesystem)',
          target: '-',
          ok: true,
          detail: 'a temporary folder, removed at shutdown (CDP_DATA_DIR=memory://)',
        })
      : checkFolder(
          'media storage',
          'built-in S3 server (filesystem)',
          join(config.dataDir, 'storage'),
          'CDP_DATA_DIR',
        ),
  );
  return Promise.all(checks);
}

export function formatDoctor(checks: DoctorCheck[]): string {
  const rows = [
    ['role', 'engine', 'target', 'status'],
    ...checks.map((c) => [
      c.role,
      c.engine,
      c.target,
      `${c.ok ? 'ok' : 'UNREACHABLE'}: ${c.detail}`,
    ]),
  ];
  const widths = [0, 1, 2].map((i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = rows.map((r) =>
    r.map((cell, i) => (i < 3 ? cell.padEnd(widths[i]!) : cell)).join('  '),
  );
  for (const c of checks) if (!c.ok && c.fix) lines.push(`fix: ${c.fix}`);
  return lines.join('\n');
}
