/**
 * The in-process store against an earlier commit's, in one process on the same traces: mixed
 * get/set ops (a get per request, a set on a miss, a plain set every 10th) per CPU-second, the
 * two stores alternating round by round, after the same warm-up as the cache suite's (hit-ratio
 * simulations on int keys), so that V8 has seen both stores in the suite's state. Ratios are
 * medians of per-round ratios (this checkout's store over the baseline's).
 *
 *   mkdir -p scratch/baseline && git archive 6dc0131 src | tar -x -C scratch/baseline
 *   AB_BASELINE=scratch/baseline npx tsx bench/ab/cache-store.ts
 *   (AB_ROUNDS=15, AB_OPS=500000, AB_KEYS=string|int)
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { seededRandom, zipfTrace } from '../../src/bench/suites/cache-traces.js';
import { LocalStore } from '../../src/cache/local-store.js';

const baselineDir = process.env.AB_BASELINE;
if (!baselineDir) throw new Error('set AB_BASELINE to an extract of an earlier commit (see above)');
const rounds = Number(process.env.AB_ROUNDS ?? 15);
const ops = Number(process.env.AB_OPS ?? 500_000);
const keyType = process.env.AB_KEYS ?? 'string';

interface Store<K> {
  get(k: K): number | undefined;
  set(k: K, v: number): unknown;
}
type StoreClass = new (o: { maxEntries: number; random?: () => number }) => Store<unknown>;

const base = (await import(
  pathToFileURL(resolve(baselineDir, 'src/cache/local-store.ts')).href
)) as { LocalStore: StoreClass };
const variants: Record<string, StoreClass> = {
  baseline: base.LocalStore,
  current: LocalStore as unknown as StoreClass,
};

const keys = 100_000;
// Warm-up as in the cache suite: hit-ratio runs with int keys.
const warm = zipfTrace(0.9, keys, 1_000_000, 42);
for (const Cls of Object.values(variants)) {
  for (const cap of [1000, 10_000]) {
    const s = new Cls({ maxEntries: cap, random: seededRandom(1) });
    for (let i = 0; i < warm.length; i++) {
      const k = warm[i]!;
      if (s.get(k) === undefined) s.set(k, k);
    }
  }
}

const trace = zipfTrace(0.9, keys, 1_000_000, 7);
const names: unknown[] =
  keyType === 'int'
    ? Array.from({ length: keys }, (_, i) => i)
    : Array.from({ length: keys }, (_, i) => `course:${i}`);

function mixed(store: Store<unknown>, from: number): number {
  const cpu0 = process.cpuUsage();
  let j = from;
  for (let i = 0; i < ops; i++) {
    const k = names[trace[j]!];
    j = j + 1 === trace.length ? 0 : j + 1;
    if (i % 10 === 0) store.set(k, i);
    else if (store.get(k) === undefined) store.set(k, i);
  }
  const cpu = process.cpuUsage(cpu0);
  return ops / ((cpu.user + cpu.system) / 1e6);
}

const stores = Object.fromEntries(
  Object.entries(variants).map(([n, C]) => [
    n,
    new C({ maxEntries: 10_000, random: seededRandom(1) }),
  ]),
);
const perRound: Record<string, number[]> = { baseline: [], current: [] };
let offset = 0;
for (let r = 0; r < rounds + 1; r++) {
  // Alternate which store goes first.
  const order = r % 2 === 0 ? ['baseline', 'current'] : ['current', 'baseline'];
  for (const n of order) {
    const v = mixed(stores[n]!, offset);
    if (r > 0) perRound[n]!.push(v);
  }
  offset = (offset + ops) % trace.length;
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ratios = perRound.current!.map((c, i) => c / perRound.baseline![i]!);
console.log(
  `${keyType} keys, ${rounds} rounds of ${ops.toLocaleString('en-US')} ops: baseline ${Math.round(median(perRound.baseline!)).toLocaleString('en-US')} ops/s, current ${Math.round(median(perRound.current!)).toLocaleString('en-US')} ops/s, current/baseline median ${median(ratios).toFixed(3)}`,
);
