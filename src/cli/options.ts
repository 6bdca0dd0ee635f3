/**
 * Option parsers and the error a command line raises for bad usage. Loaded on every run of
 * `cdp` (including `--help`), so it imports nothing but commander and the error classes.
 */
import { InvalidArgumentError } from 'commander';
import { CdpError, ConfigError, errorMessage } from '../core/errors.js';

/** A command used wrongly (a folder that does not exist, a store with nothing in it): exit 2. */
export class UsageError extends CdpError {
  constructor(message: string) {
    super('USAGE', message);
  }
}

/** Print a clear one-line error and exit: 2 for configuration and usage, 1 otherwise. */
export function fail(err: unknown): never {
  const code = err instanceof CdpError ? `${err.code}: ` : '';
  process.stderr.write(`error: ${code}${errorMessage(err)}\n`);
  process.exit(err instanceof ConfigError || err instanceof UsageError ? 2 : 1);
}

export function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a whole number >= 1');
  return n;
}

export function port(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new InvalidArgumentError('must be a port number from 0 to 65535 (0 picks a free one)');
  return n;
}

/**
 * An http(s) base URL. Commander names the option in its message:
 * `option '--platform <url>' argument 'x' is invalid. expected an http:// or https:// URL...`.
 */
export function httpUrl(example: string): (v: string) => string {
  return (v) => {
    const expected = `expected an http:// or https:// URL such as ${example}`;
    if (!URL.canParse(v)) throw new InvalidArgumentError(`${expected}`);
    const u = new URL(v);
    if (u.protocol !== 'http:' && u.protocol !== 'https:')
      throw new InvalidArgumentError(`${expected} (got the scheme ${u.protocol})`);
    let base = u.href;
    while (base.endsWith('/')) base = base.slice(0, -1);
    return base;
  };
}
