import { type LevelWithSilent, type Logger, pino } from 'pino';

export type { Logger } from 'pino';

/**
 * A pino logger writing JSON to stderr (stdout stays free for a command's own output, such as
 * `listening on ...`). Create one per process and pass it in; nothing logs through a global.
 */
export function createLogger(options: { level?: LevelWithSilent; name?: string } = {}): Logger {
  return pino(
    { name: options.name ?? 'cdp', level: options.level ?? 'info' },
    pino.destination({ dest: 2, sync: true }),
  );
}

/** A logger that drops everything: the default when a caller passes none. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
