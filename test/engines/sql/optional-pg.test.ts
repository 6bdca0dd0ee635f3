import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// `pg` is an optional peer dependency: the SQL and events entry points must work without it
// (on PGlite), and `openSql` must say what to install when a server is configured.

const root = fileURLToPath(new URL('../../..', import.meta.url));
const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

describe('without the pg package', () => {
  it('the sql and events entries load and run on PGlite; openSql names pg for a server', () => {
    const run = spawnSync(
      process.execPath,
      ['--import', 'tsx', '--import', fixture('block-pg.mjs'), fixture('without-pg.ts')],
      { cwd: root, encoding: 'utf8', timeout: 60_000 },
    );
    expect(run.status, run.stderr).toBe(0);
    const out = JSON.parse(run.stdout.trim().split('\n').at(-1)!);
    expect(out).toMatchObject({
      appended: 1,
      read: ['Worked'],
      openSql: { code: 'MISSING_DEPENDENCY', packageName: 'pg' },
      // The block works: the pg adapter's own entry cannot load.
      pgEntry: 'ERR_MODULE_NOT_FOUND',
    });
    expect(out.openSql.message).toMatch(/npm install pg/);
  });
});
