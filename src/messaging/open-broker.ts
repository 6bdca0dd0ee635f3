import type { Logger } from 'pino';
import { ConfigError } from '../core/errors.js';
import { connectAmqp } from '../engines/amqp/amqp-connection.js';
import { connectNats } from '../engines/nats/nats-connection.js';
import type { Broker } from './broker.js';
import { MemoryBroker } from './memory-broker.js';
import { NatsBroker } from './nats-broker.js';
import { RabbitMqBroker } from './rabbitmq-broker.js';

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
 * An unreachable broker fails here with an EngineUnavailableError naming the variable.
 */
export async function openBroker(options: OpenBrokerOptions): Promise<Broker> {
  const prefix = options.prefix ?? 'cdp';
  if (options.natsUrl) {
    checkUrl(options.natsUrl, 'CDP_NATS_URL', ['nats:', 'tls:']);
    const nc = await connectNats({ url: options.natsUrl, logger: options.logger });
    try {
      const broker = await NatsBroker.create({ nc, prefix, logger: options.logger });
      return withClose(broker, () => nc.close());
    } catch (err) {
      await nc.close();
      throw err;
    }
  }
  if (options.amqpUrl) {
    checkUrl(options.amqpUrl, 'CDP_AMQP_URL', ['amqp:', 'amqps:']);
    const conn = await connectAmqp({ url: options.amqpUrl, logger: options.logger });
    try {
      const broker = await RabbitMqBroker.create({
        connection: conn,
        prefix,
        logger: options.logger,
      });
      return withClose(broker, () => conn.close());
    } catch (err) {
      await conn.close();
      throw err;
    }
  }
  return new MemoryBroker({ logger: options.logger });
}

function withClose<B extends Broker>(broker: B, after: () => Promise<void>): B {
  const close = broker.close.bind(broker);
  broker.close = async () => {
    await close();
    await after();
  };
  return broker;
}
