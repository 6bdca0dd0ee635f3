/**
 * The command line as people expect one to behave: `--version`, `--json` on table output,
 * progress that is a bar on a terminal and plain lines elsewhere, a `--help` that loads no
 * module code, and bad URLs in options named with the form expected.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Progress } from '../../src/cli/progress.js';
import { cleanEnv, collect, runCdp, spawnCdp, waitForOutput } from '../support/cli.js';
import { staticGraph } from '../support/static-graph.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cdp-habits-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('cdp --help and --version', () => {
  it('prints the version from package.json', async () => {
    const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as {
      version: string;
    };
    const run = await runCdp(['--version']);
    expect([run.code, run.stdout.trim()]).toEqual([0, pkg.version]);
  });

  it('loads only commander and the CLI option parsers at start (no engine, no module code)', () => {
    const { files, packages } = staticGraph('src/cli/cdp.ts');
    expect(packages).toEqual(['commander']);
    for (const f of files) {
      expect([f, f.startsWith('src/cli/') || f === 'src/core/errors.ts']).toEqual([f, true]);
    }
    expect(files).not.toContain('src/cli/doctor.ts');
    expect(files).not.toContain('src/cli/storage-verbs.ts');
  });

  it('--help lists every command', async () => {
    const run = await runCdp(['--help']);
    expect(run.code).toBe(0);
    for (const c of ['start', 'migrate', 'bench', 'doctor', 'dlq', 'storage', 'static']) {
      expect(run.stdout).toMatch(new RegExp(`^  ${c}\\b`, 'm'));
    }
  });
});

describe('--json on commands that print a table', () => {
  it('doctor --json prints one JSON document on stdout and nothing else', async () => {
    const run = await runCdp(['doctor', '--json'], { CDP_DATA_DIR: join(dir, 'data') });
    expect(run.code).toBe(0);
    const checks = JSON.parse(run.stdout) as { role: string; ok: boolean }[];
    expect(checks.map((c) => c.role).sort()).toEqual(['broker', 'cache', 'media storage', 'sql']);
    expect(checks.every((c) => c.ok)).toBe(true);
  });

  it('doctor --json keeps the exit code of a failing check', async () => {
    const run = await runCdp(['doctor', '--json', '--timeout', '1500'], {
      CDP_DATA_DIR: 'memory://',
      CDP_REDIS_URL: 'redis://127.0.0.1:1',
    });
    expect(run.code).toBe(1);
    const checks = JSON.parse(run.stdout) as { role: string; ok: boolean }[];
    expect(checks.find((c) => c.role === 'cache')?.ok).toBe(false);
  });
});

describe('--json on dlq list', () => {
  it('prints the dead letters as JSON on stdout and nothing else', async () => {
    const child = spawnCdp(['start'], { CDP_DATA_DIR: 'memory://', CDP_PORT: '0' });
    const done = collect(child);
    try {
      const [, keysFile, url] = await waitForOutput(
        child,
        /demo API keys \(shown once\) in (\S+)[\s\S]*?listening on (http:\/\/127\.0\.0\.1:\d+)/,
      );
      // The dead-letter routes are private: the command sends CDP_API_KEY, here an admin key.
      const { keys } = JSON.parse(await readFile(keysFile!, 'utf8')) as {
        keys: { role: string; token: string }[];
      };
      const admin = keys.find((k) => k.role === 'admin')!.token;
      const run = await runCdp(['dlq', 'list', '--json', '--platform', url!], {
        CDP_API_KEY: admin,
      });
      expect(run.code).toBe(0);
      expect(JSON.parse(run.stdout)).toEqual([]);
    } finally {
      child.kill('SIGTERM');
    }
    expect((await done).code).toBe(0);
  }, 90_000);
});

describe('options that take a URL', () => {
  it('name the option and the form expected', async () => {
    for (const bad of ['notaurl', 'ftp://127.0.0.1:8080']) {
      const run = await runCdp(['dlq', 'list', '--platform', bad]);
      expect(run.code).not.toBe(0);
      expect(run.stderr).toContain("option '--platform <url>'");
      expect(run.stderr).toContain('expected an http:// or https:// URL such as http://');
      expect(run.stderr).not.toMatch(/^error: Invalid URL/m);
    }
  });
});

describe('progress', () => {
  const fakeTerminal = () => {
    let text = '';
    return {
      isTTY: true,
      columns: 60,
      write: (s: string) => {
        text += s;
      },
      get text() {
        return text;
      },
    };
  };

  it('draws a bar in place on a terminal and prints plain lines elsewhere', () => {
    const term = fakeTerminal();
    const lines: string[] = [];
    const deploy = (stream: ConstructorParameters<typeof Progress>[0]['stream']) =>
      new Progress({ label: 'deploy', total: 4, stream, line: (l) => lines.push(l) });
    const bar = deploy(term);
    bar.step('uploaded a.js', { done: 2, detail: 'a.js' });
    bar.end();
    expect(lines).toEqual([]);
    expect(term.text).toContain('\r\x1b[2Kdeploy [############------------] 2/4 a.js');
    expect(term.text.endsWith('\r\x1b[2K')).toBe(true);
    const pipe = { write: () => true };
    const plain = deploy(pipe);
    plain.step('uploaded a.js', { done: 2, detail: 'a.js' });
    plain.end();
    expect(lines).toEqual(['uploaded a.js']);
  });

  it('static deploy shows a bar on a real terminal and one line per file in a pipe', async () => {
    const site = join(dir, 'progress-site');
    await mkdir(site, { recursive: true });
    await writeFile(join(site, 'index.html'), '<script src="app.js"></script>');
    await writeFile(join(site, 'app.js'), 'console.log(1)');
    const piped = await runCdp(['static', 'deploy', site, '--store', join(dir, 'store-pipe')]);
    expect(piped.code).toBe(0);
    expect(piped.stdout).toMatch(/^uploaded app\.[0-9a-f]{10}\.js$/m);
    expect(piped.stdout).toMatch(/^uploaded index\.html$/m);
    expect(piped.stdout + piped.stderr).not.toContain('\r');
    // util-linux `script` runs the command on a pseudo-terminal.
    const cmd = [
      process.execPath,
      '--import',
      'tsx',
      'src/cli/cdp.ts',
      'static',
      'deploy',
      site,
      '--store',
      join(dir, 'store-tty'),
    ]
      .map((a) => `'${a}'`)
      .join(' ');
    const onTty = execFileSync('script', ['-qec', cmd, '/dev/null'], {
      cwd: root,
      env: cleanEnv({ CDP_LOG_LEVEL: 'warn' }),
      encoding: 'utf8',
    });
    expect(onTty).toContain('\r\x1b[2Kdeploy [');
    expect(onTty).toMatch(/2\/2 index\.html/);
    expect(onTty).not.toMatch(/^uploaded /m);
    expect(onTty).toMatch(/deployed version \S+: 2 files/);
  });
});
