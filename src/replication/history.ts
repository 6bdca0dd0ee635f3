/**
 * Recorded histories: the invocation and completion events of clients against a concurrent
 * object, and the operations they pair into.
 */
import { ValidationError } from '../core/errors.js';

/**
 * One line of a history, as Jepsen records it: a process invokes `f` with `value`, then the
 * same process completes it with `ok` (it happened), `fail` (it did not happen) or `info` (it
 * may or may not have happened; the process does not invoke again).
 */
export interface HistoryEvent {
  readonly process: number | string;
  readonly type: 'invoke' | 'ok' | 'fail' | 'info';
  readonly f: string;
  readonly value?: unknown;
  /** The key of a key-value operation (else a kv value is a Jepsen `[key value]` tuple). */
  readonly key?: string;
  /** A timestamp; without one, the event's position in the history orders it. */
  readonly time?: number;
}

/** An invocation paired with its completion. */
export interface Operation {
  /** The position of the invocation among the history's operations, from 0. */
  readonly id: number;
  readonly process: number | string;
  readonly f: string;
  readonly key?: string;
  /** The invocation's value (a write's value, a cas's `[expected, new]`). */
  readonly input: unknown;
  /** The completion's value (a read's result); undefined when the outcome is unknown. */
  readonly output: unknown;
  readonly call: number;
  /** When it completed; Infinity when the outcome is unknown (`info`, or no completion). */
  readonly ret: number;
  /** True when it may or may not have taken effect. */
  readonly indeterminate: boolean;
}

/**
 * The operations of a history: each invocation paired with the next completion of its process.
 * Failed operations did not happen and are left out; `info` completions and invocations never
 * completed become indeterminate operations that return at +infinity (as in Knossos).
 * Processes that are not clients (Jepsen's `:nemesis`) are skipped.
 */
export function historyOperations(events: readonly HistoryEvent[]): Operation[] {
  const open = new Map<number | string, { event: HistoryEvent; call: number; slot: number }>();
  const slots: (Operation | null)[] = [];
  events.forEach((e, i) => {
    if (e.process === 'nemesis') return;
    const time = e.time ?? i;
    if (e.type === 'invoke') {
      if (open.has(e.process))
        throw new ValidationError(
          `history event ${i}: process ${String(e.process)} invokes ${e.f} while its previous operation is still open; a process runs one operation at a time`,
        );
      open.set(e.process, { event: e, call: time, slot: slots.length });
      slots.push(null);
      return;
    }
    const inv = open.get(e.process);
    if (!inv)
      throw new ValidationError(
        `history event ${i}: process ${String(e.process)} completes ${e.f} (${e.type}) without an invocation; check that the history is complete`,
      );
    open.delete(e.process);
    if (e.type === 'fail') return;
    const indeterminate = e.type === 'info';
    slots[inv.slot] = {
      id: 0,
      process: e.process,
      f: inv.event.f,
      ...(inv.event.key !== undefined ? { key: inv.event.key } : {}),
      input: inv.event.value,
      output: indeterminate ? undefined : e.value,
      call: inv.call,
      ret: indeterminate ? Number.POSITIVE_INFINITY : time,
      indeterminate,
    };
  });
  for (const inv of open.values()) {
    slots[inv.slot] = {
      id: 0,
      process: inv.event.process,
      f: inv.event.f,
      ...(inv.event.key !== undefined ? { key: inv.event.key } : {}),
      input: inv.event.value,
      output: undefined,
      call: inv.call,
      ret: Number.POSITIVE_INFINITY,
      indeterminate: true,
    };
  }
  const ops: Operation[] = [];
  for (const s of slots) if (s) ops.push({ ...s, id: ops.length });
  return ops;
}
