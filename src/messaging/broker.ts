import type { Logger } from 'pino';
import { CdpError, errorMessage, ValidationError } from '../core/errors.js';
import { backoffDelay } from '../core/retry.js';
import { UnknownEventTypeError } from './envelope.js';

/**
 * The broker port: publish confirmed messages to topics; consume them through durable named
 * groups (competing consumers of one group share the work, every group gets every message);
 * ack, retry later, or dead-letter; dead letters keep the message, its headers and the error.
 *
 * Adapters: MemoryBroker (in-process), NatsBroker (JetStream), RabbitMqBroker (quorum queues,
 * publisher confirms). The same contract suite runs on all three.
 */

/** A message as published. `body` is usually an encoded CloudEvents envelope. */
export interface OutgoingMessage {
  /** Routing topic: dot-separated words of letters, digits, `_` and `-` (e.g. `course.enrolled`). */
  topic: string;
  /** Unique message id: the broker (JetStream) or the consumer drops a repeat of it. */
  id: string;
  /** Ordering key (aggregate id): carried with the message for per-key ordering downstream. */
  key?: string | undefined;
  headers?: Record<string, string> | undefined;
  body: string;
}

export interface PublishReceipt {
  id: string;
  /** The broker recognised the id as already published and did not store it again. */
  duplicate: boolean;
}

export interface Delivery {
  id: string;
  topic: string;
  key: string | undefined;
  headers: Record<string, string>;
  body: string;
  /** 1 on first delivery; counts the handler's failed attempts plus one. */
  attempt: number;
  /** The group's limit: a failure on this attempt dead-letters the message. */
  maxDeliveries: number;
  group: string;
}

/** What a handler may return; returning nothing acknowledges the message. */
export type HandlerAction =
  | { action: 'ack' }
  | { action: 'retry'; delayMs: number | undefined; error: string | undefined }
  | { action: 'defer'; delayMs: number }
  | { action: 'dead-letter'; error: string };

/** Acknowledge: done, never delivered again to this group. */
export const ack = (): HandlerAction => ({ action: 'ack' });
/** Deliver again after a delay (default: the group's backoff); counts as a failed attempt. */
export const retryLater = (delayMs?: number, error?: string): HandlerAction => ({
  action: 'retry',
  delayMs,
  error,
});
/**
 * Deliver again after `delayMs` without counting an attempt: for "not yet" rather than "failed"
 * (e.g. a message that arrived before its predecessor of the same key). On JetStream the
 * server's delivery count still grows; the adapter subtracts the deferrals it made itself.
 */
export const deferDelivery = (delayMs: number): HandlerAction => ({ action: 'defer', delayMs });
/** Send to the dead-letter destination at once (poison, invalid input). */
export const deadLetter = (error: string): HandlerAction => ({ action: 'dead-letter', error });

/** What a handler resolves to: an action, or nothing (acknowledge). */
// biome-ignore lint/suspicious/noConfusingVoidType: a handler that returns nothing acknowledges
export type HandlerResult = HandlerAction | undefined | void;

export type MessageHandler = (delivery: Delivery) => Promise<HandlerResult>;

export interface SubscribeOptions {
  /** Durable group name: consumers with the same group share the messages (competing consumers). */
  group: string;
  topics: readonly string[];
  /** Attempts before dead-lettering (the first included). Default 5. */
  maxDeliveries?: number;
  /** Backoff between failed attempts. Default base 200 ms, max 30 s, equal jitter. */
  backoff?: { baseDelayMs?: number; maxDelayMs?: number };
  /** Messages handled at once by this subscriber. Default 16. */
  concurrency?: number;
}

export interface Subscription {
  readonly group: string;
  /** Stop receiving; waits for in-flight handlers; unfinished messages go back to the group. */
  close(): Promise<void>;
}

/** A message in the dead-letter destination. */
export interface DeadLetter {
  /** The original message id. */
  id: string;
  topic: string;
  group: string;
  key: string | undefined;
  headers: Record<string, string>;
  body: string;
  /** The last error, e.g. the validation error or the handler's exception message. */
  error: string;
  attempts: number;
  /** ISO time it was dead-lettered. */
  deadAt: string;
}

export interface Broker {
  readonly kind: 'memory' | 'nats' | 'rabbitmq';
  /** True when the broker itself drops a repeated message id (JetStream Nats-Msg-Id). */
  readonly dedupOnBroker: boolean;
  /** Resolves when the broker answers (JetStream API, an AMQP channel); throws otherwise. */
  ping(): Promise<void>;
  /** Resolves once the broker has confirmed the message (PubAck / publisher confirm). */
  publish(message: OutgoingMessage): Promise<PublishReceipt>;
  subscribe(options: SubscribeOptions, handler: MessageHandler): Promise<Subscription>;
  /** Dead letters, oldest first. */
  listDeadLetters(options?: { limit?: number; group?: string }): Promise<DeadLetter[]>;
  /**
   * Publish a dead letter's message again to its topic (same message id, so groups that
   * already handled it drop it by id) and remove it from the dead-letter destination.
   * Returns how many dead letters with that id were replayed (0 when none).
   */
  replayDeadLetter(id: string): Promise<number>;
  close(): Promise<void>;
}

export class BrokerError extends CdpError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('MESSAGING_BROKER', message, options);
  }
}

const TOPIC_RE = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;
const GROUP_RE = /^[A-Za-z0-9_-]{1,100}$/;

export function assertTopic(topic: string): void {
  if (!TOPIC_RE.test(topic)) {
    throw new ValidationError(
      `invalid topic ${JSON.stringify(topic)}: use dot-separated words of letters, digits, _ and -`,
    );
  }
}

export function assertGroup(group: string): void {
  if (!GROUP_RE.test(group)) {
    throw new ValidationError(
      `invalid consumer group ${JSON.stringify(group)}: use 1-100 letters, digits, _ and -`,
    );
  }
}

export function assertMessage(m: OutgoingMessage): void {
  assertTopic(m.topic);
  if (typeof m.id !== 'string' || m.id.length === 0 || m.id.length > 200) {
    throw new ValidationError('a message needs an id of 1-200 characters');
  }
  for (const k of Object.keys(m.headers ?? {})) {
    if (k.toLowerCase().startsWith('cdp-') || k.toLowerCase().startsWith('nats-')) {
      throw new ValidationError(`header ${k} is reserved (cdp-* and nats-* are set by the broker)`);
    }
  }
}

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

/** What an adapter must do with a delivery once the handler is done. */
export type Outcome =
  | { kind: 'ack' }
  | { kind: 'retry'; delayMs: number; counts: boolean; error: string | undefined }
  | { kind: 'dead'; error: string };

/**
 * Run a handler on one delivery and decide the outcome. Invalid input (ValidationError) and
 * unknown event types are dead-lettered at once, never retried; other errors are retried with
 * backoff until `maxDeliveries` attempts have failed, then dead-lettered with the last error.
 */
export async function decide(
  settings: GroupSettings,
  delivery: Delivery,
  handler: MessageHandler,
  logger?: Logger,
): Promise<Outcome> {
  let action: HandlerResult;
  try {
    action = await handler(delivery);
  } catch (err) {
    if (err instanceof ValidationError || err instanceof UnknownEventTypeError) {
      return { kind: 'dead', error: `${err.code}: ${err.message}` };
    }
    logger?.warn(
      { id: delivery.id, attempt: delivery.attempt, err: errorMessage(err) },
      'handler failed',
    );
    action = retryLater(undefined, errorMessage(err));
  }
  if (!action || action.action === 'ack') return { kind: 'ack' };
  if (action.action === 'dead-letter') return { kind: 'dead', error: action.error };
  if (action.action === 'defer')
    return { kind: 'retry', delayMs: action.delayMs, counts: false, error: undefined };
  const error = action.error ?? 'handler asked to retry';
  if (delivery.attempt >= settings.maxDeliveries) {
    return {
      kind: 'dead',
      error: `${error} (gave up after ${delivery.attempt} attempt(s), maxDeliveries ${settings.maxDeliveries})`,
    };
  }
  const delayMs =
    action.delayMs ??
    backoffDelay(delivery.attempt, {
      baseDelayMs: settings.baseDelayMs,
      maxDelayMs: settings.maxDelayMs,
      jitter: 'equal',
    });
  return { kind: 'retry', delayMs, counts: true, error };
}

/**
 * A bounded set of recently handled ids, for brokers without server-side dedup: a repeat of a
 * recently acknowledged id is acknowledged without running the handler again. Only a
 * process-local best effort; the SQL inbox is the durable guarantee.
 */
export class RecentIds {
  readonly #set = new Set<string>();
  constructor(readonly capacity = 10_000) {}
  has(id: string): boolean {
    return this.#set.has(id);
  }
  add(id: string): void {
    if (this.#set.has(id)) return;
    this.#set.add(id);
    if (this.#set.size > this.capacity) {
      const first = this.#set.values().next().value as string;
      this.#set.delete(first);
    }
  }
}

/** Header names the adapters set. */
export const H = {
  id: 'cdp-id',
  key: 'cdp-key',
  topic: 'cdp-topic',
  attempt: 'cdp-attempt',
  deferrals: 'cdp-deferrals',
  dlqError: 'cdp-dlq-error',
  dlqGroup: 'cdp-dlq-group',
  dlqAttempts: 'cdp-dlq-attempts',
  dlqAt: 'cdp-dlq-at',
} as const;

/** User headers only (without cdp-* and nats-*). */
export function userHeaders(h: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) {
    const l = k.toLowerCase();
    if (!l.startsWith('cdp-') && !l.startsWith('nats-')) out[k] = v;
  }
  return out;
}
