/**
 * One base error with a stable string `code`; a subclass per condition a caller can act on.
 * Messages say what happened and what to do.
 */
export class CdpError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** Bad configuration: names the variable and the expected form. */
export class ConfigError extends CdpError {
  readonly variable: string | undefined;
  constructor(message: string, variable?: string, options?: { cause?: unknown }) {
    super('CONFIG_INVALID', message, options);
    this.variable = variable;
  }
}

/** Input that fails validation at a boundary (HTTP, CLI, message, config). */
export class ValidationError extends CdpError {
  readonly issues: readonly { path: string; message: string }[];
  constructor(message: string, issues: readonly { path: string; message: string }[] = []) {
    super('VALIDATION_FAILED', message);
    this.issues = issues;
  }
}

/** An engine could not be reached or answered with a connection-level failure. */
export class EngineUnavailableError extends CdpError {
  readonly engine: string;
  readonly variable: string | undefined;
  constructor(engine: string, message: string, variable?: string, options?: { cause?: unknown }) {
    super('ENGINE_UNAVAILABLE', message, options);
    this.engine = engine;
    this.variable = variable;
  }
}

/** Optimistic concurrency failure: the caller may reload and retry. */
export class ConcurrencyError extends CdpError {
  readonly expected: unknown;
  readonly actual: unknown;
  constructor(message: string, expected: unknown, actual: unknown) {
    super('CONCURRENCY_CONFLICT', message);
    this.expected = expected;
    this.actual = actual;
  }
}

/** An operation ran past its deadline. */
export class TimeoutError extends CdpError {
  readonly timeoutMs: number;
  constructor(message: string, timeoutMs: number, options?: { cause?: unknown }) {
    super('TIMEOUT', message, options);
    this.timeoutMs = timeoutMs;
  }
}

/** Something was used after `close()`. */
export class ClosedError extends CdpError {
  constructor(what: string) {
    super('CLOSED', `${what} is closed; create a new one or stop using it after close()`);
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
