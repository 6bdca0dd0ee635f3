import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ShardingService } from '../../src/app/features/sharding.js';
import type { IndexTables } from '../../src/sharding/index.js';
import { eventually } from '../../src/testing/index.js';
import { type Client, startClient } from '../app/support.js';
import { runCdp } from '../support/cli.js';

describe('cdp shard and cdp index (through a started platform)', () => {
  let c: Client;
  let env: Record<string, string>;
  let svc: ShardingService & { indexes: IndexTables };
  beforeAll(async () => {
    c = await startClient();
    env = { CDP_API_KEY: await c.key('admin', 'cli-admin') };
    svc = c.platform.services.get('sharding') as typeof svc;
  }, 180_000);
  afterAll(() => c?.close());

  it('shows the status: slots and rows per shard, the last move, index lag', async () => {
    const run = await runCdp(['shard', 'status', '--platform', c.platform.url], env);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^map marketplace version \d+, 256 slots over 2 shards$/m);
    expect(run.stdout).toMatch(/^s1 +\d+ +\d+/m);
    expect(run.stdout).toContain('index lag: courses_by_instructor');
    const json = await runCdp(['shard', 'status', '--json', '--platform', c.platform.url], env);
    expect(JSON.parse(json.stdout).shards).toHaveLength(2);
    const nobody = await runCdp(['shard', 'status', '--platform', c.platform.url]);
    expect(nobody.code).toBe(1);
    expect(nobody.stderr).toContain('UNAUTHENTICATED');
  });

  it('moves a slot, printing its progress to done', async () => {
    await svc.router.query(
      'cli-student',
      "INSERT INTO app_students (id, email, name) VALUES ($1, NULL, 'x')",
      ['cli-student'],
    );
    const { unit, shard } = svc.router.route('cli-student');
    const target = svc.router.shardIds().find((s) => s !== shard)!;
    const run = await runCdp(['shard', 'move', unit, target, '--platform', c.platform.url], env);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    // One line per change of phase or progress (not a terminal: no bar).
    expect(run.stdout).toContain(`${unit} ${shard} -> ${target}: planned`);
    expect(run.stdout).toMatch(
      new RegExp(
        `${unit} ${shard} -> ${target}: done \\(1/1 rows, 100%\\), writes fenced \\d+ ms\\n$`,
      ),
    );
    const again = await runCdp(['shard', 'move', unit, target, '--platform', c.platform.url], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(`already on shard "${target}"`);
    const bad = await runCdp(['shard', 'move', 'seven', 's2', '--platform', c.platform.url], env);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('slot number');
  });

  it('plans adding a shard only when its URL answers', async () => {
    const run = await runCdp(
      ['shard', 'plan', 'add', 'postgres://postgres@127.0.0.1:1/x', '--platform', c.platform.url],
      env,
    );
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('SHARD_UNAVAILABLE');
    expect(run.stderr).toContain('127.0.0.1:1');
    const url = process.env.CDP_SHARD_TEST_URLS?.split(',')[0];
    if (url) {
      const ok = await runCdp(['shard', 'plan', 'add', url, '--platform', c.platform.url], env);
      expect(ok.code).toBe(0);
      expect(ok.stdout).toMatch(
        /^adding s3 .* would move \d+ slots, \d+ of \d+ rows; nothing was moved$/m,
      );
      expect(ok.stdout).toMatch(/slots after: s1 \d+, s2 \d+, s3 8[56]/);
    }
  });

  it('checks an index table (exit 1 on divergence) and repairs it', async () => {
    await svc.indexes.put('app_students', { id: 'cli-eve', email: 'eve@example.com', name: 'Eve' });
    const shard = svc.router.map.routeHashed('eve@example.com').shard;
    await eventually(
      async () => (await svc.indexes.lookup('students_by_email', 'eve@example.com')).length === 1,
      'the index row',
    );
    await svc.router
      .client(shard)
      .query('DELETE FROM students_by_email WHERE value = $1', ['eve@example.com']);
    const check = await runCdp(
      ['index', 'check', 'students_by_email', '--platform', c.platform.url],
      env,
    );
    expect(check.code).toBe(1);
    expect(check.stdout).toMatch(/1 missing, 0 extra, 0 stale/);
    expect(check.stdout).toContain('missing value eve@example.com key cli-eve');
    const repair = await runCdp(
      ['index', 'repair', 'students_by_email', '--platform', c.platform.url],
      env,
    );
    expect(repair.code).toBe(0);
    expect(repair.stdout).toContain('(all 1 repaired)');
    const after = await runCdp(
      ['index', 'check', 'students_by_email', '--platform', c.platform.url],
      env,
    );
    expect(after.code).toBe(0);
    expect(after.stdout).toMatch(/0 missing, 0 extra, 0 stale/);
    const unknown = await runCdp(['index', 'check', 'nope', '--platform', c.platform.url], env);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain('students_by_email');
  });
});
