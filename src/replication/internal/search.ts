/**
 * The Wing & Gong search with Lowe's just-in-time linearization and Porcupine's memoization,
 * over one partition of a history.
 *
 * The history is a doubly linked list of call and return entries in time order. The search
 * walks it from the head: at a call it tries to linearize that operation now (the model step
 * must accept it); on success the call and its return are lifted out of the list and the walk
 * restarts from the head; at a return (an operation that must have taken effect by now but
 * was not placed) it backtracks, unlifting the last operation placed and trying the next
 * candidate. A configuration (the set of linearized operations, the model state) that was
 * already explored is not explored again: the cache holds a Zobrist hash of the linearized
 * set combined with the state key, with exact comparison within a bucket.
 */
import type { Operation } from '../history.js';
import type { LinearizabilityModel } from '../models.js';

export type SearchOutcome =
  | { readonly kind: 'linearizable'; readonly linearization: readonly Operation[] }
  | {
      readonly kind: 'not-linearizable';
      /** The operation whose return the search could not get past in any branch. */
      readonly unplaced: Operation;
      /** The longest partial linearization reached before that return, in order. */
      readonly linearized: readonly Operation[];
      readonly stateBefore: string;
    }
  | { readonly kind: 'timed-out' };

interface CacheEntry {
  readonly bits: Uint32Array;
  readonly key: string;
}

function stringHash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** A deterministic 32-bit generator for the Zobrist table (mulberry32). */
function zobristTable(n: number): Uint32Array {
  const out = new Uint32Array(n);
  let a = 0x2545f491;
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    out[i] = (t ^ (t >>> 14)) >>> 0;
  }
  return out;
}

function sameBits(a: Uint32Array, b: Uint32Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** How many steps run between two looks at the deadline. */
const DEADLINE_STRIDE = 4096;

export function searchPartition<S>(
  operations: readonly Operation[],
  model: LinearizabilityModel<S>,
  expired: () => boolean,
): SearchOutcome {
  const n = operations.length;
  if (n === 0) return { kind: 'linearizable', linearization: [] };
  // Entries in time order; at equal times calls come first (the operations overlap).
  const order: { time: number; isReturn: boolean; op: number }[] = [];
  operations.forEach((op, i) => {
    order.push({ time: op.call, isReturn: false, op: i });
    order.push({ time: op.ret, isReturn: true, op: i });
  });
  order.sort((x, y) =>
    x.time !== y.time ? x.time - y.time : Number(x.isReturn) - Number(y.isReturn),
  );
  const m = order.length;
  const head = m;
  const next = new Int32Array(m + 1);
  const prev = new Int32Array(m + 1);
  const opOf = new Int32Array(m);
  const isCall = new Uint8Array(m);
  const matchOf = new Int32Array(m);
  const returnEntry = new Int32Array(n);
  for (let i = 0; i < m; i++) {
    const e = order[i] as (typeof order)[number];
    opOf[i] = e.op;
    isCall[i] = e.isReturn ? 0 : 1;
    if (e.isReturn) returnEntry[e.op] = i;
    next[i] = i + 1 < m ? i + 1 : -1;
    prev[i] = i === 0 ? head : i - 1;
  }
  next[head] = 0;
  prev[head] = -1;
  for (let i = 0; i < m; i++) if (isCall[i]) matchOf[i] = returnEntry[opOf[i] as number] as number;

  const lift = (e: number): void => {
    next[prev[e] as number] = next[e] as number;
    prev[next[e] as number] = prev[e] as number;
    const r = matchOf[e] as number;
    next[prev[r] as number] = next[r] as number;
    if (next[r] !== -1) prev[next[r] as number] = prev[r] as number;
  };
  const unlift = (e: number): void => {
    const r = matchOf[e] as number;
    next[prev[r] as number] = r;
    if (next[r] !== -1) prev[next[r] as number] = r;
    next[prev[e] as number] = e;
    prev[next[e] as number] = e;
  };

  const zobrist = zobristTable(n);
  const bits = new Uint32Array((n + 31) >>> 5);
  let setHash = 0;
  const cache = new Map<number, CacheEntry[]>();
  const stackEntry: number[] = [];
  const stackState: S[] = [];
  let state = model.init();
  let furthest = -1;
  let furthestStack: number[] = [];
  let furthestState = state;
  let steps = 0;
  let entry = next[head] as number;

  while (next[head] !== -1) {
    if (++steps % DEADLINE_STRIDE === 0 && expired()) return { kind: 'timed-out' };
    if (isCall[entry]) {
      const opIndex = opOf[entry] as number;
      const after = model.step(state, operations[opIndex] as Operation);
      if (after === undefined) {
        entry = next[entry] as number;
        continue;
      }
      bits[opIndex >>> 5] = (bits[opIndex >>> 5] as number) | (1 << (opIndex & 31));
      setHash = (setHash ^ (zobrist[opIndex] as number)) >>> 0;
      const key = model.stateKey(after);
      const h = (setHash ^ Math.imul(stringHash(key), 0x9e3779b1)) >>> 0;
      const bucket = cache.get(h);
      if (bucket?.some((c) => c.key === key && sameBits(c.bits, bits))) {
        bits[opIndex >>> 5] = (bits[opIndex >>> 5] as number) & ~(1 << (opIndex & 31));
        setHash = (setHash ^ (zobrist[opIndex] as number)) >>> 0;
        entry = next[entry] as number;
        continue;
      }
      const cached = { bits: bits.slice(), key };
      if (bucket) bucket.push(cached);
      else cache.set(h, [cached]);
      stackEntry.push(entry);
      stackState.push(state);
      state = after;
      lift(entry);
      entry = next[head] as number;
    } else {
      // A return reached before its operation was placed: this branch fails here.
      if (entry > furthest) {
        furthest = entry;
        furthestStack = stackEntry.map((e) => opOf[e] as number);
        furthestState = state;
      }
      const top = stackEntry.pop();
      if (top === undefined) {
        return {
          kind: 'not-linearizable',
          unplaced: operations[opOf[furthest] as number] as Operation,
          linearized: furthestStack.map((i) => operations[i] as Operation),
          stateBefore: model.stateKey(furthestState),
        };
      }
      state = stackState.pop() as S;
      const opIndex = opOf[top] as number;
      bits[opIndex >>> 5] = (bits[opIndex >>> 5] as number) & ~(1 << (opIndex & 31));
      setHash = (setHash ^ (zobrist[opIndex] as number)) >>> 0;
      unlift(top);
      entry = next[top] as number;
    }
  }
  return {
    kind: 'linearizable',
    linearization: stackEntry.map((e) => operations[opOf[e] as number] as Operation),
  };
}
