import { type ChildProcess, spawn } from 'node:child_process';

/**
 * Spawn a fault-test worker (a TypeScript script run through tsx) with extra environment; `ready`
 * resolves once it prints "ready" on stdout, or once it exits (a worker killed before it was
 * ready must not hang the test).
 */
export function spawnWorker(
  script: string,
  env: Record<string, string>,
): { child: ChildProcess; ready: Promise<void> } {
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const ready = new Promise<void>((resolve) => {
    child.stdout!.on('data', (d: Buffer) => {
      if (d.toString().includes('ready')) resolve();
    });
    child.on('exit', () => resolve());
  });
  return { child, ready };
}

/** Resolves with the signal or exit code once `child` has exited (at once if it already has). */
export function exited(child: ChildProcess): Promise<NodeJS.Signals | number | null> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve(child.signalCode ?? child.exitCode);
  }
  return new Promise((resolve) => child.on('exit', (code, signal) => resolve(signal ?? code)));
}
