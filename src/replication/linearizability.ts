/**
 * The linearizability checker: is there a total order of a history's operations that respects
 * real time (an operation that returned before another was invoked comes first) and is a legal
 * sequential run of the model? Partitions of the history (keys of a map) are checked
 * independently; the first one with no linearization decides.
 */
import { type Clock, systemClock } from '../core/clock.js';
import { ValidationError } from '../core/errors.js';
import { type HistoryEvent, historyOperations, type Operation } from './history.js';
import { searchPartition } from './internal/search.js';
import type { LinearizabilityModel } from './models.js';

export type LinearizabilityVerdict = 'linearizable' | 'not-linearizable' | 'unknown';

export interface LinearizabilityOptions {
  /** Give up after this many milliseconds with the verdict 'unknown'. Default: no limit. */
  readonly timeoutMs?: number;
  readonly clock?: Clock;
}

/**
 * Where no linearization exists. `excerpt` is the shortest prefix of the partition with none:
 * every operation invoked before `unplaced` returned. Its prefix without `unplaced`'s return
 * has a linearization (the longest one the search reached is `linearized`, ending in state
 * `stateBefore`), but no order of the operations then in flight (`pending`) explains
 * `unplaced`.
 */
export interface LinearizabilityViolation {
  /** The partition: the key of a map, '' for a single register. */
  readonly partition: string;
  readonly unplaced: Operation;
  readonly linearized: readonly Operation[];
  readonly stateBefore: string;
  readonly pending: readonly Operation[];
  readonly excerpt: readonly Operation[];
}

export interface LinearizabilityResult {
  readonly verdict: LinearizabilityVerdict;
  readonly model: string;
  /** Operations checked (failed operations and reads of unknown outcome are not counted). */
  readonly operations: number;
  readonly partitions: number;
  readonly elapsedMs: number;
  readonly violation?: LinearizabilityViolation;
}

/** Check operations (see historyOperations) against a model. */
export function checkOperations<S>(
  operations: readonly Operation[],
  model: LinearizabilityModel<S>,
  options: LinearizabilityOptions = {},
): LinearizabilityResult {
  const clock = options.clock ?? systemClock;
  const start = clock.now();
  const timeoutMs = options.timeoutMs;
  if (timeoutMs !== undefined && !(timeoutMs > 0))
    throw new ValidationError(
      `timeoutMs must be a positive number of milliseconds; got ${timeoutMs}`,
    );
  const expired = timeoutMs === undefined ? () => false : () => clock.now() - start >= timeoutMs;
  const partitions = model.partition?.(operations) ?? new Map([['', operations]]);
  let counted = 0;
  for (const ops of partitions.values()) counted += ops.length;
  const result = (
    verdict: LinearizabilityVerdict,
    violation?: LinearizabilityViolation,
  ): LinearizabilityResult => ({
    verdict,
    model: model.name,
    operations: counted,
    partitions: partitions.size,
    elapsedMs: clock.now() - start,
    ...(violation ? { violation } : {}),
  });
  for (const [partition, ops] of partitions) {
    const outcome = searchPartition(ops, model, expired);
    if (outcome.kind === 'timed-out') return result('unknown');
    if (outcome.kind === 'linearizable') continue;
    const { unplaced, linearized, stateBefore } = outcome;
    const placed = new Set(linearized);
    const excerpt = ops.filter((op) => op.call < unplaced.ret || op === unplaced);
    const pending = excerpt.filter((op) => !placed.has(op) && op !== unplaced);
    return result('not-linearizable', {
      partition,
      unplaced,
      linearized,
      stateBefore,
      pending,
      excerpt,
    });
  }
  return result('linearizable');
}

/** Check a recorded history (see historyOperations for how events pair up) against a model. */
export function checkLinearizability<S>(
  history: readonly HistoryEvent[],
  model: LinearizabilityModel<S>,
  options: LinearizabilityOptions = {},
): LinearizabilityResult {
  return checkOperations(historyOperations(history), model, options);
}
