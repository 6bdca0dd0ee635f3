export type { NatsConnection, NatsConnectOptions } from './nats-connection.js';
export { connectNats } from './nats-connection.js';
