import { CdpError } from '../core/errors.js';

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
