/**
 * Invalidations seen while a key's load (or an L2 read feeding L1) is in flight. An operation
 * takes the key's current watch when it starts; an invalidation of the key (delete, set, a
 * tag, clear, a bus message, a bus gap) marks the watch stale and detaches it, so operations
 * that start later get a fresh one. A stale operation still returns its value to the callers
 * that were waiting for it (they asked before the invalidation), but stores it in no tier.
 */
export interface Watch {
  stale: boolean;
  /** Operations holding it; it leaves the map when the last one ends. */
  holders: number;
  /**
   * The load's plain L2 write has been issued (so a bus invalidation must delete it again). Never
   * set with a versioned L2, whose conditional write refuses a stale fill by itself.
   */
  l2Written: boolean;
}

/** The watches of the keys with an operation in flight. */
export class Watches {
  readonly #byKey = new Map<string, Watch>();

  /** The key's current watch, taken by an operation that may store what it reads. */
  take(key: string): Watch {
    let w = this.#byKey.get(key);
    if (w === undefined) {
      w = { stale: false, holders: 0, l2Written: false };
      this.#byKey.set(key, w);
    }
    w.holders++;
    return w;
  }

  /** The operation holding `w` ended. */
  release(key: string, w: Watch): void {
    if (--w.holders === 0 && this.#byKey.get(key) === w) this.#byKey.delete(key);
  }

  /** The key changed: its watch (if any) turns stale and is detached, and is returned. */
  invalidate(key: string): Watch | undefined {
    const w = this.#byKey.get(key);
    if (w !== undefined) {
      w.stale = true;
      this.#byKey.delete(key);
    }
    return w;
  }

  /**
   * Every key changed: every watch turns stale and is detached. Returns the keys whose load
   * issued its plain L2 write.
   */
  invalidateAll(): string[] {
    const written: string[] = [];
    for (const [key, w] of this.#byKey) {
      w.stale = true;
      if (w.l2Written) written.push(key);
    }
    this.#byKey.clear();
    return written;
  }
}
