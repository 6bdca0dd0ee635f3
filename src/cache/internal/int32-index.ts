import { NIL } from './circular-list.js';
import { mix32 } from './frequency-sketch.js';

/** Keys the int32 index takes: int32 numbers (-0 is 0, as in a Map). */
export function isIntKey(key: unknown): key is number {
  return typeof key === 'number' && (key | 0) === key;
}

/**
 * The store's index of int32 keys: key -> slot. Open addressing with linear probing over two
 * typed arrays (key, slot; slot NIL = empty), at most half full, deleted by backward shift (no
 * tombstones). A probe is a few typed-array reads, where a `Map` call costs a builtin's hashing
 * and chain walk: on the ops.zipf trace the three `Map` calls per miss were about half of the
 * store's time. It starts small and doubles as keys arrive, so a store keyed by strings never
 * pays for it.
 */
export class Int32Index {
  #keys = new Int32Array(0);
  #slots = new Int32Array(0);
  #mask = 0;
  #count = 0;

  constructor(initialSize = 16) {
    this.#rehash(initialSize);
  }

  /** Number of keys indexed. */
  get size(): number {
    return this.#count;
  }

  /** The slot of `key`, or NIL. */
  get(key: number): number {
    const keys = this.#keys;
    const slots = this.#slots;
    const m = this.#mask;
    let s = mix32(key) & m;
    for (;;) {
      const v = slots[s]!;
      if (v === NIL || keys[s] === key) return v;
      s = (s + 1) & m;
    }
  }

  /** Index `key`, which is absent, at `slot`. */
  set(key: number, slot: number): void {
    if ((this.#count + 1) * 2 > this.#slots.length) this.#rehash(this.#slots.length * 2);
    const slots = this.#slots;
    const m = this.#mask;
    let s = mix32(key) & m;
    while (slots[s] !== NIL) s = (s + 1) & m;
    this.#keys[s] = key;
    slots[s] = slot;
    this.#count++;
  }

  /** Remove `key` if present. */
  delete(key: number): void {
    const keys = this.#keys;
    const slots = this.#slots;
    const m = this.#mask;
    let s = mix32(key) & m;
    for (;;) {
      if (slots[s] === NIL) return;
      if (keys[s] === key) break;
      s = (s + 1) & m;
    }
    this.#count--;
    // Backward shift: pull later entries of the probe run into the hole when their home
    // position is not between the hole and them (cyclically).
    let hole = s;
    let j = s;
    for (;;) {
      j = (j + 1) & m;
      if (slots[j] === NIL) break;
      const home = mix32(keys[j]!) & m;
      const stays = hole <= j ? hole < home && home <= j : hole < home || home <= j;
      if (stays) continue;
      keys[hole] = keys[j]!;
      slots[hole] = slots[j]!;
      hole = j;
    }
    slots[hole] = NIL;
  }

  /** Append every indexed slot to `out`. */
  collectSlots(out: number[]): void {
    const slots = this.#slots;
    for (let s = 0; s < slots.length; s++) if (slots[s] !== NIL) out.push(slots[s]!);
  }

  #rehash(size: number): void {
    const oldKeys = this.#keys;
    const oldSlots = this.#slots;
    this.#keys = new Int32Array(size);
    this.#slots = new Int32Array(size).fill(NIL);
    this.#mask = size - 1;
    this.#count = 0;
    for (let s = 0; s < oldSlots.length; s++) {
      const v = oldSlots[s]!;
      if (v !== NIL) this.set(oldKeys[s]!, v);
    }
  }
}
