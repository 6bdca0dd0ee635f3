import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { LRUCache } from 'lru-cache';
import { LocalStore } from '../../cache/local-store.js';
import { type BenchResult, interleave, percentile, result } from '../harness.js';
import { seededRandom, zipfTrace } from './cache-traces.js';

/**
 * The cache suite's throughput cases (ops.zipf, ops.zipf.string-keys), each run in a process of
 * its own. In one process with the hit-ratio simulations and the other key type, the string-key
 * case's ratio swung between 0.49x and 0.91x from run to run of the same code, and moved with
 * changes that left the store's own speed unchanged (V8's type feedback and inlining decisions
 * from the earlier cases shaped the later one; see docs/decisions/cache-local-store-parts.md).
 * A fresh process sees one key type, as an application's cache usually does, and both
 * contenders start from the same state.
 */

/** What the cache suite drives: ours and lru-cache alike. */
export interface KeySim<K> {
  get(k: K): number | undefined;
  set(k: K, v: number): unknown;
}

/**
 * Mixed get/set: a get for each request, a set on a miss, and a plain set every 10th request.
 * Returns ops per second of this process's CPU time, and ops per second of wall time. The loop is
 * synchronous and single-threaded, so on an idle machine the two agree; on a shared one, wall
 * time also counts the slices the scheduler gave to other processes, which swung the ratio
 * between 0.41x and 0.82x from one run to the next of the same code.
 */
function mixedOps<K>(
  cache: KeySim<K>,
  trace: Int32Array,
  names: readonly K[],
  from: number,
  count: number,
): { cpu: number; wall: number } {
  const cpu0 = process.cpuUsage();
  const start = process.hrtime.bigint();
  const n = trace.length;
  let j = from;
  for (let i = 0; i < count; i++) {
    const k = names[trace[j]!]!;
    j = j + 1 === n ? 0 : j + 1;
    if (i % 10 === 0) cache.set(k, i);
    else if (cache.get(k) === undefined) cache.set(k, i);
  }
  const wall = Number(process.hrtime.bigint() - start) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  return { cpu: count / ((cpu.user + cpu.system) / 1e6), wall: count / wall };
}

export type OpsKeyType = 'int' | 'string';
type Key = string | number;

const KEYS = 100_000;

/** Operations per round and rounds of a throughput case. */
function opsPlan(quick: boolean): { count: number; rounds: number } {
  return quick ? { count: 500_000, rounds: 5 } : { count: 2_000_000, rounds: 11 };
}

const SPECS: Record<OpsKeyType, { id: string; metric: string; keyType: string }> = {
  int: {
    id: 'ops.zipf',
    metric: 'mixed get/set ops per CPU-second (get, set on miss, 10% plain sets), Zipf 0.9',
    keyType: 'int32 numbers',
  },
  // String keys take the store's Map index (int32 keys take its probing table).
  string: {
    id: 'ops.zipf.string-keys',
    metric: 'mixed get/set ops per CPU-second, Zipf 0.9, string keys ("course:<n>")',
    keyType: 'strings',
  },
};

/**
 * One throughput case, in this process: ours (W-TinyLFU) and lru-cache interleaved, each walking
 * the same trace from the same start, chunk by chunk. Keys come from `names` (built before
 * timing), so both contenders pay the same array read per operation.
 */
async function opsCaseHere(keyType: OpsKeyType, quick: boolean): Promise<BenchResult> {
  const spec = SPECS[keyType];
  const trace = zipfTrace(0.9, KEYS, 1_000_000, 7);
  const names: readonly Key[] =
    keyType === 'int'
      ? Array.from({ length: KEYS }, (_, i) => i)
      : Array.from({ length: KEYS }, (_, i) => `course:${i}`);
  const cap = 10_000;
  const { count, rounds } = opsPlan(quick);
  const ours = new LocalStore<Key, number>({ maxEntries: cap, random: seededRandom(1) });
  const lru = new LRUCache<Key, number>({ max: cap });
  const offsets = { ours: 0, lru: 0 };
  const wall = { ours: [] as number[], lru: [] as number[] };
  const step = (who: 'ours' | 'lru', cache: KeySim<Key>) => {
    const r = mixedOps(cache, trace, names, offsets[who], count);
    offsets[who] = (offsets[who] + count) % trace.length;
    wall[who].push(r.wall);
    return r.cpu;
  };
  const ops = await interleave(
    {
      ours: async () => step('ours', ours),
      lru: async () => step('lru', lru),
    },
    rounds,
  );
  return result({
    id: spec.id,
    metric: spec.metric,
    unit: 'ops/s',
    ours: Math.round(ops.ours),
    peer: { name: 'lru-cache', value: Math.round(ops.lru) },
    higherIsBetter: true,
    params: {
      capacity: cap,
      keys: KEYS,
      keyType: spec.keyType,
      rounds,
      opsPerRound: count,
      policy: 'w-tinylfu',
      process: 'a process of its own for this case (fresh V8 state, one key type)',
      timing: 'process CPU time (median of rounds); wall-clock figures in wallClock',
      // Medians of the measured rounds (the first, a warm-up, left out).
      wallClock: {
        ours: Math.round(percentile(wall.ours.slice(1), 50)),
        lru: Math.round(percentile(wall.lru.slice(1), 50)),
        ratio:
          Math.round(
            (percentile(wall.ours.slice(1), 50) / percentile(wall.lru.slice(1), 50)) * 100,
          ) / 100,
      },
    },
  });
}

const CHILD_ENV = 'CDP_BENCH_CACHE_OPS';

if (process.env[CHILD_ENV]) {
  const { keyType, quick } = JSON.parse(process.env[CHILD_ENV]) as {
    keyType: OpsKeyType;
    quick: boolean;
  };
  process.send!(await opsCaseHere(keyType, quick));
  process.disconnect();
}

/** One throughput case in a child process (this file, with the parent's loader flags). */
export function opsCase(keyType: OpsKeyType, quick: boolean): Promise<BenchResult> {
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(import.meta.url), [], {
      env: { ...process.env, [CHILD_ENV]: JSON.stringify({ keyType, quick }) },
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    let out: BenchResult | undefined;
    child.on('message', (m: BenchResult) => {
      out = m;
    });
    child.on('error', reject);
    child.on('exit', (code) =>
      out ? resolve(out) : reject(new Error(`cache ops case ${keyType} exited with ${code}`)),
    );
  });
}

/** The ids and round counts of the throughput cases, for progress lines. */
export function opsCaseLabel(keyType: OpsKeyType, quick: boolean): string {
  const { count, rounds } = opsPlan(quick);
  return `${SPECS[keyType].id}: ${rounds} interleaved rounds of ${count.toLocaleString('en-US')} ops, in a process of its own`;
}
