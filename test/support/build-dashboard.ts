import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const source = join(root, 'web', 'dashboard');
const built = join(root, 'dist', 'dashboard', 'index.html');

/** The newest modification time of any file under `dir`. */
function newest(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const full = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(full) : statSync(full).mtimeMs);
  }
  return t;
}

/**
 * Vitest global setup: the platform serves the built dashboard (dist/dashboard), so build it
 * when it is missing or older than its sources (a clean clone, or a change under web/).
 */
export default function setup(): void {
  if (existsSync(built) && statSync(built).mtimeMs >= newest(source)) return;
  console.log('building the dashboard (web/dashboard -> dist/dashboard)');
  execFileSync(
    process.execPath,
    [
      join(root, 'node_modules', 'vite', 'bin', 'vite.js'),
      'build',
      '--config',
      join(source, 'vite.config.ts'),
    ],
    { cwd: root, stdio: 'inherit' },
  );
}
