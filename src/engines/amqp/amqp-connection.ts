import type { Logger } from 'pino';
import type { Connection } from 'rabbitmq-client';
import { redactUrl } from '../../core/config.js';
import { EngineUnavailableError, errorMessage } from '../../core/errors.js';
import { importOptional } from '../../core/optional-dependency.js';

export type { Connection as AmqpConnection } from 'rabbitmq-client';

export interface AmqpConnectOptions {
  url: string;
  /** Give up the first connection after this many ms. Default 5000. */
  connectTimeoutMs?: number;
  logger?: Logger;
  name?: string;
  variable?: string;
}

/**
 * A RabbitMQ connection (rabbitmq-client: reconnects with backoff by itself, re-declares
 * consumers' queues, publisher confirms). The first connection must succeed within the
 * timeout, or a clear error names the variable.
 */
export async function connectAmqp(options: AmqpConnectOptions): Promise<Connection> {
  const variable = options.variable ?? 'CDP_AMQP_URL';
  const { Connection } = await importOptional(
    'rabbitmq-client',
    `RabbitMQ (${variable})`,
    () => import('rabbitmq-client'),
  );
  const conn = new Connection({
    url: options.url,
    connectionName: options.name ?? 'cdp',
    retryLow: 100,
    retryHigh: 5000,
    connectionTimeout: options.connectTimeoutMs ?? 5000,
  });
  conn.on('error', (err) =>
    options.logger?.warn({ err: errorMessage(err) }, 'RabbitMQ connection error'),
  );
  try {
    await conn.onConnect(options.connectTimeoutMs ?? 5000);
  } catch (err) {
    // onConnect has closed the connection itself on timeout (calling close() again would hang).
    throw new EngineUnavailableError(
      'rabbitmq',
      `cannot reach RabbitMQ at ${redactUrl(options.url)}: ${errorMessage(err)}. Check that it runs and that ${variable} is right, or unset it.`,
      variable,
      { cause: err },
    );
  }
  return conn;
}
