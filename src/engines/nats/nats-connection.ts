import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { redactUrl } from '../../core/config.js';
import { EngineUnavailableError, errorMessage } from '../../core/errors.js';
import { importOptional } from '../../core/optional-dependency.js';

export type { NatsConnection } from '@nats-io/transport-node';

export interface NatsConnectOptions {
  url: string;
  /** Give up the first connection after this many ms. Default 5000. */
  connectTimeoutMs?: number;
  logger?: Logger;
  name?: string;
  variable?: string;
}

/**
 * A NATS connection that reconnects forever (with the client's backoff and jitter) once it has
 * connected; the first connection must succeed, or a clear error names the variable.
 */
export async function connectNats(options: NatsConnectOptions): Promise<NatsConnection> {
  const variable = options.variable ?? 'CDP_NATS_URL';
  const u = new URL(options.url);
  const { connect } = await importOptional(
    '@nats-io/transport-node',
    `NATS (${variable})`,
    () => import('@nats-io/transport-node'),
  );
  try {
    const nc = await connect({
      servers: `${u.hostname}:${u.port || 4222}`,
      user: u.username ? decodeURIComponent(u.username) : undefined,
      pass: u.password ? decodeURIComponent(u.password) : undefined,
      name: options.name ?? 'cdp',
      timeout: options.connectTimeoutMs ?? 5000,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      reconnectJitter: 250,
    });
    if (options.logger) {
      const logger = options.logger;
      void (async () => {
        for await (const s of nc.status()) {
          if (s.type === 'disconnect' || s.type === 'reconnect')
            logger.warn({ status: s.type }, 'NATS connection status');
        }
      })().catch(() => {});
    }
    return nc;
  } catch (err) {
    throw new EngineUnavailableError(
      'nats',
      `cannot reach NATS at ${redactUrl(options.url)}: ${errorMessage(err)}. Check that it runs (with JetStream, -js) and that ${variable} is right, or unset it.`,
      variable,
      { cause: err },
    );
  }
}
