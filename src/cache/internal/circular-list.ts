/**
 * Intrusive doubly-linked circular lists over slot numbers: the links live in two `Int32Array`s
 * (`next`, `prev`) indexed by slot, and list `q`'s head is `heads[q]` (`NIL` when empty); its
 * tail is `prev[head]`. Several lists share one pair of link arrays as long as a slot is in at
 * most one of them at a time. The store keeps its policy lists (LRU/FIFO queues, W-TinyLFU's
 * segments) and its LFU frequency lists on one pair, and the timer wheel keeps its buckets on
 * another.
 *
 * Plain functions over the caller's arrays, so that nothing is allocated and the hot path pays
 * no object indirection (the store's fields are passed in as they are).
 */

/** The empty list, and "no slot". */
export const NIL = -1;

/** An operation on slot `i` and list `q` of the lists linked by `next`/`prev`, heads in `heads`. */
type ListOperation = (
  next: Int32Array,
  prev: Int32Array,
  heads: Int32Array,
  q: number,
  i: number,
) => void;

/** Append slot `i` at the tail of list `q`. */
export const pushTail: ListOperation = (next, prev, heads, q, i) => {
  const h = heads[q]!;
  if (h === NIL) {
    next[i] = i;
    prev[i] = i;
    heads[q] = i;
    return;
  }
  const t = prev[h]!;
  next[t] = i;
  prev[i] = t;
  next[i] = h;
  prev[h] = i;
};

/** Remove slot `i` from list `q` (the list it is in). */
export const unlink: ListOperation = (next, prev, heads, q, i) => {
  const n = next[i]!;
  if (n === i) {
    heads[q] = NIL;
    return;
  }
  const p = prev[i]!;
  next[p] = n;
  prev[n] = p;
  if (heads[q] === i) heads[q] = n;
};
