/**
 * `cdp demo`, the guided tour, as an end-to-end test: on the embedded defaults (the tour starts
 * its own platform), against a platform started on the real engines, and against a platform that
 * answers but refuses the tour's key (exit 1, naming the step and what it expected).
 */
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultFeatures } from '../../src/app/features/index.js';
import { type Platform, startPlatform } from '../../src/app/platform.js';
import type { DemoSummary } from '../../src/cli/demo.js';
import { loadConfig } from '../../src/core/config.js';
import { silentLogger } from '../../src/core/logger.js';
import { collect, runCdp, spawnCdp, waitForOutput } from '../support/cli.js';
import { createTempDatabase, describeServer, serverUrl } from '../support/servers.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

const STEPS = [
  'keys',
  'cache-aside',
  'event-sourcing',
  'outbox',
  'cqrs',
  'idempotent-consumer',
  'valet-key',
  'static',
  'saga',
  'two-phase-commit',
  'idempotency-key',
  'sharding',
  'multi-master',
  'quorum',
  'security',
];

function expectEveryStepHeld(summary: DemoSummary): void {
  expect(summary.steps.map((s) => [s.step, s.result])).toEqual(STEPS.map((s) => [s, 'held']));
  expect(summary.held).toBe(true);
  expect(summary.failed).toBeUndefined();
}

describe('cdp demo, the command', () => {
  it('is listed by --help and run by npm run demo', async () => {
    const run = await runCdp(['--help']);
    expect(run.stdout).toMatch(/^ {2}demo\b.*guided tour/m);
    const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    expect(pkg.scripts.demo).toBe('tsx src/cli/cdp.ts demo');
  });

  it('says where it found nothing when the platform does not answer (exit 1)', async () => {
    const run = await runCdp(['demo', '--platform', 'http://127.0.0.1:9', '--key', 'k']);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(
      'the tour failed at step "keys": expected an answer from http://127.0.0.1:9; got no answer',
    );
  });
});

describe('cdp demo on the embedded defaults', () => {
  it('starts its own platform, holds every step, prints the summary as JSON and exits 0', async () => {
    // CDP_API_KEY and the engine variables of the shell do not apply to the platform it starts.
    const run = await runCdp(
      ['demo', '--json'],
      {
        CDP_API_KEY: `cdpk_${'1'.repeat(24)}.${'B'.repeat(43)}`,
        CDP_DATABASE_URL: 'postgres://127.0.0.1:1/x',
      },
      120_000,
    );
    expect(run.code, run.stderr).toBe(0);
    const summary = JSON.parse(run.stdout) as DemoSummary;
    expectEveryStepHeld(summary);
    expect(summary.startedHere).toBe(true);
    for (const s of summary.steps) {
      expect(s.ms).toBeGreaterThanOrEqual(0);
      expect(s.changed?.length, s.step).toBeGreaterThan(0);
    }
    // The narration goes to stderr with --json: each step, its requests, the dashboard figure.
    expect(run.stderr).toContain('Started a platform on the embedded defaults');
    expect(run.stderr).toContain('[15/15] Requests that must be refused');
    expect(run.stderr).toMatch(/> POST \/api\/catalog\/courses {2}\(no key\) {2}-> 401/);
    expect(run.stderr).toContain('on the dashboard: Course cache: hits, misses, hit ratio');
  }, 150_000);
});

describe('cdp demo interrupted', () => {
  it('stops the platform it started, removes its folder and exits 130 on SIGINT', async () => {
    const child = spawnCdp(['demo']);
    const done = collect(child);
    const [, dir] = await waitForOutput(child, /data in (\S+); it stops at the end/, 60_000);
    await waitForOutput(child, /\[2\/15\]/, 60_000);
    child.kill('SIGINT');
    const run = await done;
    expect(run.code, run.stderr).toBe(130);
    expect(run.stdout).toContain('interrupted (SIGINT): stopped the platform the tour started');
    expect(run.stdout).not.toContain('every step held');
    await expect(stat(dir!)).rejects.toThrow(/ENOENT/);
  }, 90_000);
});

describe('cdp demo against a platform that refuses its key', () => {
  let platform: Platform;

  beforeAll(async () => {
    platform = await startPlatform({
      config: loadConfig({ CDP_DATA_DIR: 'memory://', CDP_PORT: '0' }),
      logger: silentLogger(),
    });
  });

  afterAll(async () => {
    await platform?.close();
  });

  it('exits 1 naming the failed step with what it expected and what it got', async () => {
    const wrong = `cdpk_${'0'.repeat(24)}.${'A'.repeat(43)}`;
    const run = await runCdp(['demo', '--platform', platform.url, '--key', wrong], {}, 60_000);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(
      'error: the tour failed at step "keys": expected the admin key to be accepted (GET /api/auth/me: 200, role admin); got 401 UNAUTHENTICATED: the API key is unknown',
    );
    // The summary table still prints: the failed step, and the steps that did not run.
    expect(run.stdout).toMatch(/^keys\s+API keys with roles\s+failed\s+\d+ ms$/m);
    expect(run.stdout).toMatch(/^security\s+security rules\s+not run\s+-$/m);
  }, 90_000);

  it('says a non-admin key is not enough, as the role it got', async () => {
    const student = await platform.auth.issue({ role: 'student', subject: 'not-an-admin' });
    const run = await runCdp(['demo', '--platform', platform.url, '--json'], {
      CDP_API_KEY: student.token,
    });
    expect(run.code).toBe(1);
    const summary = JSON.parse(run.stdout) as DemoSummary;
    expect(summary.failed).toEqual({
      step: 'keys',
      expected: 'the admin key to be accepted (GET /api/auth/me: 200, role admin)',
      got: 'role student',
    });
  }, 90_000);

  it('names a step in the middle that does not hold, and runs none after it', async () => {
    const noMedia = await startPlatform({
      config: loadConfig({ CDP_DATA_DIR: 'memory://', CDP_PORT: '0' }),
      logger: silentLogger(),
      features: defaultFeatures.filter((f) => f.name !== 'media'),
    });
    try {
      const admin = await noMedia.auth.issue({ role: 'admin', subject: 'tour' });
      const run = await runCdp(['demo', '--platform', noMedia.url, '--key', admin.token, '--json']);
      expect(run.code).toBe(1);
      const summary = JSON.parse(run.stdout) as DemoSummary;
      expect(summary.steps.map((s) => s.result)).toEqual([
        ...Array(6).fill('held'),
        'failed',
        ...Array(8).fill('not run'),
      ]);
      expect(summary.failed?.step).toBe('valet-key');
      expect(summary.failed?.expected).toBe(
        "200 from POST /api/media/uploads as the course's instructor",
      );
      expect(summary.failed?.got).toMatch(/^404 /);
    } finally {
      await noMedia.close();
    }
  }, 90_000);

  it('asks for an admin key when a platform is given without one (exit 2)', async () => {
    const run = await runCdp(['demo', '--platform', platform.url]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(
      '--key <token> (or set CDP_API_KEY), or --keys <its demo-keys.json>',
    );
  });

  it('says which file it could not read for --keys (exit 2)', async () => {
    const run = await runCdp(['demo', '--platform', platform.url, '--keys', '/nonexistent/k.json']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('cannot read the demo keys file /nonexistent/k.json');
  });
});

describeServer('cdp demo against a platform on the real engines', 'CDP_DATABASE_URL', (url) => {
  it('holds every step on PostgreSQL (and Redis and NATS when set), with the demo-keys file', async () => {
    const db = await createTempDatabase(url, 'cdp_demo');
    const dir = await mkdtemp(join(tmpdir(), 'cdp-demo-real-'));
    const env = {
      CDP_DATABASE_URL: db.url,
      CDP_REDIS_URL: serverUrl('CDP_REDIS_URL'),
      CDP_NATS_URL: serverUrl('CDP_NATS_URL'),
      CDP_DATA_DIR: dir,
      CDP_PORT: '0',
    };
    const server = spawnCdp(['start'], env);
    const done = collect(server);
    try {
      const [, keys, base] = await waitForOutput(
        server,
        /demo API keys \(shown once\) in (\S+)\nlistening on (http:\/\/\S+)\n/,
        60_000,
      );
      const run = await runCdp(
        ['demo', '--platform', base!, '--keys', keys!, '--json'],
        {},
        120_000,
      );
      expect(run.code, run.stderr).toBe(0);
      const summary = JSON.parse(run.stdout) as DemoSummary;
      expectEveryStepHeld(summary);
      expect(summary.startedHere).toBe(false);
      expect(summary.platform).toBe(base);
      const engines = Object.fromEntries(summary.engines.map((e) => [e.role, e.engine]));
      expect(engines.sql).toBe('postgres');
      if (env.CDP_REDIS_URL) expect(engines['cache L2 + bus']).toBe('redis');
      if (env.CDP_NATS_URL) expect(engines.broker).toBe('nats');
    } finally {
      server.kill('SIGTERM');
      await done;
      await rm(dir, { recursive: true, force: true });
      await db.drop();
    }
  }, 180_000);
});
