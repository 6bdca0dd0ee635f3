import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

/** One row of `bench/results/<suite>.json`. */
export interface BenchResult {
  /** Stable id, e.g. 'sql.roundtrip': compare runs by it. */
  id: string;
  /** What was measured, e.g. 'throughput', 'latency p99', 'hit ratio'. */
  metric: string;
  unit: string;
  ours: number;
  /** The peer a user would pick instead, measured in the same run; null when there is none. */
  peer: { name: string; value: number } | null;
  /** ours / peer for higher-is-better metrics, peer / ours otherwise: > 1 means ours is better. */
  ratio: number | null;
  higherIsBetter: boolean;
  params: Record<string, unknown>;
}

export interface BenchContext {
  quick: boolean;
  env: Record<string, string | undefined>;
  /** Progress for long runs (stderr). */
  progress(message: string): void;
}

export interface BenchSuite {
  name: string;
  description: string;
  /** Variables the suite needs (it says which are missing instead of failing obscurely). */
  requires?: string[];
  run(ctx: BenchContext): Promise<BenchResult[]>;
}

export function result(
  r: Omit<BenchResult, 'ratio' | 'params' | 'peer'> & {
    peer?: BenchResult['peer'];
    params?: Record<string, unknown>;
  },
): BenchResult {
  const peer = r.peer ?? null;
  let ratio: number | null = null;
  if (peer && peer.value > 0 && r.ours > 0) {
    ratio = r.higherIsBetter ? r.ours / peer.value : peer.value / r.ours;
    ratio = Math.round(ratio * 1000) / 1000;
  }
  return {
    id: r.id,
    metric: r.metric,
    unit: r.unit,
    ours: r.ours,
    peer,
    ratio,
    higherIsBetter: r.higherIsBetter,
    params: r.params ?? {},
  };
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const idx = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[idx]!;
}

/** Run `op` (one operation per call) for about `durationMs` and return operations per second. */
export async function opsPerSecond(
  op: () => Promise<unknown> | unknown,
  durationMs: number,
): Promise<number> {
  let n = 0;
  const start = process.hrtime.bigint();
  const end = start + BigInt(Math.round(durationMs * 1e6));
  let now = start;
  while (now < end) {
    for (let i = 0; i < 16; i++) {
      await op();
      n++;
    }
    now = process.hrtime.bigint();
  }
  return n / (Number(now - start) / 1e9);
}

/** Time one call of `fn` in milliseconds. */
export async function timeMs(fn: () => Promise<unknown> | unknown): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e6;
}

/**
 * Measure several contenders in interleaved rounds (A B C, A B C, ...) so that drift in the
 * machine's load hits all of them alike; each round's figure comes from `measure`, and the
 * median over rounds is returned per contender.
 */
export async function interleave<K extends string>(
  contenders: Record<K, () => Promise<number>>,
  rounds: number,
  warmupRounds = 1,
): Promise<Record<K, number>> {
  const samples = await interleaveRounds(contenders, rounds, warmupRounds);
  const keys = Object.keys(samples) as K[];
  return Object.fromEntries(keys.map((k) => [k, median(samples[k])])) as Record<K, number>;
}

/** `interleave`'s rounds: each contender's figure per round, in round order. */
export async function interleaveRounds<K extends string>(
  contenders: Record<K, () => Promise<number>>,
  rounds: number,
  warmupRounds = 1,
): Promise<Record<K, number[]>> {
  const keys = Object.keys(contenders) as K[];
  const samples = Object.fromEntries(keys.map((k) => [k, [] as number[]])) as unknown as Record<
    K,
    number[]
  >;
  for (let r = 0; r < warmupRounds + rounds; r++) {
    // Rotate the order each round so no contender always runs first.
    const order = keys.map((_, i) => keys[(i + r) % keys.length]!);
    for (const k of order) {
      const v = await contenders[k]();
      if (r >= warmupRounds) samples[k].push(v);
    }
  }
  return samples;
}

/**
 * The spread of `a / b` over rounds measured side by side (`interleaveRounds`): each round's
 * ratio pairs two figures taken within a second of each other, so a slow spell of the
 * machine moves both. Quartiles and the median, rounded to 3 places.
 */
export function roundRatios(a: readonly number[], b: readonly number[]) {
  const ratios = a.map((x, i) => x / b[i]!).filter((x) => Number.isFinite(x));
  const round3 = (x: number) => Math.round(x * 1000) / 1000;
  return {
    p25: round3(percentile(ratios, 25)),
    median: round3(median(ratios)),
    p75: round3(percentile(ratios, 75)),
  };
}

function fmt(n: number | null | undefined): string {
  if (n === null || n === undefined || Number.isNaN(n)) return '-';
  if (Math.abs(n) >= 1000) return Math.round(n).toLocaleString('en-US');
  if (Math.abs(n) >= 10) return n.toFixed(1);
  return n.toFixed(3);
}

export function formatTable(results: BenchResult[]): string {
  const rows = [
    ['id', 'metric', 'unit', 'ours', 'peer', 'peer value', 'ratio'],
    ...results.map((r) => [
      r.id,
      r.metric,
      r.unit,
      fmt(r.ours),
      r.peer?.name ?? '-',
      fmt(r.peer?.value),
      r.ratio === null ? '-' : `${r.ratio.toFixed(2)}x`,
    ]),
  ];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  const line = (row: string[]) =>
    row.map((cell, c) => (c >= 3 ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!))).join('  ');
  return [
    line(rows[0]!),
    widths.map((w) => '-'.repeat(w)).join('  '),
    ...rows.slice(1).map(line),
  ].join('\n');
}

export async function writeResults(path: string, results: BenchResult[]): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, `${JSON.stringify(results, null, 2)}\n`);
}

/**
 * The name of a benchmark run's database, `cdp_bench_<tag>_<pid>`, for `createTempDatabase`'s
 * fixed-name form (`{ name }`), which drops a leftover of that name first.
 */
export function benchDatabaseName(tag: string): string {
  return `cdp_bench_${tag}_${process.pid}`;
}
