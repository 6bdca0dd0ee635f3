import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));

/** The environment of this process without any CDP_* variable, plus `env`. */
export function cleanEnv(env: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CDP_')) out[k] = v;
  for (const [k, v] of Object.entries(env)) if (v !== undefined) out[k] = v;
  return out;
}

/** Start the `cdp` command line from source (node + tsx), as a separate process. */
export function spawnCdp(
  args: string[],
  env: Record<string, string | undefined> = {},
): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', 'src/cli/cdp.ts', ...args], {
    cwd: root,
    env: cleanEnv({ CDP_LOG_LEVEL: 'warn', ...env }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

export interface CdpRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function collect(child: ChildProcess): Promise<CdpRun> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d) => (stdout += d));
  child.stderr?.on('data', (d) => (stderr += d));
  return new Promise((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
}

export function runCdp(
  args: string[],
  env: Record<string, string | undefined> = {},
  timeoutMs = 60_000,
): Promise<CdpRun> {
  const child = spawnCdp(args, env);
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return collect(child).finally(() => clearTimeout(timer));
}

/** Resolve with the first match of `pattern` on the child's stdout. */
export function waitForOutput(
  child: ChildProcess,
  pattern: RegExp,
  timeoutMs = 60_000,
): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    let buffer = '';
    let errors = '';
    const timer = setTimeout(
      () =>
        reject(
          new Error(`no ${pattern} within ${timeoutMs} ms; stdout: ${buffer}; stderr: ${errors}`),
        ),
      timeoutMs,
    );
    child.stderr?.on('data', (d) => (errors += d));
    child.stdout?.on('data', (d) => {
      buffer += d;
      const m = buffer.match(pattern);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      reject(
        new Error(
          `process exited (${code}) before ${pattern}; stdout: ${buffer}; stderr: ${errors}`,
        ),
      );
    });
  });
}
