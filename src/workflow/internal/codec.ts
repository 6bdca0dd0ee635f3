import { NotSerializableError } from '../errors.js';

/**
 * Values cross the history as JSON text. `undefined` is stored as SQL NULL; anything JSON
 * cannot carry faithfully (BigInt, cycles, functions at the top) is refused before anything is
 * written. Callers get back the decoded text, so a first run and a replay see the same value.
 */
export function encode(value: unknown, what: string): string | null {
  if (value === undefined) return null;
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (err) {
    throw new NotSerializableError(what, { cause: err });
  }
  if (text === undefined) {
    throw new NotSerializableError(what, { cause: new TypeError(`a ${typeof value} is not JSON`) });
  }
  return text;
}

export function decode<T>(text: string | null): T {
  return (text === null ? undefined : JSON.parse(text)) as T;
}
