export type { RedisClient, RedisConnectOptions } from './redis-connection.js';
export { connectRedis } from './redis-connection.js';
