import { ValidationError } from '../../core/errors.js';
import type { AppendOptions, EventMetadata, ExpectedVersion, NewEvent } from '../event-store.js';

// What the event store adapters share: validation before any transaction, and expected-version
// helpers. Not part of the public API.

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// No whitespace (which also excludes the control characters PostgreSQL text refuses).
const STREAM_RE = /^\S{1,200}$/;

/**
 * What keeps `value` from surviving JSON unchanged, or undefined. The path to the offending
 * value is built only when there is one (`at` collects its steps, innermost first), so the
 * common case allocates only `inside`, the objects the walk is in (to find cycles).
 */
function jsonProblem(value: unknown, inside: object[], at: string[]): string | undefined {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return undefined;
    case 'number':
      return Number.isFinite(value) ? undefined : `is ${value}, which JSON cannot hold`;
    case 'object': {
      if (value === null) return undefined;
      if (inside.includes(value)) return 'refers back to itself (a cycle)';
      if (Array.isArray(value)) {
        inside.push(value);
        for (let i = 0; i < value.length; i++) {
          const p = jsonProblem(value[i], inside, at);
          if (p) {
            at.push(`[${i}]`);
            return p;
          }
        }
        inside.pop();
        return undefined;
      }
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) {
        const name = (value as object).constructor?.name ?? 'object';
        return `is a ${name}, not a plain object (convert it, e.g. a Date to an ISO string)`;
      }
      inside.push(value);
      const keys = Object.keys(value);
      for (let i = 0; i < keys.length; i++) {
        const k = keys[i]!;
        const p = jsonProblem((value as Record<string, unknown>)[k], inside, at);
        if (p) {
          at.push(`.${k}`);
          return p;
        }
      }
      inside.pop();
      return undefined;
    }
    default:
      return `is a ${typeof value}, which JSON cannot hold`;
  }
}

/** Throws ValidationError when `value` would not survive JSON unchanged. */
export function assertJson(value: unknown, path: string): void {
  checkJson(value, () => path);
}

/** `assertJson` with the path made only for the message. */
function checkJson(value: unknown, path: () => string): void {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return;
  const at: string[] = [];
  const problem = jsonProblem(value, [], at);
  if (problem) {
    const where = path() + at.reverse().join('');
    const message = `${where} ${problem}`;
    throw new ValidationError(`event data is not JSON-serializable: ${message}`, [
      { path: where, message },
    ]);
  }
}

export function assertStreamId(streamId: string): void {
  if (typeof streamId !== 'string' || !STREAM_RE.test(streamId)) {
    throw new ValidationError(
      `invalid stream id ${JSON.stringify(streamId)}: use 1 to 200 characters without spaces`,
      [{ path: 'streamId', message: 'invalid' }],
    );
  }
}

export function normalizeExpected(expected: ExpectedVersion | undefined): ExpectedVersion {
  const e = expected ?? 'any';
  if (e === 'any' || e === 'no_stream' || e === 'stream_exists') return e;
  if (typeof e === 'number' && Number.isSafeInteger(e) && e >= 0) return e === 0 ? 'no_stream' : e;
  throw new ValidationError(
    `invalid expected version ${JSON.stringify(e)}: use 'any', 'no_stream', 'stream_exists' or a whole number >= 0`,
    [{ path: 'expected', message: 'invalid' }],
  );
}

/** Describes a version for messages: 0 is "no stream". */
export function describeVersion(v: ExpectedVersion): string {
  return v === 0 || v === 'no_stream' ? 'no stream' : String(v);
}

export interface PreparedEvent {
  id: string;
  type: string;
  data: unknown;
  metadata: EventMetadata;
  schemaVersion: number;
}

/** Validate and complete an append's events; throws before anything touches the engine. */
export function prepareEvents(
  streamId: string,
  events: readonly NewEvent[],
  options: AppendOptions | undefined,
  newId: () => string,
  currentVersion: (type: string) => number | undefined,
): PreparedEvent[] {
  assertStreamId(streamId);
  if (!Array.isArray(events) || events.length === 0) {
    throw new ValidationError('append needs at least one event', [
      { path: 'events', message: 'empty' },
    ]);
  }
  if (events.length > 10_000) {
    throw new ValidationError(
      `append of ${events.length} events: split it into appends of at most 10,000`,
    );
  }
  // Ids made here are UUIDs, lower case and unique; only given ones need the checks.
  const ids = events.length > 1 ? new Set<string>() : undefined;
  const prepared: PreparedEvent[] = new Array(events.length);
  for (let i = 0; i < events.length; i++) {
    const e = events[i];
    if (!e || typeof e.type !== 'string' || e.type.length === 0 || e.type.length > 200) {
      throw new ValidationError(
        `events[${i}].type must be a non-empty string of at most 200 characters`,
        [{ path: `events[${i}].type`, message: 'invalid' }],
      );
    }
    checkJson(e.data, () => `events[${i}].data`);
    let metadata: EventMetadata = {};
    if (options?.metadata !== undefined || e.metadata !== undefined) {
      metadata = { ...options?.metadata, ...e.metadata };
      checkJson(metadata, () => `events[${i}].metadata`);
    }
    let id: string;
    if (e.id == null) {
      id = newId();
    } else {
      if (typeof e.id !== 'string' || !UUID_RE.test(e.id)) {
        throw new ValidationError(`events[${i}].id ${JSON.stringify(e.id)} is not a UUID`, [
          { path: `events[${i}].id`, message: 'not a UUID' },
        ]);
      }
      id = e.id.toLowerCase();
    }
    if (ids) {
      if (ids.has(id))
        throw new ValidationError(`events[${i}].id ${id} appears twice in one append`);
      ids.add(id);
    }
    const schemaVersion = e.schemaVersion ?? currentVersion(e.type) ?? 1;
    if (!Number.isInteger(schemaVersion) || schemaVersion < 1) {
      throw new ValidationError(`events[${i}].schemaVersion must be a whole number >= 1`);
    }
    prepared[i] = { id, type: e.type, data: e.data, metadata, schemaVersion };
  }
  return prepared;
}

export function assertReadLimit(limit: number | undefined, what: string): void {
  if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 1)) {
    throw new ValidationError(`${what}: limit must be a whole number >= 1, got ${limit}`);
  }
}
