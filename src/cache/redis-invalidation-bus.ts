import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { errorMessage } from '../core/errors.js';
import type { RedisClient } from '../engines/redis/index.js';
import type { Invalidation, InvalidationBus } from './invalidation-bus.js';

export interface RedisInvalidationBusOptions {
  /** A connected client used to publish; a duplicate of it subscribes. Not closed by the bus. */
  client: RedisClient;
  /** Pub/sub channel shared by the instances. */
  channel: string;
  logger?: Logger;
}

/**
 * Invalidations on Redis pub/sub. Pub/sub is at-most-once: a message published while the
 * subscriber is disconnected is lost. So the bus reports the gap: 'down' when the subscriber's
 * connection fails, 'up' when node-redis has reconnected and resubscribed. The cache empties and
 * bypasses L1 in between, which is what makes a lost invalidation harmless.
 */
export class RedisInvalidationBus implements InvalidationBus {
  readonly kind = 'redis';
  readonly #client: RedisClient;
  readonly #channel: string;
  readonly #logger: Logger | undefined;
  #sub: RedisClient | undefined;

  constructor(options: RedisInvalidationBusOptions) {
    this.#client = options.client;
    this.#channel = options.channel;
    this.#logger = options.logger;
  }

  /** The subscriber connection's CLIENT SETNAME, to find it in CLIENT LIST (ops, fault tests). */
  readonly subscriberName = `cdp-bus-${randomBytes(6).toString('hex')}`;

  async publish(message: Invalidation): Promise<void> {
    await this.#client.publish(this.#channel, JSON.stringify(message));
  }

  async subscribe(
    onMessage: (message: Invalidation) => void,
    onGap: (state: 'down' | 'up') => void,
  ): Promise<void> {
    const sub = this.#client.duplicate({ name: this.subscriberName }) as RedisClient;
    this.#sub = sub;
    let up = false;
    sub.on('error', (err: unknown) => {
      this.#logger?.warn({ err: errorMessage(err) }, 'invalidation bus connection error');
      if (up) {
        up = false;
        onGap('down');
      }
    });
    sub.on('reconnecting', () => {
      if (up) {
        up = false;
        onGap('down');
      }
    });
    sub.on('ready', () => {
      if (!up && this.#sub === sub && started) {
        up = true;
        // node-redis resubscribes on reconnect; report 'up' once that is done.
        queueMicrotask(() => onGap('up'));
      }
    });
    let started = false;
    await sub.connect();
    await sub.subscribe(this.#channel, (text: string) => {
      try {
        onMessage(JSON.parse(text) as Invalidation);
      } catch (err) {
        this.#logger?.warn({ err: errorMessage(err) }, 'ignored a malformed invalidation');
      }
    });
    started = true;
    up = true;
  }

  async close(): Promise<void> {
    const sub = this.#sub;
    this.#sub = undefined;
    if (sub) {
      try {
        await sub.close();
      } catch {
        sub.destroy();
      }
    }
  }
}
