import { z } from 'zod';
import type { Clock } from '../core/clock.js';
import { systemClock } from '../core/clock.js';
import { CdpError, ValidationError } from '../core/errors.js';
import { newId } from '../core/ids.js';

/**
 * The message envelope: CloudEvents 1.0 (structured JSON mode) with the extension attributes
 * this toolkit relies on. Extension names follow the CloudEvents rule (lower-case letters and
 * digits only):
 * - `correlationid`: the id of the business flow; every event of one flow carries the same one.
 * - `causationid`: the id of the message that caused this one (absent for the first).
 * - `partitionkey`: the ordering key (CloudEvents "partitioning" extension).
 * - `sequence`: 1, 2, 3, ... per ordering key, gapless as written to the outbox.
 * - `prevsequence`: the sequence of the previous message of the same key that was published
 *   (normally `sequence - 1`; larger gaps when the relay parked a poison row in between), so a
 *   consumer can apply a key's messages in order without waiting for a parked one.
 */
export interface MessageEnvelope<T = unknown> {
  specversion: '1.0';
  id: string;
  source: string;
  type: string;
  time: string;
  datacontenttype: 'application/json';
  dataschema?: string | undefined;
  subject?: string | undefined;
  correlationid: string;
  causationid?: string | undefined;
  partitionkey?: string | undefined;
  sequence?: number | undefined;
  prevsequence?: number | undefined;
  data: T;
}

const attr = z.string().min(1);

/** The envelope schema at the edge: attributes strict, `data` checked later per event type. */
const envelopeSchema = z.object({
  specversion: z.literal('1.0'),
  id: attr.max(200),
  source: attr.max(500),
  type: attr.max(200),
  time: z.string().refine((s) => !Number.isNaN(Date.parse(s)), 'must be an RFC 3339 time'),
  datacontenttype: z.literal('application/json'),
  dataschema: z.string().optional(),
  subject: z.string().optional(),
  correlationid: attr.max(200),
  causationid: attr.max(200).optional(),
  partitionkey: attr.max(500).optional(),
  sequence: z.number().int().positive().optional(),
  prevsequence: z.number().int().nonnegative().optional(),
  data: z.unknown(),
});

export interface NewMessageEnvelope<T> {
  type: string;
  source: string;
  data: T;
  id?: string;
  dataschema?: string;
  subject?: string;
  /** Ordering key. */
  key?: string;
  sequence?: number;
  prevsequence?: number;
  /** The message this one reacts to: its id becomes causationid, its correlationid is kept. */
  causedBy?: Pick<MessageEnvelope, 'id' | 'correlationid'>;
  /** A new flow's correlation id; default: the id of this first message. */
  correlationid?: string;
}

/** Build an envelope; ids are UUIDv7 (time-ordered) unless given. */
export function createEnvelope<T>(
  input: NewMessageEnvelope<T>,
  clock: Clock = systemClock,
): MessageEnvelope<T> {
  const id = input.id ?? newId();
  const env: MessageEnvelope<T> = {
    specversion: '1.0',
    id,
    source: input.source,
    type: input.type,
    time: new Date(clock.now()).toISOString(),
    datacontenttype: 'application/json',
    correlationid: input.causedBy?.correlationid ?? input.correlationid ?? id,
    data: input.data,
  };
  if (input.dataschema !== undefined) env.dataschema = input.dataschema;
  if (input.subject !== undefined) env.subject = input.subject;
  if (input.causedBy) env.causationid = input.causedBy.id;
  if (input.key !== undefined) env.partitionkey = input.key;
  if (input.sequence !== undefined) env.sequence = input.sequence;
  if (input.prevsequence !== undefined) env.prevsequence = input.prevsequence;
  return env;
}

export function encodeEnvelope(env: MessageEnvelope): string {
  return JSON.stringify(env);
}

function issuesOf(err: z.ZodError): { path: string; message: string }[] {
  return err.issues.map((i) => ({ path: i.path.join('.'), message: i.message }));
}

/** Parse and validate an envelope from the wire; throws ValidationError (never retried). */
export function decodeEnvelope(body: string | Uint8Array): MessageEnvelope {
  const text = typeof body === 'string' ? body : Buffer.from(body).toString('utf8');
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ValidationError(
      `message body is not JSON (${(err as Error).message}); expected a CloudEvents 1.0 JSON envelope`,
    );
  }
  const parsed = envelopeSchema.safeParse(raw);
  if (!parsed.success) {
    const issues = issuesOf(parsed.error);
    throw new ValidationError(
      `message is not a valid CloudEvents 1.0 envelope: ${issues.map((i) => `${i.path || '(root)'}: ${i.message}`).join('; ')}`,
      issues,
    );
  }
  return parsed.data as MessageEnvelope;
}

/** An event type whose name is not registered, when the policy says to reject it. */
export class UnknownEventTypeError extends CdpError {
  readonly eventType: string;
  constructor(eventType: string, known: readonly string[]) {
    super(
      'MESSAGING_UNKNOWN_EVENT_TYPE',
      `no schema is registered for event type "${eventType}" (known: ${known.join(', ') || 'none'}); register it with EventTypes.define() or set unknownTypes to 'dead-letter' or 'ignore'`,
    );
    this.eventType = eventType;
  }
}

/**
 * Event types and their payload schemas. A consumer validates `data` against the schema of
 * the envelope's type; zod objects ignore unknown keys by default, so a v1 consumer reads an
 * additive v2 payload (new optional fields) unchanged. Breaking changes get a new type name
 * (`course.enrolled.v2`).
 */
export class EventTypes {
  readonly #schemas = new Map<string, z.ZodType>();

  define<S extends z.ZodType>(type: string, schema: S): EventType<z.infer<S>> {
    this.#schemas.set(type, schema);
    return { type, schema: schema as z.ZodType<z.infer<S>> };
  }

  has(type: string): boolean {
    return this.#schemas.has(type);
  }

  get types(): string[] {
    return [...this.#schemas.keys()];
  }

  /** Validate `data`; throws ValidationError or UnknownEventTypeError. */
  parse(env: MessageEnvelope): MessageEnvelope {
    const schema = this.#schemas.get(env.type);
    if (!schema) throw new UnknownEventTypeError(env.type, this.types);
    const parsed = schema.safeParse(env.data);
    if (!parsed.success) {
      const issues = issuesOf(parsed.error);
      throw new ValidationError(
        `payload of ${env.type} (id ${env.id}) fails its schema: ${issues.map((i) => `${i.path || '(root)'}: ${i.message}`).join('; ')}`,
        issues,
      );
    }
    return { ...env, data: parsed.data };
  }
}

export interface EventType<T> {
  type: string;
  schema: z.ZodType<T>;
}
