import type { Logger } from 'pino';
import { errorMessage } from './errors.js';

/** Anything that holds a connection, timer or worker. */
export interface Closeable {
  close(): Promise<void> | void;
}

/**
 * Resources registered in order of opening and closed in reverse, each once, errors collected
 * so that one failing close does not leave the others open.
 */
export class Lifecycle implements Closeable {
  readonly #resources: { name: string; resource: Closeable }[] = [];
  #closing: Promise<void> | undefined;

  constructor(private readonly logger?: Logger) {}

  /** Register a resource; returns it, so `const db = lifecycle.use('sql', await open())`. */
  use<T extends Closeable>(name: string, resource: T): T {
    if (this.#closing) {
      // Opened while shutting down: close it at once rather than leak it.
      void Promise.resolve(resource.close()).catch(() => {});
      throw new Error(`cannot register ${name}: shutdown has begun`);
    }
    this.#resources.push({ name, resource });
    return resource;
  }

  /** Register a plain function to run at close. */
  defer(name: string, fn: () => Promise<void> | void): void {
    this.use(name, { close: fn });
  }

  get closing(): boolean {
    return this.#closing !== undefined;
  }

  close(): Promise<void> {
    this.#closing ??= this.#closeAll();
    return this.#closing;
  }

  async #closeAll(): Promise<void> {
    const errors: unknown[] = [];
    while (this.#resources.length > 0) {
      const { name, resource } = this.#resources.pop()!;
      try {
        await resource.close();
        this.logger?.debug({ resource: name }, 'closed');
      } catch (err) {
        this.logger?.error({ resource: name, err: errorMessage(err) }, 'close failed');
        errors.push(err);
      }
    }
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1)
      throw new AggregateError(errors, `${errors.length} resources failed to close`);
  }
}

/**
 * Close `lifecycle` on SIGINT or SIGTERM, then exit (0 if every close succeeded). A second
 * SIGINT while closing (Ctrl-C twice) exits at once; a repeated SIGTERM is ignored, because
 * process managers often signal a whole group and a forced exit could lose data.
 */
export function closeOnSignals(
  lifecycle: Lifecycle,
  logger: Logger,
  options: { exit?: (code: number) => void; timeoutMs?: number } = {},
): () => void {
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const timeoutMs = options.timeoutMs ?? 15_000;
  const handler = (signal: NodeJS.Signals) => {
    if (lifecycle.closing) {
      if (signal === 'SIGINT') {
        logger.warn({ signal }, 'second interrupt while shutting down: exiting now');
        exit(130);
      }
      return;
    }
    logger.info({ signal }, 'shutting down');
    const timer = setTimeout(() => {
      logger.error({ timeoutMs }, 'shutdown took too long: exiting');
      exit(1);
    }, timeoutMs);
    timer.unref();
    lifecycle.close().then(
      () => {
        clearTimeout(timer);
        exit(0);
      },
      (err) => {
        clearTimeout(timer);
        logger.error({ err: errorMessage(err) }, 'shutdown finished with errors');
        exit(1);
      },
    );
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}
