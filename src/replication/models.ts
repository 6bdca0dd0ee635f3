/**
 * Sequential specifications the linearizability checker tests histories against: a register,
 * a compare-and-set register and a key-value map (a cas register per key).
 */
import { ValidationError } from '../core/errors.js';
import type { Operation } from './history.js';

/**
 * A sequential object. `step` gives the state after `op` from `state`, or undefined when `op`
 * with its recorded output cannot happen in `state`; states are never undefined. `stateKey`
 * identifies a state (equal keys, equal states). `partition` splits a history into independent
 * sub-histories (one per key for a map: P-compositionality) and may drop operations that
 * constrain nothing; without it the history is one partition.
 */
export interface LinearizabilityModel<S = unknown> {
  readonly name: string;
  init(): S;
  step(state: S, op: Operation): S | undefined;
  stateKey(state: S): string;
  partition?(operations: readonly Operation[]): ReadonlyMap<string, readonly Operation[]>;
  describe?(op: Operation): string;
}

/** A register value as a state key: nil (null or absent) is "nil", anything else its JSON. */
export function registerValueKey(v: unknown): string {
  return v === null || v === undefined ? 'nil' : JSON.stringify(v);
}

type RegisterOp = 'read' | 'write' | 'cas';

function registerOp(f: string, allowCas: boolean, model: string): RegisterOp {
  if (f === 'read' || f === 'get') return 'read';
  if (f === 'write' || f === 'put') return 'write';
  if (f === 'cas' && allowCas) return 'cas';
  throw new ValidationError(
    `the ${model} model has no operation "${f}": it knows read/get, write/put${allowCas ? ' and cas' : ' (cas needs --model cas-register or kv)'}`,
  );
}

function casArgs(op: Operation): [string, string] {
  const v = op.input;
  if (!Array.isArray(v) || v.length !== 2)
    throw new ValidationError(
      `operation ${op.id} (cas by process ${String(op.process)}): its value must be [expected, new]; got ${JSON.stringify(v)}`,
    );
  return [registerValueKey(v[0]), registerValueKey(v[1])];
}

/** An operation as the register step reads it: its kind and its values as state keys. */
interface RegisterStep {
  readonly kind: RegisterOp;
  readonly indeterminate: boolean;
  /** read: the value read; write: the value written; cas: the expected value. */
  readonly a: string;
  /** cas: the new value. */
  readonly b: string;
}

/** The compiled form of each operation, made once instead of at every step of the search. */
const compiled = new WeakMap<Operation, RegisterStep>();

function compile(op: Operation): RegisterStep {
  let c = compiled.get(op);
  if (c) return c;
  const f = op.f;
  if (f === 'read' || f === 'get')
    c = { kind: 'read', indeterminate: op.indeterminate, a: registerValueKey(op.output), b: '' };
  else if (f === 'write' || f === 'put')
    c = { kind: 'write', indeterminate: op.indeterminate, a: registerValueKey(op.input), b: '' };
  else {
    const [expected, next] = casArgs(op);
    c = { kind: 'cas', indeterminate: op.indeterminate, a: expected, b: next };
  }
  compiled.set(op, c);
  return c;
}

function registerStep(state: string, op: Operation): string | undefined {
  const c = compile(op);
  if (c.kind === 'read') return c.indeterminate || c.a === state ? state : undefined;
  if (c.kind === 'write') return c.a;
  if (c.a === state) return c.b;
  // A cas of unknown outcome whose precondition does not hold simply did not take effect.
  return c.indeterminate ? state : undefined;
}

function describeRegisterOp(op: Operation): string {
  const unknown = op.indeterminate ? ' -> ?' : '';
  const f = op.f;
  if (f === 'read' || f === 'get')
    return `${f}() -> ${op.indeterminate ? '?' : registerValueKey(op.output)}`;
  if (f === 'cas' && Array.isArray(op.input))
    return `cas(${registerValueKey(op.input[0])}, ${registerValueKey(op.input[1])})${unknown || ' -> ok'}`;
  return `${f}(${registerValueKey(op.input)})${unknown}`;
}

/** Reads that may or may not have happened constrain nothing. */
function constraining(op: Operation): boolean {
  return !(op.indeterminate && (op.f === 'read' || op.f === 'get'));
}

function registerLike(name: string, allowCas: boolean): LinearizabilityModel<string> {
  return {
    name,
    init: () => 'nil',
    step: registerStep,
    stateKey: (s) => s,
    partition(operations) {
      for (const op of operations) {
        registerOp(op.f, allowCas, name);
        if (op.f === 'cas') casArgs(op);
      }
      return new Map([['', operations.filter(constraining)]]);
    },
    describe: describeRegisterOp,
  };
}

/** A register of one value, initially nil: read (get) returns it, write (put) sets it. */
export const registerModel: LinearizabilityModel<string> = registerLike('register', false);

/**
 * A register with compare-and-set: `cas` with `[expected, new]` sets `new` when the value is
 * `expected`. A cas that completed ok took effect; one that failed did not happen and is
 * removed from the history before checking.
 */
export const casRegisterModel: LinearizabilityModel<string> = registerLike('cas-register', true);

function unwrapKv(op: Operation): Operation {
  if (op.key !== undefined) return op;
  const pair = (v: unknown): [unknown, unknown] | undefined =>
    Array.isArray(v) && v.length === 2 ? [v[0], v[1]] : undefined;
  const input = pair(op.input);
  const output = op.indeterminate ? undefined : pair(op.output);
  const key = input?.[0] ?? output?.[0];
  if (key === undefined || (!op.indeterminate && op.output != null && !output))
    throw new ValidationError(
      `operation ${op.id} (${op.f} by process ${String(op.process)}) has no key: give events a "key", or a Jepsen [key value] tuple as the value`,
    );
  return {
    ...op,
    key: typeof key === 'string' ? key : JSON.stringify(key),
    input: input?.[1] ?? null,
    output: output?.[1],
  };
}

/**
 * A key-value map, initially empty: get/read, put/write and cas per key. Keys are independent,
 * so a history is checked one key at a time. A key comes from an event's `key`, or from a
 * Jepsen `jepsen.independent` value `[key value]`.
 */
export const kvModel: LinearizabilityModel<string> = {
  name: 'kv',
  init: () => 'nil',
  step: registerStep,
  stateKey: (s) => s,
  partition(operations) {
    const out = new Map<string, Operation[]>();
    for (const raw of operations) {
      registerOp(raw.f, true, 'kv');
      const op = unwrapKv(raw);
      if (op.f === 'cas') casArgs(op);
      if (!constraining(op)) continue;
      const k = op.key as string;
      const list = out.get(k);
      if (list) list.push(op);
      else out.set(k, [op]);
    }
    return out;
  },
  describe: (op) => `${op.key === undefined ? '' : `[${op.key}] `}${describeRegisterOp(op)}`,
};

/** The model names `cdp replication check --model` takes. */
export type ModelName = 'register' | 'cas-register' | 'kv';

export function modelByName(name: ModelName): LinearizabilityModel<string> {
  switch (name) {
    case 'register':
      return registerModel;
    case 'cas-register':
      return casRegisterModel;
    case 'kv':
      return kvModel;
  }
}
