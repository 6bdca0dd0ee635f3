import { ValidationError } from '../../core/errors.js';

/**
 * A state-based CRDT with delta mutators (Almeida, Shoker, Baquero: "Delta state replicated
 * data types", 2018). Every replica holds a state; a mutator changes it and returns a delta,
 * itself a (small) state of the same type; `merge` joins any state or delta into this one.
 * The join is commutative, associative and idempotent, so replicas that have received the same
 * deltas or states, in any order and any number of times, hold the same state.
 *
 * - Delta sync: ship each mutator's delta (small; a lost one is repaired by state sync).
 * - State sync: ship `state()` (whole; anti-entropy, or a new replica catching up).
 */
export interface Crdt<S, V> {
  /** The type's name, e.g. 'or-set' (what `CrdtType.name` says). */
  readonly type: string;
  /** The value an application reads. */
  value(): V;
  /** The whole state, as plain JSON in a canonical order (equal states serialize alike). */
  state(): S;
  /** Join a state or delta of the same type into this one; true when this state changed. */
  merge(other: S): boolean;
}

/** How to make and restore one CRDT type: what a replica needs to store and ship it. */
export interface CrdtType<S = unknown, V = unknown, C extends Crdt<S, V> = Crdt<S, V>> {
  readonly name: string;
  /** An empty replica owned by `node` (its mutators stamp with that id). */
  create(node: string): C;
  /** A replica owned by `node` holding `state`; throws ValidationError for a malformed state. */
  fromState(node: string, state: unknown): C;
  /** Check a state or delta from the wire and return it typed; throws ValidationError. */
  parse(state: unknown): S;
}

/** A state that does not have the shape its type needs (from the wire or the database). */
export function malformed(type: string, why: string): ValidationError {
  return new ValidationError(`malformed ${type} state: ${why}`);
}

export function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** Plain object with its keys sorted (canonical JSON for digests and equality). */
export function sortedRecord<T>(m: ReadonlyMap<string, T> | Record<string, T>): Record<string, T> {
  const entries = m instanceof Map ? [...m.entries()] : Object.entries(m);
  entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const out: Record<string, T> = {};
  for (const [k, v] of entries) out[k] = v;
  return out;
}

/** Read a { node: non-negative integer } record. */
export function readCounts(type: string, x: unknown, what: string): Map<string, number> {
  if (!isRecord(x)) throw malformed(type, `${what} must be an object of counts`);
  const out = new Map<string, number>();
  for (const [k, v] of Object.entries(x)) {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
      throw malformed(type, `${what}.${k} must be a non-negative integer`);
    out.set(k, v);
  }
  return out;
}
