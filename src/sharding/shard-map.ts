import { ShardKeyTypeError, ShardMapError } from './errors.js';
import { slotOf } from './slot-hash.js';

/** How a map places keys: a directory (lookup), ordered key ranges, or hashed virtual slots. */
export type ShardStrategy = 'lookup' | 'range' | 'hash';
/** The type of a map's keys: text, or whole numbers (sent as bigint to SQL). */
export type ShardKeyType = 'text' | 'bigint';
export type ShardKey = string | number | bigint;

/** Where one key lives: the shard, and the unit that moves as a whole (slot, range or key). */
export interface ShardRoute {
  shard: string;
  /** `slot:<n>` (hash), `range:<id>` (range) or `key:<key>` (lookup). */
  unit: string;
}

/** A physical shard as the catalog lists it. */
export interface ShardInfo {
  id: string;
  /** Where it is: a PostgreSQL URL, or a label of an embedded shard. */
  location: string;
}

/** One ordered range: keys from `lo` (inclusive; null = no lower bound) to the next range's lo. */
export interface KeyRange {
  id: number;
  lo: string | null;
  shard: string;
}

/** A map as stored in the catalog at one version. */
export interface ShardMapState {
  name: string;
  strategy: ShardStrategy;
  keyType: ShardKeyType;
  /** Virtual slots of a hash map (0 for the others). */
  slotCount: number;
  version: number;
  shards: readonly ShardInfo[];
  /** Hash maps: the owner of every slot, by slot number. */
  slots: readonly string[];
  /** Range maps: ranges ordered by lo, the first with lo null. */
  ranges: readonly KeyRange[];
  /** Lookup maps: key (canonical text) -> shard. */
  directory: ReadonlyMap<string, string>;
}

/**
 * The routing side of a shard map at one version: every strategy answers the same questions,
 * so the router, the fan-out and the mover never branch on the strategy.
 */
export interface ShardMap {
  readonly state: ShardMapState;
  /** The key's canonical text; refuses a key of the wrong type. */
  canonical(key: ShardKey): string;
  route(key: ShardKey): ShardRoute;
  /**
   * Hash maps: the route of any text by its slot (an index table's value, whatever the map's key
   * type). Other strategies refuse: their units are defined on keys of the map's type.
   */
  routeHashed(text: string): ShardRoute;
  /** Units (slots, ranges, keys) owned by each shard. */
  unitsByShard(): Map<string, string[]>;
  /**
   * A SQL condition true for the rows of `unit`, given an expression of the row's key
   * (e.g. `t.student_id`). Values are inlined as escaped literals.
   */
  unitPredicate(unit: string, keyExpression: string): string;
}

function literal(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

const INT = /^-?(0|[1-9][0-9]*)$/;

function canonicalKey(state: ShardMapState, key: ShardKey): string {
  if (state.keyType === 'text') {
    if (typeof key !== 'string') throw new ShardKeyTypeError(state.name, 'text', key);
    return key;
  }
  if (typeof key === 'bigint') return key.toString();
  if (typeof key === 'number' && Number.isSafeInteger(key)) return String(key);
  if (typeof key === 'string' && INT.test(key)) return BigInt(key).toString();
  throw new ShardKeyTypeError(state.name, 'whole-number', key);
}

function compareKeys(state: ShardMapState, a: string, b: string): number {
  if (state.keyType === 'bigint') {
    const x = BigInt(a);
    const y = BigInt(b);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function keyText(state: ShardMapState, keyExpression: string): string {
  return state.keyType === 'bigint'
    ? `(${keyExpression})::bigint`
    : `(${keyExpression})::text COLLATE "C"`;
}

function keyLiteral(state: ShardMapState, value: string): string {
  return state.keyType === 'bigint' ? `${literal(value)}::bigint` : `${literal(value)} COLLATE "C"`;
}

function notHash(state: ShardMapState): never {
  throw new ShardMapError(
    `map "${state.name}" is a ${state.strategy} map: index tables need a hash map`,
  );
}

/** Builds the routing view of a stored map. */
export function createShardMap(state: ShardMapState): ShardMap {
  switch (state.strategy) {
    case 'hash':
      return hashMap(state);
    case 'range':
      return rangeMap(state);
    case 'lookup':
      return lookupMap(state);
  }
}

function hashMap(state: ShardMapState): ShardMap {
  return {
    state,
    canonical: (key) => canonicalKey(state, key),
    route(key) {
      const slot = slotOf(canonicalKey(state, key), state.slotCount);
      return { shard: state.slots[slot]!, unit: `slot:${slot}` };
    },
    routeHashed(text) {
      const slot = slotOf(text, state.slotCount);
      return { shard: state.slots[slot]!, unit: `slot:${slot}` };
    },
    unitsByShard() {
      const out = new Map<string, string[]>(state.shards.map((s) => [s.id, []]));
      state.slots.forEach((shard, slot) => {
        out.get(shard)?.push(`slot:${slot}`);
      });
      return out;
    },
    unitPredicate(unit, keyExpression) {
      const slot = Number(unit.slice('slot:'.length));
      if (
        !unit.startsWith('slot:') ||
        !Number.isInteger(slot) ||
        slot < 0 ||
        slot >= state.slotCount
      ) {
        throw new ShardMapError(
          `"${unit}" is not a slot of hash map "${state.name}" (0..${state.slotCount - 1})`,
        );
      }
      return `cdp_shard_slot((${keyExpression})::text, ${state.slotCount}) = ${slot}`;
    },
  };
}

/** The index of the range holding `key`: the last range whose lo <= key. */
export function rangeIndexOf(state: ShardMapState, canonical: string): number {
  let lo = 0;
  let hi = state.ranges.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    const bound = state.ranges[mid]!.lo;
    if (bound === null || compareKeys(state, bound, canonical) <= 0) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

function rangeMap(state: ShardMapState): ShardMap {
  return {
    state,
    canonical: (key) => canonicalKey(state, key),
    route(key) {
      const r = state.ranges[rangeIndexOf(state, canonicalKey(state, key))]!;
      return { shard: r.shard, unit: `range:${r.id}` };
    },
    routeHashed: () => notHash(state),
    unitsByShard() {
      const out = new Map<string, string[]>(state.shards.map((s) => [s.id, []]));
      for (const r of state.ranges) out.get(r.shard)?.push(`range:${r.id}`);
      return out;
    },
    unitPredicate(unit, keyExpression) {
      const i = state.ranges.findIndex((r) => `range:${r.id}` === unit);
      if (i < 0) throw new ShardMapError(`"${unit}" is not a range of map "${state.name}"`);
      const { lo } = state.ranges[i]!;
      const hi = state.ranges[i + 1]?.lo ?? null;
      const k = keyText(state, keyExpression);
      const parts = [];
      if (lo !== null) parts.push(`${k} >= ${keyLiteral(state, lo)}`);
      if (hi !== null) parts.push(`${k} < ${keyLiteral(state, hi)}`);
      return parts.length > 0 ? parts.join(' AND ') : 'true';
    },
  };
}

function lookupMap(state: ShardMapState): ShardMap {
  return {
    state,
    canonical: (key) => canonicalKey(state, key),
    route(key) {
      const k = canonicalKey(state, key);
      const shard = state.directory.get(k);
      if (shard === undefined) {
        throw new ShardMapError(
          `lookup map "${state.name}" has no entry for key ${JSON.stringify(k)}: assign it to a shard first (catalog.assign)`,
        );
      }
      return { shard, unit: `key:${k}` };
    },
    routeHashed: () => notHash(state),
    unitsByShard() {
      const out = new Map<string, string[]>(state.shards.map((s) => [s.id, []]));
      for (const [k, shard] of state.directory) out.get(shard)?.push(`key:${k}`);
      return out;
    },
    unitPredicate(unit, keyExpression) {
      if (!unit.startsWith('key:'))
        throw new ShardMapError(`"${unit}" is not a key unit of map "${state.name}"`);
      return `(${keyExpression})::text = ${literal(unit.slice(4))}`;
    },
  };
}
