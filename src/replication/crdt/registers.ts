import { type Crdt, type CrdtType, isRecord, malformed, sortedRecord } from './crdt.js';
import { compareHlc, type HlcTimestamp, type HybridLogicalClock } from './hlc.js';

/** JSON a register or map holds. */
export type JsonValue =
  | null
  | boolean
  | number
  | string
  | JsonValue[]
  | { [key: string]: JsonValue };

export interface LwwRegisterState<V extends JsonValue = JsonValue> {
  /** null when never written. */
  stamp: HlcTimestamp | null;
  value: V | null;
}

function readStamp(type: string, x: unknown): HlcTimestamp {
  if (
    !isRecord(x) ||
    typeof x.wall !== 'number' ||
    !Number.isFinite(x.wall) ||
    typeof x.logical !== 'number' ||
    !Number.isSafeInteger(x.logical) ||
    typeof x.node !== 'string'
  )
    throw malformed(type, 'a stamp must be { wall, logical, node }');
  return { wall: x.wall, logical: x.logical, node: x.node };
}

/**
 * Last-writer-wins register: the value with the greatest hybrid-logical-clock stamp wins.
 * Stamps come from a HybridLogicalClock, never from wall clocks alone: a write made after
 * seeing another (the clock received its stamp) always wins over it.
 */
export class LwwRegister<V extends JsonValue = JsonValue>
  implements Crdt<LwwRegisterState<V>, V | null>
{
  readonly type = 'lww-register';
  #stamp: HlcTimestamp | null;
  #value: V | null;

  constructor(state: LwwRegisterState<V> = { stamp: null, value: null }) {
    this.#stamp = state.stamp;
    this.#value = state.value;
  }

  /** Write `value` stamped by `hlc`; returns the delta to ship (the whole small state). */
  set(value: V, hlc: HybridLogicalClock): LwwRegisterState<V> {
    this.#stamp = hlc.now();
    this.#value = value;
    return this.state();
  }

  value(): V | null {
    return this.#value;
  }

  stamp(): HlcTimestamp | null {
    return this.#stamp;
  }

  state(): LwwRegisterState<V> {
    return { stamp: this.#stamp, value: this.#value };
  }

  merge(other: LwwRegisterState<V>): boolean {
    if (other.stamp === null) return false;
    if (this.#stamp !== null && compareHlc(other.stamp, this.#stamp) <= 0) return false;
    this.#stamp = other.stamp;
    this.#value = other.value;
    return true;
  }
}

function parseRegister(state: unknown): LwwRegisterState {
  if (!isRecord(state) || !('value' in state))
    throw malformed('lww-register', 'expected { stamp, value }');
  const stamp = state.stamp === null ? null : readStamp('lww-register', state.stamp);
  return { stamp, value: state.value as JsonValue };
}

export const lwwRegisterType: CrdtType<LwwRegisterState, JsonValue | null, LwwRegister> = {
  name: 'lww-register',
  create: () => new LwwRegister(),
  fromState: (_node, state) => new LwwRegister(parseRegister(state)),
  parse: parseRegister,
};

/** One key of a LWW-Map: its value, or a tombstone (`deleted`) with the stamp of the delete. */
export interface LwwMapEntry<V extends JsonValue = JsonValue> {
  stamp: HlcTimestamp;
  value: V | null;
  deleted: boolean;
}

export interface LwwMapState<V extends JsonValue = JsonValue> {
  entries: Record<string, LwwMapEntry<V>>;
}

/**
 * Map of last-writer-wins registers: each key is set or deleted with an HLC stamp, and the
 * greatest stamp per key wins. A delete leaves a tombstone (the key with its delete stamp) so
 * that an older set arriving later does not bring the key back.
 */
export class LwwMap<V extends JsonValue = JsonValue>
  implements Crdt<LwwMapState<V>, Record<string, V>>
{
  readonly type = 'lww-map';
  readonly #entries: Map<string, LwwMapEntry<V>>;

  constructor(entries: Map<string, LwwMapEntry<V>> = new Map()) {
    this.#entries = entries;
  }

  /** Set `key`; returns the delta to ship. */
  set(key: string, value: V, hlc: HybridLogicalClock): LwwMapState<V> {
    const e = { stamp: hlc.now(), value, deleted: false };
    this.#entries.set(key, e);
    return { entries: { [key]: e } };
  }

  /** Delete `key` (a tombstone); returns the delta to ship. */
  delete(key: string, hlc: HybridLogicalClock): LwwMapState<V> {
    const e = { stamp: hlc.now(), value: null, deleted: true };
    this.#entries.set(key, e);
    return { entries: { [key]: e } };
  }

  get(key: string): V | undefined {
    const e = this.#entries.get(key);
    return e && !e.deleted ? (e.value as V) : undefined;
  }

  has(key: string): boolean {
    const e = this.#entries.get(key);
    return e !== undefined && !e.deleted;
  }

  value(): Record<string, V> {
    const out: Record<string, V> = {};
    for (const [k, e] of [...this.#entries.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1)))
      if (!e.deleted) out[k] = e.value as V;
    return out;
  }

  state(): LwwMapState<V> {
    return { entries: sortedRecord(this.#entries) };
  }

  merge(other: LwwMapState<V>): boolean {
    let changed = false;
    for (const key in other.entries) {
      const e = other.entries[key]!;
      const mine = this.#entries.get(key);
      if (mine === undefined || compareHlc(e.stamp, mine.stamp) > 0) {
        this.#entries.set(key, e);
        changed = true;
      }
    }
    return changed;
  }
}

function parseMap(state: unknown): LwwMapState {
  if (!isRecord(state) || !isRecord(state.entries))
    throw malformed('lww-map', 'expected { entries }');
  const entries: Record<string, LwwMapEntry> = {};
  for (const k in state.entries) {
    const e = state.entries[k];
    if (!isRecord(e) || typeof e.deleted !== 'boolean' || !('value' in e))
      throw malformed('lww-map', `entry ${JSON.stringify(k)} must be { stamp, value, deleted }`);
    entries[k] = {
      stamp: readStamp('lww-map', e.stamp),
      value: e.value as JsonValue,
      deleted: e.deleted,
    };
  }
  return { entries };
}

export const lwwMapType: CrdtType<LwwMapState, Record<string, JsonValue>, LwwMap> = {
  name: 'lww-map',
  create: () => new LwwMap(),
  fromState: (_node, state) => new LwwMap(new Map(Object.entries(parseMap(state).entries))),
  parse: parseMap,
};
