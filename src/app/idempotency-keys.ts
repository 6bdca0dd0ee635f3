import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Clock } from '../core/clock.js';
import type { Config } from '../core/config.js';
import type { Lifecycle } from '../core/lifecycle.js';
import type { SqlClient } from '../engines/sql/sql-client.js';
import { fastifyIdempotency } from '../idempotency/fastify.js';
import { Idempotency, type IdempotencyStore, SqlIdempotencyStore } from '../idempotency/index.js';

/**
 * Idempotency keys on every mutating route of the platform (`Idempotency-Key` header), kept in
 * Redis when CDP_REDIS_URL is set (the client loaded only then), else in the platform's SQL
 * database. Keys are scoped by API key (the plugin's default: a hash of the Authorization
 * header), method and route. A key's lease outlasts the HTTP request timeout, so a running
 * request never loses its key to a retry; a duplicate waits up to 10 s for the first.
 */
export async function installIdempotencyKeys(ctx: {
  http: FastifyInstance;
  config: Config;
  sql: SqlClient;
  clock: Clock;
  logger: Logger;
  lifecycle: Lifecycle;
  registry: Registry;
}): Promise<{ engine: 'redis' | 'sql' }> {
  // The platform's effects commit to this same database (see deferBeginFlush).
  let store: IdempotencyStore = new SqlIdempotencyStore({ sql: ctx.sql, deferBeginFlush: true });
  let engine: 'redis' | 'sql' = 'sql';
  const url = ctx.config.redisUrl;
  if (url) {
    const { connectRedis } = await import('../engines/redis/index.js');
    const { RedisIdempotencyStore } = await import('../idempotency/redis.js');
    const client = await connectRedis({ url, logger: ctx.logger, name: 'cdp-idempotency' });
    ctx.lifecycle.defer('idempotency redis', async () => {
      await client.close();
    });
    store = new RedisIdempotencyStore({ client, prefix: 'cdp:idem:' });
    engine = 'redis';
  }
  const idempotency = new Idempotency({
    store,
    clock: ctx.clock,
    leaseMs: ctx.config.http.requestTimeoutMs + 30_000,
    waitMs: 10_000,
    registry: ctx.registry,
  });
  await ctx.http.register(fastifyIdempotency, { idempotency });
  if (engine === 'sql') {
    // Expired keys are removed hourly (a new request with an expired key takes its row over).
    const timer = setInterval(() => {
      idempotency
        .purgeExpired()
        .catch((err: unknown) => ctx.logger.warn({ err }, 'idempotency key purge failed'));
    }, 3_600_000);
    timer.unref();
    ctx.lifecycle.defer('idempotency purge', async () => clearInterval(timer));
  }
  return { engine };
}
