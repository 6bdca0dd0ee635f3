import { closeOnSignals, Lifecycle } from '../core/lifecycle.js';
import { createLogger, type Logger } from '../core/logger.js';

/**
 * Close `lifecycle` on SIGINT/SIGTERM; the last log line of the process says it stopped (with
 * the exit code), so a supervisor's log shows a clean shutdown.
 */
export function closeOnSignalsAndLog(lifecycle: Lifecycle, logger: Logger): void {
  closeOnSignals(lifecycle, logger, {
    exit: (code) => {
      logger.info({ code }, 'stopped');
      process.exit(code);
    },
  });
}

/** Keep a server running until SIGINT/SIGTERM, then close it. */
export function runUntilSignal(
  name: string,
  resource: { close(): Promise<void> },
  level: string,
): void {
  const logger = createLogger({ level: level as 'info' });
  const lifecycle = new Lifecycle(logger);
  lifecycle.use(name, resource);
  closeOnSignalsAndLog(lifecycle, logger);
}
