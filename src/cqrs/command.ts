import type { z } from 'zod';
import { ValidationError } from '../core/errors.js';

/**
 * A command names a task the user wants done ("OpenAccount", "DepositMoney"), not a field
 * to change ("SetStatus"): names starting with Set/Update/Change are refused at definition so
 * that intent stays in the model. Input is validated with zod at the boundary; a malformed
 * command is a ValidationError and nothing is appended.
 */
export interface CommandDefinition<N extends string, S extends z.ZodType> {
  name: N;
  schema: S;
  /** Validate unknown input into a typed command, or throw ValidationError listing the issues. */
  parse(input: unknown): { type: N } & z.output<S>;
}

const CRUD = /^(Set|Update|Change|Modify|Edit)[A-Z]/;

export function defineCommand<N extends string, S extends z.ZodType>(
  name: N,
  schema: S,
): CommandDefinition<N, S> {
  if (!/^[A-Z][A-Za-z0-9]+$/.test(name)) {
    throw new ValidationError(
      `command name ${JSON.stringify(name)}: use a PascalCase verb phrase like "OpenAccount"`,
    );
  }
  if (CRUD.test(name)) {
    throw new ValidationError(
      `command name "${name}" describes a field change, not a task: name what the user wants done (e.g. "RenameAccount" rather than "UpdateAccount")`,
    );
  }
  return {
    name,
    schema,
    parse(input: unknown) {
      const r = schema.safeParse(input);
      if (!r.success) {
        const issues = r.error.issues.map((i) => ({
          path: i.path.join('.') || '(root)',
          message: i.message,
        }));
        throw new ValidationError(
          `invalid ${name} command: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
          issues,
        );
      }
      return { ...(r.data as object), type: name } as { type: N } & z.output<S>;
    },
  };
}
