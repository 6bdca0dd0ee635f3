import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { platformMigrations } from '../../src/app/platform.js';
import { migrate, PgliteSqlClient } from '../../src/engines/sql/index.js';
import { runCdp } from '../support/cli.js';
import { createTempDatabase, describeServer, serverUrl } from '../support/servers.js';

describe('cdp command line', () => {
  it('doctor reports embedded defaults as usable', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cdp-doctor-'));
    try {
      const run = await runCdp(['doctor'], { CDP_DATA_DIR: dir });
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(/sql\s+pglite/);
      expect(run.stdout).toMatch(/cache\s+in-process/);
      expect(run.stdout).toMatch(/broker\s+in-process/);
      expect(run.stdout).toMatch(/media storage\s+built-in S3 server/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('doctor names what is unreachable and which variable to fix, and exits non-zero', async () => {
    const run = await runCdp(['doctor', '--timeout', '1500'], {
      CDP_DATA_DIR: 'memory://',
      CDP_REDIS_URL: 'redis://127.0.0.1:1',
      CDP_NATS_URL: 'nats://127.0.0.1:1',
      CDP_DATABASE_URL: 'postgres://postgres@127.0.0.1:1/x',
    });
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/cache\s+redis.*UNREACHABLE/);
    expect(run.stdout).toMatch(/broker\s+nats.*UNREACHABLE/);
    expect(run.stdout).toMatch(/sql\s+postgres.*UNREACHABLE/);
    expect(run.stdout).toContain('fix: fix CDP_REDIS_URL');
    expect(run.stdout).toContain('fix: fix CDP_NATS_URL');
    expect(run.stdout).toContain('fix: fix CDP_DATABASE_URL');
  });

  it('start refuses a malformed engine URL, naming the variable (exit 2)', async () => {
    const run = await runCdp(['start'], { CDP_DATABASE_URL: 'mysql://localhost/x' });
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/CDP_DATABASE_URL.*postgres:\/\//);
  });

  it('start refuses an unreachable database, naming the variable (exit 1)', async () => {
    const run = await runCdp(['start'], {
      CDP_DATABASE_URL: 'postgres://postgres@127.0.0.1:1/x',
      CDP_PORT: '0',
    });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/ENGINE_UNAVAILABLE.*CDP_DATABASE_URL/);
  });

  it('start refuses a data folder written by a newer schema, and leaves it untouched', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cdp-newer-'));
    try {
      const sql = await PgliteSqlClient.open({ dataDir: dir });
      await migrate(sql, platformMigrations());
      await sql.query(
        "INSERT INTO cdp_migrations (module, version, name, checksum) VALUES ('catalog', 99, 'from the future', 'x')",
      );
      await sql.close();
      const run = await runCdp(['start'], { CDP_DATA_DIR: dir, CDP_PORT: '0' });
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(/SCHEMA_TOO_NEW.*migration 99 of module "catalog"/);
      const after = await PgliteSqlClient.open({ dataDir: dir });
      expect((await after.query('SELECT count(*)::int AS n FROM cdp_migrations')).rows[0]).toEqual({
        n: platformMigrations().length + 1,
      });
      await after.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('bench refuses an unknown suite with the list of suites', async () => {
    const run = await runCdp(['bench', 'nope']);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/no benchmark suite named "nope"; available: .*sql/);
  });
});

describeServer('cdp against this machine’s engines', 'CDP_DATABASE_URL', (url) => {
  it('two `cdp migrate` processes started at once apply each migration exactly once', async () => {
    const db = await createTempDatabase(url);
    try {
      const [a, b] = await Promise.all([
        runCdp(['migrate'], { CDP_DATABASE_URL: db.url }),
        runCdp(['migrate'], { CDP_DATABASE_URL: db.url }),
      ]);
      expect([a.code, b.code]).toEqual([0, 0]);
      const appliedLines = (a.stdout + b.stdout)
        .split('\n')
        .filter((l) => l.startsWith('applied '));
      expect(appliedLines.length).toBe(platformMigrations().length);
      const c = new pg.Client({ connectionString: db.url });
      await c.connect();
      const { rows } = await c.query(
        'SELECT module, version, count(*)::int AS n FROM cdp_migrations GROUP BY module, version',
      );
      await c.end();
      expect(rows.length).toBe(platformMigrations().length);
      expect(rows.every((r) => r.n === 1)).toBe(true);
    } finally {
      await db.drop();
    }
  });

  it('doctor reaches every engine configured on this machine', async () => {
    const env: Record<string, string | undefined> = {
      CDP_DATABASE_URL: url,
      CDP_DATA_DIR: 'memory://',
    };
    for (const v of ['CDP_REDIS_URL', 'CDP_NATS_URL', 'CDP_AMQP_URL'] as const)
      env[v] = serverUrl(v);
    // Tests that stop engines run in the `faults` project, after this one: every engine is up.
    const run = await runCdp(['doctor'], env);
    expect(run.stdout).toMatch(/sql\s+postgres.*ok: PostgreSQL/);
    expect(run.code, run.stdout).toBe(0);
  }, 180_000);
});
