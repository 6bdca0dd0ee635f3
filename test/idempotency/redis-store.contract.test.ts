import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll } from 'vitest';
import { connectRedis, type RedisClient } from '../../src/engines/redis/index.js';
import { RedisIdempotencyStore } from '../../src/idempotency/redis.js';
import { idempotencyStoreContract } from '../../src/testing/index.js';
import { describeServer } from '../support/servers.js';

describeServer('IdempotencyStore contract: Redis', 'CDP_REDIS_URL', (url) => {
  const prefix = `cdp-test:idem:${randomBytes(5).toString('hex')}:`;
  let client: RedisClient;
  let store: RedisIdempotencyStore;
  beforeAll(async () => {
    client = await connectRedis({ url, name: 'cdp-idempotency-test' });
    store = new RedisIdempotencyStore({ client, prefix });
  });
  afterAll(async () => {
    // Only our own keys: never FLUSHALL on a shared server.
    for await (const keys of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 500 }))
      if (keys.length > 0) await client.unlink(keys);
    await client?.close();
  });
  idempotencyStoreContract(() => store);
});
