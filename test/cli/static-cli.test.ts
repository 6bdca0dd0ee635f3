/**
 * `cdp static` as a deploy tool behaves: a folder that is not there is an error naming it,
 * rollback on a missing store creates nothing, identical content is reported unchanged,
 * rewrites are reported, and serving a store with no site says so in the 404.
 */
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collect, runCdp, spawnCdp, waitForOutput } from '../support/cli.js';

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cdp-static-cli-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false,
  );

describe('cdp static', () => {
  it('serve on a folder that does not exist exits 2 naming the folder', async () => {
    const missing = join(dir, 'no-such-site');
    const run = await runCdp(['static', 'serve', missing, '--port', '0']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`"${missing}"`);
    expect(run.stdout).not.toContain('listening');
  });

  it('rollback on a store that does not exist is an error and creates nothing', async () => {
    const store = join(dir, 'no-store');
    const run = await runCdp(['static', 'rollback', '--store', store]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`no site store at "${store}"`);
    expect(await exists(store)).toBe(false);
    const serve = await runCdp(['static', 'serve', '--store', store, '--port', '0']);
    expect(serve.code).toBe(2);
    expect(await exists(store)).toBe(false);
  });

  it('deploy reports rewritten references, then "unchanged" for identical content', async () => {
    const site = join(dir, 'site');
    const store = join(dir, 'store');
    await mkdir(join(site, 'css'), { recursive: true });
    await writeFile(join(site, 'index.html'), '<link rel="stylesheet" href="css/app.css">');
    await writeFile(join(site, 'css', 'app.css'), 'body{margin:0}');
    const first = await runCdp(['static', 'deploy', site, '--store', store]);
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(
      /^rewrote index\.html: css\/app\.css -> css\/app\.[0-9a-f]{10}\.css$/m,
    );
    const version = /deployed version (\S+): 2 files/.exec(first.stdout)?.[1];
    expect(version, first.stdout).toBeDefined();
    const again = await runCdp(['static', 'deploy', site, '--store', store]);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain(`unchanged: version ${version} is live with this content`);
    expect(again.stdout).not.toMatch(/^uploaded /m);
  });

  it('serve with no deployed site says so in its 404 body', async () => {
    const store = join(dir, 'empty-store');
    await mkdir(store, { recursive: true });
    const child = spawnCdp(['static', 'serve', '--store', store, '--port', '0']);
    const done = collect(child);
    try {
      const [, url] = await waitForOutput(child, /listening on (http:\/\/127\.0\.0\.1:\d+)/);
      const r = await fetch(`${url}/`);
      expect(r.status).toBe(404);
      expect(await r.text()).toContain('no site is deployed under "site/"');
    } finally {
      child.kill('SIGTERM');
    }
    expect((await done).code).toBe(0);
  });
});
