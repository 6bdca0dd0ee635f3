export type { AmqpConnection, AmqpConnectOptions } from './amqp-connection.js';
export { connectAmqp } from './amqp-connection.js';
