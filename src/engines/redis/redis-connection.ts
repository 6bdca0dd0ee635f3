import type { Logger } from 'pino';
import type { RedisClientType } from 'redis';
import { redactUrl } from '../../core/config.js';
import { EngineUnavailableError, errorMessage } from '../../core/errors.js';
import { importOptional } from '../../core/optional-dependency.js';
import { backoffDelay } from '../../core/retry.js';

export type RedisClient = RedisClientType;

export interface RedisConnectOptions {
  url: string;
  /** Give up the first connection after this many ms. Default 5000. */
  connectTimeoutMs?: number;
  /** Fail commands after this many ms instead of hanging. Default 2000. */
  commandTimeoutMs?: number;
  logger?: Logger;
  /** Client name shown by CLIENT LIST. Default 'cdp'. */
  name?: string;
  variable?: string;
}

/**
 * A node-redis client that reconnects with backoff after a drop, with connect and command
 * timeouts so that calls never hang. The first connection must succeed: a clear error names
 * the variable otherwise.
 */
export async function connectRedis(options: RedisConnectOptions): Promise<RedisClient> {
  const variable = options.variable ?? 'CDP_REDIS_URL';
  const { createClient } = await importOptional(
    'redis',
    `Redis (${variable})`,
    () => import('redis'),
  );
  const client = createClient({
    url: options.url,
    name: options.name ?? 'cdp',
    commandOptions: undefined,
    socket: {
      connectTimeout: options.connectTimeoutMs ?? 5000,
      reconnectStrategy: (retries: number) =>
        backoffDelay(retries + 1, { baseDelayMs: 50, maxDelayMs: 2000, jitter: 'equal' }),
    },
    disableOfflineQueue: true,
  }) as RedisClientType;
  let connected = false;
  client.on('error', (err: unknown) => {
    if (connected) options.logger?.warn({ err: errorMessage(err) }, 'Redis connection error');
  });
  try {
    await withDeadline(client.connect(), options.connectTimeoutMs ?? 5000);
    connected = true;
  } catch (err) {
    client.destroy();
    throw new EngineUnavailableError(
      'redis',
      `cannot reach Redis at ${redactUrl(options.url)}: ${errorMessage(err)}. Check that it runs and that ${variable} is right, or unset it.`,
      variable,
      { cause: err },
    );
  }
  return client;
}

function withDeadline<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no connection within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
