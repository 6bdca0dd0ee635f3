/**
 * `cdp demo`: the guided tour. It runs each step of src/cli/demo/steps.ts against a platform
 * (one given with --platform, or one it starts on the embedded defaults in a temporary folder),
 * prints each step's narration, then a summary table, and says whether every step held.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { errorMessage } from '../core/errors.js';
import { type Exchange, type Key, StepFailure, TourClient } from './demo/client.js';
import { newRunId, type Step, steps, type TourState } from './demo/steps.js';
import { UsageError } from './options.js';
import { textTable } from './text-table.js';

export interface DemoOptions {
  /** A started platform's base URL; without it the tour starts one. */
  platform?: string;
  /** An admin API key (--key). */
  key?: string;
  /** CDP_API_KEY: the key for a platform given without --key or --keys (unused otherwise). */
  envKey?: string;
  /** The platform's demo-keys.json, to take its admin key from. */
  keys?: string;
  /** Where the narration goes (stdout, or stderr with --json). */
  narrate: (line: string) => void;
}

export interface StepOutcome {
  step: string;
  title: string;
  pattern: string;
  result: 'held' | 'failed' | 'not run';
  ms: number;
  changed?: string[];
  expected?: string;
  got?: string;
}

export interface DemoSummary {
  platform: string;
  startedHere: boolean;
  /** Which engine serves each role, as the platform's /health says (empty when it did not answer). */
  engines: { role: string; engine: string }[];
  held: boolean;
  steps: StepOutcome[];
  /** The first step that failed, when one did. */
  failed?: { step: string; expected: string; got: string };
}

/** The admin key of a demo-keys.json the platform wrote at its first start. */
async function adminKeyFromFile(file: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError(
      `cannot read the demo keys file ${file} (${errorMessage(err)}); \`cdp start\` prints where it wrote it`,
    );
  }
  let keys: { role?: string; token?: string }[] | undefined;
  try {
    keys = (JSON.parse(text) as { keys?: { role?: string; token?: string }[] }).keys;
  } catch (err) {
    throw new UsageError(`${file} is not JSON (${errorMessage(err)}); pass the demo-keys.json`);
  }
  const admin = keys?.find((k) => k.role === 'admin' && typeof k.token === 'string');
  if (!admin?.token)
    throw new UsageError(`${file} holds no admin key; pass one with --key or CDP_API_KEY`);
  return admin.token;
}

interface Target {
  url: string;
  adminToken: string;
  startedHere: boolean;
  stop(): Promise<void>;
}

/** The platform named by the options, or one started here on the embedded defaults. */
async function target(options: DemoOptions): Promise<Target> {
  if (options.platform) {
    const token =
      options.key ??
      (options.keys ? await adminKeyFromFile(options.keys) : undefined) ??
      options.envKey;
    if (!token)
      throw new UsageError(
        'the tour needs an admin key of that platform: pass --key <token> (or set CDP_API_KEY), or --keys <its demo-keys.json>',
      );
    return { url: options.platform, adminToken: token, startedHere: false, stop: async () => {} };
  }
  if (options.key || options.keys)
    throw new UsageError(
      '--key and --keys name a started platform: pass its URL with --platform too (without --platform the tour starts its own)',
    );
  const { loadConfig } = await import('../core/config.js');
  const { createLogger } = await import('../core/logger.js');
  const { startPlatform } = await import('../app/platform.js');
  const dir = await mkdtemp(join(tmpdir(), 'cdp-demo-'));
  // The embedded defaults (PGlite, the in-process broker, no Redis), whatever this shell sets.
  const config = loadConfig({
    CDP_DATA_DIR: dir,
    CDP_HOST: '127.0.0.1',
    CDP_PORT: '0',
    CDP_LOG_LEVEL: 'warn',
  });
  try {
    const platform = await startPlatform({ config, logger: createLogger({ level: 'warn' }) });
    const admin = platform.demoKeys?.keys.find((k) => k.role === 'admin');
    if (!admin) {
      await platform.close();
      throw new Error('the platform started without demo keys');
    }
    options.narrate(
      `Started a platform on the embedded defaults (PGlite, in-process broker, cache in process) at ${platform.url}, data in ${dir}; it stops at the end.`,
    );
    return {
      url: platform.url,
      adminToken: admin.token,
      startedHere: true,
      stop: async () => {
        await platform.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** The platform's engines by role, from GET /health (none when it does not answer). */
async function enginesOf(client: TourClient): Promise<DemoSummary['engines']> {
  try {
    const a = await client.call('GET', '/health');
    const list = (a.body as { engines?: { role: string; engine: string }[] }).engines ?? [];
    return list.map((e) => ({ role: e.role, engine: e.engine }));
  } catch {
    return [];
  }
}

function exchangeLine(e: Exchange): string {
  return `  > ${e.method} ${e.path}  (${e.as})  -> ${e.status}`;
}

function narrateStep(
  n: number,
  step: Step,
  exchanges: Exchange[],
  outcome: StepOutcome,
  say: (line: string) => void,
): void {
  say('');
  say(`[${n}/${steps.length}] ${step.title}  (${step.pattern})`);
  say(`  ${step.what}`);
  for (const e of exchanges) say(exchangeLine(e));
  for (const c of outcome.changed ?? []) say(`  changed: ${c}`);
  say(`  on the dashboard: ${step.dashboard}`);
  say(
    outcome.result === 'held'
      ? `  held (${outcome.ms} ms)`
      : `  FAILED: expected ${outcome.expected}; got ${outcome.got}`,
  );
}

/** Run every step in order; after a failure the rest do not run (they build on it). */
export async function runDemo(options: DemoOptions): Promise<DemoSummary> {
  const where = await target(options);
  // Interrupted, the platform it started still stops and its temporary folder goes.
  let stopping: Promise<void> | undefined;
  const interrupted = (signal: NodeJS.Signals) => {
    stopping ??= where.stop().finally(() => {
      options.narrate(`interrupted (${signal}): stopped the platform the tour started`);
      process.exit(signal === 'SIGINT' ? 130 : 143);
    });
  };
  if (where.startedHere) {
    process.once('SIGINT', interrupted);
    process.once('SIGTERM', interrupted);
  }
  const outcomes: StepOutcome[] = [];
  let engines: DemoSummary['engines'] = [];
  let failed: DemoSummary['failed'];
  try {
    const client = new TourClient(where.url);
    const admin: Key = { role: 'admin', subject: 'key to check', token: where.adminToken };
    const state: TourState = { client, admin, run: newRunId() };
    engines = await enginesOf(client);
    options.narrate(`Guided tour of ${where.url} (run ${state.run}): ${steps.length} steps.`);
    if (engines.length)
      options.narrate(`Engines: ${engines.map((e) => `${e.role} ${e.engine}`).join(', ')}.`);
    client.take();
    for (const [i, step] of steps.entries()) {
      const base = { step: step.id, title: step.title, pattern: step.pattern };
      if (failed) {
        outcomes.push({ ...base, result: 'not run', ms: 0 });
        continue;
      }
      const t0 = performance.now();
      let outcome: StepOutcome;
      try {
        const changed = await step.run(state);
        outcome = { ...base, result: 'held', ms: Math.round(performance.now() - t0), changed };
      } catch (err) {
        const f =
          err instanceof StepFailure
            ? err
            : new StepFailure('the step to run to its end', `an error: ${errorMessage(err)}`);
        outcome = {
          ...base,
          result: 'failed',
          ms: Math.round(performance.now() - t0),
          expected: f.expected,
          got: f.got,
        };
        failed = { step: step.id, expected: f.expected, got: f.got };
      }
      outcomes.push(outcome);
      if (!stopping) narrateStep(i + 1, step, client.take(), outcome, options.narrate);
    }
  } finally {
    process.off('SIGINT', interrupted);
    process.off('SIGTERM', interrupted);
    // Once interrupted, the handler stops the platform and exits; no summary of a cut tour.
    if (stopping) await new Promise<never>(() => {});
    await where.stop();
  }
  return {
    platform: where.url,
    startedHere: where.startedHere,
    engines,
    held: failed === undefined,
    steps: outcomes,
    ...(failed ? { failed } : {}),
  };
}

/** The summary table: step, pattern, result, time. */
export function formatSummary(s: DemoSummary): string {
  const rows = [
    ['step', 'pattern', 'result', 'time'],
    ...s.steps.map((o) => [
      o.step,
      o.pattern,
      o.result,
      o.result === 'not run' ? '-' : `${o.ms} ms`,
    ]),
  ];
  const out = [textTable(rows, { rule: true })];
  const held = s.steps.filter((o) => o.result === 'held').length;
  out.push('');
  out.push(
    s.failed
      ? `tour failed at step "${s.failed.step}": expected ${s.failed.expected}; got ${s.failed.got}`
      : `every step held (${held} of ${s.steps.length})`,
  );
  return out.join('\n');
}
