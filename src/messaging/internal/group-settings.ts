import { ValidationError } from '../../core/errors.js';
import type { SubscribeOptions } from '../broker.js';
import { assertGroup, assertTopic } from './message-rules.js';

/** Resolved subscription settings, shared by the adapters. */
export interface GroupSettings {
  group: string;
  topics: readonly string[];
  maxDeliveries: number;
  baseDelayMs: number;
  maxDelayMs: number;
  concurrency: number;
}

export function groupSettings(o: SubscribeOptions): GroupSettings {
  assertGroup(o.group);
  if (o.topics.length === 0) throw new ValidationError('subscribe needs at least one topic');
  for (const t of o.topics) assertTopic(t);
  const maxDeliveries = o.maxDeliveries ?? 5;
  if (!Number.isInteger(maxDeliveries) || maxDeliveries < 1) {
    throw new ValidationError(`maxDeliveries must be a whole number >= 1, got ${maxDeliveries}`);
  }
  return {
    group: o.group,
    topics: [...o.topics],
    maxDeliveries,
    baseDelayMs: o.backoff?.baseDelayMs ?? 200,
    maxDelayMs: o.backoff?.maxDelayMs ?? 30_000,
    concurrency: o.concurrency ?? 16,
  };
}
