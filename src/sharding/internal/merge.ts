/**
 * Orders two column values as PostgreSQL orders them for numbers, dates and text under the "C"
 * collation; NULL sorts last, as in an ascending ORDER BY.
 */
export function compareValues(a: unknown, b: unknown): number {
  if (a === b) return 0;
  if (a === null || a === undefined) return 1;
  if (b === null || b === undefined) return -1;
  if (
    (typeof a === 'number' || typeof a === 'bigint') &&
    (typeof b === 'number' || typeof b === 'bigint')
  ) {
    return a < b ? -1 : a > b ? 1 : 0;
  }
  if (a instanceof Date && b instanceof Date) return a.getTime() - b.getTime();
  return Buffer.compare(Buffer.from(String(a), 'utf8'), Buffer.from(String(b), 'utf8'));
}

/**
 * Merges lists each sorted by `cmp` into one, skipping `offset` rows and stopping after `limit`:
 * a binary heap of list heads, O((offset + limit) log k), never a sort of everything.
 */
export function kWayMerge<R>(
  lists: readonly R[][],
  cmp: (a: R, b: R) => number,
  offset = 0,
  limit?: number,
): R[] {
  const heap: { list: number; at: number }[] = [];
  const less = (i: number, j: number) => {
    const a = heap[i]!;
    const b = heap[j]!;
    const c = cmp(lists[a.list]![a.at]!, lists[b.list]![b.at]!);
    return c < 0 || (c === 0 && a.list < b.list);
  };
  const swap = (i: number, j: number) => {
    const t = heap[i]!;
    heap[i] = heap[j]!;
    heap[j] = t;
  };
  const up = (i: number) => {
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(i, p)) return;
      swap(i, p);
      i = p;
    }
  };
  const down = (i: number) => {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && less(l, m)) m = l;
      if (r < heap.length && less(r, m)) m = r;
      if (m === i) return;
      swap(i, m);
      i = m;
    }
  };
  lists.forEach((l, list) => {
    if (l.length > 0) {
      heap.push({ list, at: 0 });
      up(heap.length - 1);
    }
  });
  const out: R[] = [];
  let skipped = 0;
  const end = limit === undefined ? Number.POSITIVE_INFINITY : limit;
  while (heap.length > 0 && out.length < end) {
    const top = heap[0]!;
    const row = lists[top.list]![top.at]!;
    if (skipped < offset) skipped++;
    else out.push(row);
    top.at++;
    if (top.at >= lists[top.list]!.length) {
      const last = heap.pop()!;
      if (heap.length > 0) {
        heap[0] = last;
        down(0);
      }
    } else down(0);
  }
  return out;
}
