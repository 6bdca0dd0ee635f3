import { CdpError } from '../core/errors.js';

/** Turns values into text for a tier out of process (Redis), and back. */
export interface Serializer {
  readonly name: string;
  encode(value: unknown): string;
  decode(text: string): unknown;
}

/** A value the serializer cannot encode, or stored text it cannot decode. */
export class SerializationError extends CdpError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('CACHE_SERIALIZE', message, options);
  }
}

/**
 * JSON, the default. It refuses what JSON would silently change or drop instead of caching a
 * different value: BigInt and cycles (JSON.stringify throws), functions and symbols anywhere,
 * undefined at the top. (An undefined property is dropped, as JSON does: it reads back absent.) Dates become ISO strings, as JSON does: use a
 * serializer of your own for richer types.
 */
export const jsonSerializer: Serializer = {
  name: 'json',
  encode(value) {
    let text: string | undefined;
    try {
      text = JSON.stringify(value, refuseLossy);
    } catch (err) {
      throw new SerializationError(
        `cannot encode this value as JSON (${(err as Error).message}); pass a serializer that can, or cache a plain object`,
        { cause: err },
      );
    }
    if (text === undefined) {
      throw new SerializationError(
        `cannot encode a ${typeof value} as JSON; pass a serializer that can, or cache a plain object`,
      );
    }
    return text;
  },
  decode(text) {
    try {
      return JSON.parse(text);
    } catch (err) {
      throw new SerializationError(`stored text is not JSON: ${(err as Error).message}`, {
        cause: err,
      });
    }
  },
};

function refuseLossy(this: unknown, key: string, value: unknown): unknown {
  const t = typeof value;
  if (t === 'function' || t === 'symbol') {
    throw new TypeError(`a ${t} at "${key}" has no JSON form`);
  }
  return value;
}
