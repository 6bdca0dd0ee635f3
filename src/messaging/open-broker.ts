import type { Logger } from 'pino';
import { ConfigError } from '../core/errors.js';
import { importOptional } from '../core/optional-dependency.js';
import type { Broker } from './broker.js';
import { MemoryBroker } from './memory-broker.js';

export interface OpenBrokerOptions {
  /** CDP_NATS_URL: NATS JetStream when set. */
  natsUrl?: string | undefined;
  /** CDP_AMQP_URL: RabbitMQ when set (and NATS is not). */
  amqpUrl?: string | undefined;
  /** Stream / exchange prefix. Default `cdp`. */
  prefix?: string;
  logger?: Logger;
}

function checkUrl(url: string, variable: string, protocols: string[]): void {
  let ok = false;
  try {
    ok = protocols.includes(new URL(url).protocol);
  } catch {
    ok = false;
  }
  if (!ok) {
    throw new ConfigError(
      `${variable}=${JSON.stringify(url)} is not a broker URL: expected ${protocols.map((p) => `${p}//host:port`).join(' or ')}`,
      variable,
    );
  }
}

/**
 * The broker the configuration selects: NATS JetStream with CDP_NATS_URL, RabbitMQ with
 * CDP_AMQP_URL, otherwise the in-process broker. `close()` closes the broker and its connection.
 * An unreachable broker fails here with an EngineUnavailableError naming the variable; a missing
 * engine client (an optional peer dependency) with a MissingDependencyError naming the package.
 * The adapters are imported here, on demand, so that this module loads no engine client.
 */
export async function openBroker(options: OpenBrokerOptions): Promise<Broker> {
  const prefix = options.prefix ?? 'cdp';
  const logger = options.logger ? { logger: options.logger } : {};
  if (options.natsUrl) {
    checkUrl(options.natsUrl, 'CDP_NATS_URL', ['nats:', 'tls:']);
    const purpose = 'the NATS JetStream broker (CDP_NATS_URL)';
    // Two packages: whichever is missing is named (the inner call converts its own).
    const { openNatsBroker } = await importOptional('@nats-io/jetstream', purpose, () =>
      importOptional('@nats-io/transport-node', purpose, () => import('./nats.js')),
    );
    return openNatsBroker({ url: options.natsUrl, variable: 'CDP_NATS_URL', prefix, ...logger });
  }
  if (options.amqpUrl) {
    checkUrl(options.amqpUrl, 'CDP_AMQP_URL', ['amqp:', 'amqps:']);
    const { openRabbitMqBroker } = await importOptional(
      'rabbitmq-client',
      'the RabbitMQ broker (CDP_AMQP_URL)',
      () => import('./rabbitmq.js'),
    );
    return openRabbitMqBroker({
      url: options.amqpUrl,
      variable: 'CDP_AMQP_URL',
      prefix,
      ...logger,
    });
  }
  return MemoryBroker.open(logger);
}
