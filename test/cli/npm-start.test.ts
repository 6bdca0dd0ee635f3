/**
 * `npm start` stops cleanly on SIGTERM: the signal reaches the server (the start script
 * execs node, so no shell sits between npm and the server), every process of the tree exits,
 * and the log's last line says the platform stopped. Runs the built `dist/` as `npm start`
 * does, so it builds first.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanEnv, collect, waitForOutput } from '../support/cli.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
let dataDir: string;

/** The pids whose parent chain leads to `pid` (read from /proc). */
async function descendants(pid: number): Promise<number[]> {
  const parent = new Map<number, number>();
  for (const name of await readdir('/proc')) {
    const n = Number(name);
    if (!Number.isInteger(n)) continue;
    const stat = await readFile(`/proc/${n}/stat`, 'utf8').catch(() => '');
    // Fields after the command name, which is in parentheses and may hold spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields.length > 1) parent.set(n, Number(fields[1]));
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const [c, pp] of parent) {
      if (pp === p) {
        out.push(c);
        walk(c);
      }
    }
  };
  walk(pid);
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'cdp-npm-start-'));
  execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'ignore' });
}, 240_000);

afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

describe('npm start', () => {
  it('stops every process of its tree on SIGTERM, and the last log line says stopped', async () => {
    const npm = spawn('npm', ['start'], {
      cwd: root,
      env: cleanEnv({ CDP_DATA_DIR: dataDir, CDP_PORT: '0', CDP_LOG_LEVEL: 'info' }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const done = collect(npm);
    let tree: number[] = [];
    try {
      await waitForOutput(npm, /listening on http:\/\/127\.0\.0\.1:\d+/, 90_000);
      tree = await descendants(npm.pid!);
      expect(tree.length).toBeGreaterThan(0);
      npm.kill('SIGTERM');
      // A deadline for the failure message only; a passing run ends as soon as npm exits.
      let timer: NodeJS.Timeout | undefined;
      const run = await Promise.race([
        done,
        new Promise<undefined>((r) => {
          timer = setTimeout(() => r(undefined), 60_000);
        }),
      ]).finally(() => clearTimeout(timer));
      expect(run, `npm start still runs 60 s after SIGTERM; tree ${tree.join(' ')}`).toBeDefined();
      if (!run) return;
      expect(run.code).toBe(0);
      // npm exits after its child: by then no process of the tree is left.
      expect(tree.filter(alive), 'processes of the tree still running').toEqual([]);
      const last = run.stderr.trim().split('\n').at(-1)!;
      expect(JSON.parse(last)).toMatchObject({ msg: 'stopped', code: 0 });
    } finally {
      for (const p of [npm.pid!, ...tree]) if (alive(p)) process.kill(p, 'SIGKILL');
    }
  }, 120_000);
});
