import { join } from 'node:path';
import { CdpError } from '../core/errors.js';
import { type BenchResult, formatTable, writeResults } from './harness.js';
import { suites } from './suites.js';

export interface RunBenchOptions {
  quick: boolean;
  outDir?: string;
  env?: Record<string, string | undefined>;
  out?: (line: string) => void;
  progress?: (line: string) => void;
}

/** Run one suite: print its table and write `bench/results/<suite>.json`. */
export async function runBench(name: string, options: RunBenchOptions): Promise<BenchResult[]> {
  const load = suites[name];
  if (!load) {
    throw new CdpError(
      'BENCH_UNKNOWN',
      `no benchmark suite named "${name}"; available: ${Object.keys(suites).join(', ')}`,
    );
  }
  let suite: Awaited<ReturnType<typeof load>>;
  try {
    suite = await load();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND') {
      throw new CdpError(
        'BENCH_PEERS_MISSING',
        `benchmark "${name}" needs its peers, which are devDependencies: run it from a checkout after \`npm ci\` (${(err as Error).message})`,
      );
    }
    throw err;
  }
  const env = options.env ?? process.env;
  const missing = (suite.requires ?? []).filter((v) => !env[v]);
  if (missing.length > 0) {
    throw new CdpError(
      'BENCH_ENGINE_MISSING',
      `benchmark "${name}" needs ${missing.join(', ')}: set ${missing.length > 1 ? 'them' : 'it'} to this machine's engine`,
    );
  }
  const out = options.out ?? ((l: string) => process.stdout.write(`${l}\n`));
  const progress = options.progress ?? ((l: string) => process.stderr.write(`[${name}] ${l}\n`));
  const results = await suite.run({ quick: options.quick, env, progress });
  const path = join(options.outDir ?? 'bench/results', `${name}.json`);
  await writeResults(path, results);
  out(`${suite.name}: ${suite.description}${options.quick ? ' (quick)' : ''}`);
  out(formatTable(results));
  out(`written to ${path}`);
  return results;
}
