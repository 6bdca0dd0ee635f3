/**
 * `cloud-data-patterns/messaging`: the broker port and the in-process broker, the transactional
 * outbox and its relay, the idempotent consumer (inbox), choreography, dead letters.
 * The brokers on engine clients have their own entries, `…/messaging/nats` and
 * `…/messaging/rabbitmq`; `openBroker` loads the one the configuration names, on demand.
 */
export type {
  Broker,
  DeadLetter,
  Delivery,
  HandlerAction,
  HandlerResult,
  MessageHandler,
  OutgoingMessage,
  PublishReceipt,
  SubscribeOptions,
  Subscription,
} from './broker.js';
export { ack, BrokerError, deadLetter, deferDelivery, retryLater } from './broker.js';
export type { ChoreographyServiceOptions, Reaction, TraceStep } from './choreography.js';
export { ChoreographyService, purgeMessageLog, traceFlow } from './choreography.js';
export type { DeadLetterView } from './dead-letters.js';
export { DeadLetterNotFoundError, dlqList, dlqReplay } from './dead-letters.js';
export type { DocumentEvent, DocumentOutboxOptions } from './document-outbox.js';
export { DocumentOutboxRelay, DocumentStore } from './document-outbox.js';
export type { EventType, MessageEnvelope, NewMessageEnvelope } from './envelope.js';
export {
  createEnvelope,
  decodeEnvelope,
  EventTypes,
  encodeEnvelope,
  UnknownEventTypeError,
} from './envelope.js';
export type { EventHandlerOptions } from './event-handler.js';
export { eventHandler, publishEnvelope } from './event-handler.js';
export type { MemoryBrokerOptions } from './memory-broker.js';
export { MemoryBroker } from './memory-broker.js';
export type { OpenBrokerOptions } from './open-broker.js';
export { openBroker } from './open-broker.js';
export type { InboxOptions, InboxResult } from './sql-inbox.js';
export { inboxHas, SqlInbox } from './sql-inbox.js';
export { messagingMigrations } from './sql-migrations.js';
export type { OutboxMessage, OutboxOptions, OutboxStats, ParkedRow } from './sql-outbox.js';
export { listParked, Outbox, outboxStats } from './sql-outbox.js';
export type { OutboxRelayOptions } from './sql-outbox-relay.js';
export { OutboxRelay } from './sql-outbox-relay.js';
