/**
 * Intrusive doubly-linked circular lists over slot numbers: the links live in two `Int32Array`s
 * (`next`, `prev`) indexed by slot, and a list is named by its head slot (`NIL` when empty); the
 * tail is `prev[head]`. Several lists share one pair of link arrays as long as a slot is in at
 * most one of them at a time. The store keeps its policy lists (LRU/FIFO queues, W-TinyLFU's
 * segments, one list per LFU frequency) on one pair and the timer wheel's buckets on another.
 *
 * The functions take the arrays and the head and return the new head, so that the caller keeps
 * its heads wherever suits it (a typed array of heads, a Map of them) and nothing is allocated.
 */

/** The empty list, and "no slot". */
export const NIL = -1;

/** Append slot `i` at the tail of the list whose head is `head`; returns the list's head. */
export function linkTail(next: Int32Array, prev: Int32Array, head: number, i: number): number {
  if (head === NIL) {
    next[i] = i;
    prev[i] = i;
    return i;
  }
  const t = prev[head]!;
  next[t] = i;
  prev[i] = t;
  next[i] = head;
  prev[head] = i;
  return head;
}

/** Remove slot `i` from the list whose head is `head`; returns the list's head (NIL if now empty). */
export function unlink(next: Int32Array, prev: Int32Array, head: number, i: number): number {
  const n = next[i]!;
  if (n === i) return NIL;
  const p = prev[i]!;
  next[p] = n;
  prev[n] = p;
  return head === i ? n : head;
}
