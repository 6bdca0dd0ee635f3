import { type Logger, pino } from 'pino';

/** A logger that keeps every record, so that a test can count the warnings it logged. */
export function capturingLogger(): {
  logger: Logger;
  warnings: () => { level: number; msg: string; err?: string }[];
} {
  const records: { level: number; msg: string; err?: string }[] = [];
  const logger = pino(
    { level: 'debug' },
    { write: (line: string) => void records.push(JSON.parse(line)) },
  );
  return { logger, warnings: () => records.filter((r) => r.level >= 40) };
}
