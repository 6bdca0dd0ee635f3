import { CdpError } from '../core/errors.js';

/**
 * Domain code as plain functions (Emmett's shape): `decide` turns a command and the current
 * state into new events (or throws a domain error), `evolve` folds one event into the state,
 * `initialState` is the state of a stream with no events. No I/O, no clock: what the command
 * needs (ids, time) is in the command.
 */
export interface DomainEvent<T extends string = string, D = unknown> {
  type: T;
  data: D;
}

export interface Decider<C, E extends DomainEvent, S> {
  /** Names the aggregate in snapshot keys. */
  name: string;
  /**
   * Bump when `evolve` or the state's shape changes: snapshots taken by older code are then
   * ignored and the state is rebuilt from events.
   */
  version: number;
  initialState: () => S;
  evolve: (state: S, event: E) => S;
  decide: (command: C, state: S) => E[];
}

/**
 * A rule of the domain refused the command (not a technical failure): tell the user. `code`
 * names the rule (`ALREADY_REVIEWED`, `INSUFFICIENT_FUNDS`, ...) so a caller can act on it.
 */
export class DomainError extends CdpError {
  constructor(message: string, code = 'DOMAIN_RULE_REFUSED') {
    super(code, message);
  }
}

export function fold<E extends DomainEvent, S>(
  decider: Pick<Decider<never, E, S>, 'evolve'>,
  state: S,
  events: readonly E[],
): S {
  let s = state;
  for (const e of events) s = decider.evolve(s, e);
  return s;
}

/**
 * Given/when/then for deciders (not named `then`, which would make the object a thenable): `given(events).when(command).thenEvents(events)` or
 * `.thenThrows(ErrorClass, /message/)`. Framework-free: it throws an Error describing the
 * difference, so it works in any test runner.
 */
export function deciderSpec<C, E extends DomainEvent, S>(decider: Decider<C, E, S>) {
  return {
    given(events: readonly E[] = []) {
      return {
        when(command: C) {
          const run = (): { events?: E[]; error?: unknown } => {
            try {
              const state = fold(decider, decider.initialState(), events);
              return { events: decider.decide(command, state) };
            } catch (error) {
              return { error };
            }
          };
          return {
            thenEvents(expected: readonly E[]): void {
              const r = run();
              if (r.error) throw new Error(`expected events, but decide threw: ${String(r.error)}`);
              const a = JSON.stringify(r.events);
              const b = JSON.stringify(expected);
              if (a !== b) throw new Error(`expected events\n  ${b}\nbut decide returned\n  ${a}`);
            },
            thenThrows(
              errorClass: abstract new (...args: never[]) => Error,
              message?: RegExp,
            ): void {
              const r = run();
              if (!r.error)
                throw new Error(
                  `expected ${errorClass.name}, but decide returned ${JSON.stringify(r.events)}`,
                );
              if (!(r.error instanceof errorClass))
                throw new Error(`expected ${errorClass.name}, got ${String(r.error)}`);
              if (message && !message.test(r.error.message)) {
                throw new Error(`expected an error matching ${message}, got "${r.error.message}"`);
              }
            },
          };
        },
      };
    },
  };
}
