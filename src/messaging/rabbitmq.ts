/**
 * `cloud-data-patterns/messaging/rabbitmq`: the broker on RabbitMQ. It needs the optional peer
 * dependency `rabbitmq-client`; the `messaging` entry does not load it (its `openBroker` imports
 * this file only when CDP_AMQP_URL is set).
 */
export type { RabbitMqBrokerOptions } from './rabbitmq-broker.js';
export { openRabbitMqBroker, RabbitMqBroker } from './rabbitmq-broker.js';
