/**
 * Seeded synthetic access traces for the cache benchmarks, and the offline optimum (Belady) a
 * policy's hit ratio is measured against.
 */

/** mulberry32: a small seeded PRNG, so every run sees the same traces. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `n` requests over `keys` keys, key k (0-based rank) with probability ∝ 1/(k+1)^alpha. */
export function zipfTrace(alpha: number, keys: number, n: number, seed: number): Int32Array {
  const cdf = new Float64Array(keys);
  let sum = 0;
  for (let k = 0; k < keys; k++) {
    sum += 1 / (k + 1) ** alpha;
    cdf[k] = sum;
  }
  const rnd = seededRandom(seed);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const u = rnd() * sum;
    let lo = 0;
    let hi = keys - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cdf[mid]! < u) lo = mid + 1;
      else hi = mid;
    }
    out[i] = lo;
  }
  return out;
}

/** Zipf 0.9 with a scan of `scanLength` never-seen keys every `every` requests. */
export function scanTrace(n: number, every: number, scanLength: number, seed: number): Int32Array {
  const base = zipfTrace(0.9, 100_000, n, seed);
  const out = new Int32Array(n);
  let fresh = 10_000_000;
  let j = 0;
  for (let i = 0; i < n; ) {
    for (let k = 0; k < every && i < n; k++) out[i++] = base[j++]!;
    for (let k = 0; k < scanLength && i < n; k++) out[i++] = fresh++;
  }
  return out;
}

/** A cyclic scan over `length` keys, repeated. */
export function loopTrace(n: number, length: number): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = i % length;
  return out;
}

/**
 * Recency-heavy: a stream of new keys, each re-referenced soon after it first appears (LRU stack
 * distances skewed small), then forgotten. What was hot a while ago is not hot now, so frequency
 * history misleads and pure recency is close to optimal.
 */
export function recencyTrace(n: number, depth: number, pNew: number, seed: number): Int32Array {
  const rnd = seededRandom(seed);
  const out = new Int32Array(n);
  let next = 0;
  for (let i = 0; i < n; i++) {
    if (next === 0 || rnd() < pNew) {
      out[i] = next++;
    } else {
      const d = Math.floor(depth * rnd() ** 3);
      out[i] = Math.max(0, next - 1 - d);
    }
  }
  return out;
}

/**
 * Belady's MIN with bypass: on a miss, evict the cached key used furthest in the future (or
 * do not admit the newcomer if it is). The optimal hit ratio for the trace and capacity.
 */
export function beladyHitRatio(trace: Int32Array, capacity: number): number {
  const n = trace.length;
  // Dense ids so that per-key state fits in typed arrays.
  const ids = new Map<number, number>();
  const dense = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let id = ids.get(trace[i]!);
    if (id === undefined) {
      id = ids.size;
      ids.set(trace[i]!, id);
    }
    dense[i] = id;
  }
  const keys = ids.size;
  // nextUse[i]: index of the next request for the same key, or n + i if none (unique, > any index).
  const nextUse = new Float64Array(n);
  const seen = new Float64Array(keys).fill(-1);
  for (let i = n - 1; i >= 0; i--) {
    const k = dense[i]!;
    nextUse[i] = seen[k]! >= 0 ? seen[k]! : n + i;
    seen[k] = i;
  }
  const keyOf = (v: number) => dense[v < n ? v : v - n]!;
  const inCache = new Uint8Array(keys);
  const cur = new Float64Array(keys);
  // Max-heap of next-use times with lazy deletion.
  const heap = new Float64Array(n + capacity + 1);
  let hsize = 0;
  const push = (v: number) => {
    let i = hsize++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (heap[p]! >= v) break;
      heap[i] = heap[p]!;
      i = p;
    }
    heap[i] = v;
  };
  const pop = () => {
    const top = heap[0]!;
    const last = heap[--hsize]!;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= hsize) break;
      const r = l + 1;
      const c = r < hsize && heap[r]! > heap[l]! ? r : l;
      if (heap[c]! <= last) break;
      heap[i] = heap[c]!;
      i = c;
    }
    heap[i] = last;
    return top;
  };
  const peekValid = () => {
    while (hsize > 0) {
      const v = heap[0]!;
      const k = keyOf(v);
      if (inCache[k] && cur[k] === v) return v;
      pop();
    }
    return -1;
  };
  let hits = 0;
  let size = 0;
  for (let i = 0; i < n; i++) {
    const k = dense[i]!;
    const nu = nextUse[i]!;
    if (inCache[k]) {
      hits++;
      cur[k] = nu;
      push(nu);
      continue;
    }
    if (size >= capacity) {
      const far = peekValid();
      if (far < nu) continue; // bypass: the newcomer is the one used furthest away
      pop();
      inCache[keyOf(far)] = 0;
      size--;
    }
    inCache[k] = 1;
    cur[k] = nu;
    push(nu);
    size++;
  }
  return hits / n;
}
