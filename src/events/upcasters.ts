import { createHash } from 'node:crypto';
import { ValidationError } from '../core/errors.js';
import { type RecordedEvent, UnknownEventError } from './event-store.js';

/**
 * Upcasters turn events stored under an old schema version into the current shape on read, so
 * that stored events never change and domain code sees one shape per type.
 *
 * Each type declares its current schema version and one step per older version:
 * `steps[v]` turns version v into version v + 1. Reading an event of version v applies
 * steps[v], steps[v + 1], ... up to the current version.
 */
export interface EventTypeDefinition {
  type: string;
  /** The version new events of this type are written with. Default 1. */
  currentVersion?: number;
  /** steps[v]: data of version v -> data of version v + 1. */
  steps?: Record<number, (data: never) => unknown>;
}

export interface UpcastResult {
  data: unknown;
  schemaVersion: number;
}

export class Upcasters {
  readonly #defs = new Map<string, Required<EventTypeDefinition>>();
  /**
   * Identifies the upcasting code: a hash of every type, current version and step source. A
   * snapshot keyed by it is ignored once the upcasters change.
   */
  readonly fingerprint: string;

  constructor(definitions: readonly EventTypeDefinition[]) {
    const hash = createHash('sha256');
    for (const d of [...definitions].sort((a, b) => a.type.localeCompare(b.type))) {
      if (this.#defs.has(d.type))
        throw new ValidationError(`event type "${d.type}" is defined twice`);
      const current = d.currentVersion ?? 1;
      if (!Number.isInteger(current) || current < 1) {
        throw new ValidationError(
          `event type "${d.type}": currentVersion must be a whole number >= 1`,
        );
      }
      const steps = d.steps ?? {};
      this.#defs.set(d.type, { type: d.type, currentVersion: current, steps });
      hash.update(`${d.type}@${current};`);
      for (const [v, f] of Object.entries(steps)) hash.update(`${v}:${String(f)};`);
    }
    this.fingerprint = hash.digest('hex').slice(0, 12);
  }

  currentVersion(type: string): number | undefined {
    return this.#defs.get(type)?.currentVersion;
  }

  /** The upcast data, or a string saying why it cannot be read. */
  upcast(type: string, schemaVersion: number, data: unknown): UpcastResult | string {
    const def = this.#defs.get(type);
    if (!def) return `no event type "${type}" is registered`;
    if (schemaVersion > def.currentVersion) {
      return `this code knows "${type}" only up to schema version ${def.currentVersion} (the event was written by newer code)`;
    }
    let v = schemaVersion;
    let d = data;
    while (v < def.currentVersion) {
      const step = def.steps[v] as ((x: unknown) => unknown) | undefined;
      if (!step) return `no upcaster turns "${type}" version ${v} into version ${v + 1}`;
      d = step(d);
      v++;
    }
    return { data: d, schemaVersion: v };
  }
}

/**
 * Upcast events read in order. An event that cannot be read throws UnknownEventError carrying
 * the events before it, so that the stream stays readable up to there.
 */
export function upcastAll(
  events: RecordedEvent[],
  upcasters: Upcasters | undefined,
): RecordedEvent[] {
  if (!upcasters) return events;
  const out: RecordedEvent[] = [];
  for (const e of events) {
    const r = upcasters.upcast(e.type, e.storedSchemaVersion, e.data);
    if (typeof r === 'string') {
      throw new UnknownEventError(
        {
          type: e.type,
          schemaVersion: e.storedSchemaVersion,
          streamId: e.streamId,
          version: e.version,
          position: e.position,
        },
        r,
        out,
      );
    }
    out.push(
      r.schemaVersion === e.storedSchemaVersion
        ? e
        : { ...e, data: r.data, schemaVersion: r.schemaVersion },
    );
  }
  return out;
}
