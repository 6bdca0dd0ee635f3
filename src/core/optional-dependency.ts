import { CdpError } from './errors.js';

/**
 * An engine client that is an optional peer dependency is not installed. The message names the
 * package and the command that installs it.
 */
export class MissingDependencyError extends CdpError {
  readonly packageName: string;
  constructor(packageName: string, purpose: string, options?: { cause?: unknown }) {
    super(
      'MISSING_DEPENDENCY',
      `${purpose} needs the package "${packageName}", which is not installed: run \`npm install ${packageName}\``,
      options,
    );
    this.packageName = packageName;
  }
}

function isModuleNotFound(err: unknown, packageName: string): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  if (!e || (e.code !== 'ERR_MODULE_NOT_FOUND' && e.code !== 'MODULE_NOT_FOUND')) return false;
  return typeof e.message === 'string' && e.message.includes(`'${packageName}'`);
}

/**
 * Import an optional peer dependency (an engine client such as `redis` or `pg`). A missing
 * package becomes a `MissingDependencyError` that says what to install; any other failure while
 * loading it is rethrown as is.
 *
 * @param packageName the package to import, e.g. `'redis'` or `'@nats-io/transport-node'`
 * @param purpose what needs it, for the message, e.g. `'the Redis cache tier'`
 * @param load the import itself, written at the call site (`() => import('redis')`) so that
 *   bundlers and TypeScript see a literal specifier and its types
 */
export async function importOptional<T>(
  packageName: string,
  purpose: string,
  load: () => Promise<T>,
): Promise<T> {
  try {
    return await load();
  } catch (err) {
    if (isModuleNotFound(err, packageName))
      throw new MissingDependencyError(packageName, purpose, { cause: err });
    throw err;
  }
}
