/**
 * `cloud-data-patterns/messaging/nats`: the broker on NATS JetStream. It needs the optional peer
 * dependencies `@nats-io/transport-node` and `@nats-io/jetstream`; the `messaging` entry does
 * not load them (its `openBroker` imports this file only when CDP_NATS_URL is set).
 */
export type { NatsBrokerOptions } from './nats-broker.js';
export { NatsBroker, openNatsBroker } from './nats-broker.js';
