import { setMaxListeners } from 'node:events';
import type { Logger } from 'pino';
import {
  type AsyncMessage,
  type Connection,
  type Consumer,
  ConsumerStatus,
  type MessageBody,
  type Publisher,
} from 'rabbitmq-client';
import { type Clock, systemClock } from '../core/clock.js';
import { ClosedError, errorMessage, ValidationError } from '../core/errors.js';
import { connectAmqp } from '../engines/amqp/amqp-connection.js';
import {
  type Broker,
  BrokerError,
  type DeadLetter,
  type Delivery,
  type MessageHandler,
  type OutgoingMessage,
  type PublishReceipt,
  type SubscribeOptions,
  type Subscription,
} from './broker.js';
import { decide } from './internal/delivery-outcome.js';
import { type GroupSettings, groupSettings } from './internal/group-settings.js';
import { CDP_HEADERS } from './internal/headers.js';
import { assertMessage } from './internal/message-rules.js';
import { RecentIds } from './internal/recent-ids.js';

export interface RabbitMqBrokerOptions {
  /** A connection from connectAmqp() (src/engines/amqp). */
  connection: Connection;
  /** Close `connection` when the broker closes. Default false: the caller owns the connection. */
  closeConnection?: boolean;
  /** Names the topic exchange `<prefix>`, group queues `<prefix>.<group>`, `<prefix>.dlq`. Default `cdp`. */
  prefix?: string;
  /** 'quorum' (default: replicated, survives restarts, poison-safe) or 'classic' durable queues. */
  queueType?: 'quorum' | 'classic';
  /** Recently handled ids remembered per subscriber to drop redeliveries. Default 10,000. */
  recentIds?: number;
  clock?: Clock;
  logger?: Logger;
}

const PREFIX_RE = /^[A-Za-z0-9_.-]{1,100}$/;

function bodyText(body: MessageBody): string {
  if (typeof body === 'string') return body;
  if (Buffer.isBuffer(body)) return body.toString('utf8');
  if (body instanceof Uint8Array) return Buffer.from(body).toString('utf8');
  return JSON.stringify(body);
}

function headerRecord(h: Record<string, unknown> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h ?? {})) {
    if (v === undefined || v === null) continue;
    out[k] = Buffer.isBuffer(v) ? v.toString('utf8') : String(v);
  }
  return out;
}

/**
 * Broker on RabbitMQ: a durable topic exchange per prefix; one quorum queue per group bound to
 * its topics (competing consumers share the queue); publisher confirms on every publish
 * (rabbitmq-client retries across reconnects and re-declares the topology). RabbitMQ has no
 * per-message delayed nack nor id dedup: a retry waits in the consumer and then republishes a
 * copy (attempt + 1, confirmed) straight to the group's queue before acking the original; a
 * dead letter is published (confirmed) to `<prefix>.dlq` before the original is acked; repeats
 * of recently handled ids are dropped in the consumer (the SQL inbox is the durable dedup).
 */
export class RabbitMqBroker implements Broker {
  readonly kind = 'rabbitmq' as const;
  readonly dedupOnBroker = false;
  readonly prefix: string;
  readonly #conn: Connection;
  readonly #publisher: Publisher;
  readonly #options: RabbitMqBrokerOptions;
  readonly #clock: Clock;
  readonly #subs = new Set<RabbitSubscription>();
  readonly #queues = new Set<string>();
  #closed = false;

  private constructor(options: RabbitMqBrokerOptions) {
    this.#options = options;
    this.#conn = options.connection;
    this.prefix = options.prefix ?? 'cdp';
    this.#clock = options.clock ?? systemClock;
    this.#publisher = this.#conn.createPublisher({
      confirm: true,
      maxAttempts: 20,
      exchanges: [{ exchange: this.prefix, type: 'topic', durable: true }],
      queues: [{ queue: this.dlqQueue, durable: true, arguments: this.#queueArgs() }],
    });
    this.#publisher.on('retry', (err) =>
      options.logger?.warn({ err: errorMessage(err) }, 'RabbitMQ publish retry'),
    );
  }

  static async open(options: RabbitMqBrokerOptions): Promise<RabbitMqBroker> {
    const prefix = options.prefix ?? 'cdp';
    if (!PREFIX_RE.test(prefix)) {
      throw new ValidationError(
        `invalid RabbitMQ broker prefix ${JSON.stringify(prefix)}: use 1-100 letters, digits, ., _ and -`,
      );
    }
    const broker = new RabbitMqBroker(options);
    // Declare the topology now, so that errors show at start rather than on first publish.
    const ch = await broker.#conn.acquire();
    try {
      await ch.exchangeDeclare({ exchange: prefix, type: 'topic', durable: true });
      await ch.queueDeclare({
        queue: broker.dlqQueue,
        durable: true,
        arguments: broker.#queueArgs(),
      });
    } finally {
      await ch.close();
    }
    broker.#queues.add(broker.dlqQueue);
    return broker;
  }

  #queueArgs(): Record<string, unknown> {
    return (this.#options.queueType ?? 'quorum') === 'quorum' ? { 'x-queue-type': 'quorum' } : {};
  }

  get dlqQueue(): string {
    return `${this.prefix}.dlq`;
  }

  queueOf(group: string): string {
    return `${this.prefix}.${group}`;
  }

  #check(): void {
    if (this.#closed) throw new ClosedError('RabbitMqBroker');
  }

  async ping(): Promise<void> {
    this.#check();
    const ch = await this.#conn.acquire();
    await ch.close();
  }

  async publish(message: OutgoingMessage): Promise<PublishReceipt> {
    this.#check();
    assertMessage(message);
    const headers: Record<string, string> = {
      ...(message.headers ?? {}),
      [CDP_HEADERS.id]: message.id,
    };
    if (message.key !== undefined) headers[CDP_HEADERS.key] = message.key;
    await this.#send(this.prefix, message.topic, message.id, headers, message.body);
    return { id: message.id, duplicate: false };
  }

  /** @internal confirmed publish */
  async send(queue: string, id: string, headers: Record<string, string>, body: string) {
    await this.#send('', queue, id, headers, body);
  }

  async #send(
    exchange: string,
    routingKey: string,
    id: string,
    headers: Record<string, string>,
    body: string,
  ): Promise<void> {
    try {
      await this.#publisher.send(
        {
          exchange,
          routingKey,
          messageId: id,
          headers,
          durable: true,
          contentType: 'text/plain',
        },
        body,
      );
    } catch (err) {
      throw new BrokerError(
        `RabbitMQ did not confirm the message ${id} to ${exchange || 'queue'} ${routingKey}: ${errorMessage(err)}. It may or may not be stored; publish it again with the same id.`,
        { cause: err },
      );
    }
  }

  async subscribe(options: SubscribeOptions, handler: MessageHandler): Promise<Subscription> {
    this.#check();
    const settings = groupSettings(options);
    const queue = this.queueOf(settings.group);
    this.#queues.add(queue);
    const sub = new RabbitSubscription(this, settings, handler, this.#options.recentIds ?? 10_000);
    const consumer = this.#conn.createConsumer(
      {
        queue,
        queueOptions: { durable: true, arguments: this.#queueArgs() },
        qos: { prefetchCount: settings.concurrency },
        concurrency: settings.concurrency,
        exchanges: [{ exchange: this.prefix, type: 'topic', durable: true }],
        queueBindings: settings.topics.map((t) => ({
          exchange: this.prefix,
          queue,
          routingKey: t,
        })),
        requeue: true,
      },
      (msg) => sub.handle(msg),
    );
    consumer.on('error', (err) =>
      this.#options.logger?.warn({ err: errorMessage(err), queue }, 'RabbitMQ consumer error'),
    );
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new BrokerError(`RabbitMQ consumer for ${queue} did not start within 10 s`)),
        10_000,
      );
      consumer.once('ready', () => {
        clearTimeout(timer);
        resolve();
      });
    }).catch(async (err) => {
      await consumer.close();
      throw err;
    });
    sub.consumer = consumer;
    this.#subs.add(sub);
    return sub;
  }

  /** @internal */
  get clock(): Clock {
    return this.#clock;
  }

  /** @internal */
  get logger(): Logger | undefined {
    return this.#options.logger;
  }

  /** @internal */
  forget(sub: RabbitSubscription): void {
    this.#subs.delete(sub);
  }

  /** Read the DLQ without consuming it: get each message and leave it unacked, then close. */
  async #scanDead(
    visit: (d: DeadLetter, settle: () => void) => Promise<void>,
    limit: number,
  ): Promise<void> {
    const ch = await this.#conn.acquire();
    let unsettled = 0;
    let held = 0;
    let settled = 0;
    try {
      const q = await ch.queueDeclare({
        queue: this.dlqQueue,
        durable: true,
        arguments: this.#queueArgs(),
      });
      held = q.messageCount;
      const n = Math.min(q.messageCount, limit);
      for (let i = 0; i < n; i++) {
        const m = await ch.basicGet({ queue: this.dlqQueue, noAck: false });
        if (!m) break;
        const headers = headerRecord(m.headers);
        const d: DeadLetter = {
          id: headers[CDP_HEADERS.id] ?? m.messageId ?? '',
          topic: headers[CDP_HEADERS.topic] ?? '',
          group: headers[CDP_HEADERS.dlqGroup] ?? '',
          key: headers[CDP_HEADERS.key],
          headers,
          body: bodyText(m.body),
          error: headers[CDP_HEADERS.dlqError] ?? '',
          attempts: Number(headers[CDP_HEADERS.dlqAttempts] ?? 0),
          deadAt: headers[CDP_HEADERS.dlqAt] ?? '',
        };
        unsettled++;
        await visit(d, () => {
          unsettled--;
          settled++;
          ch.basicAck({ deliveryTag: m.deliveryTag });
        });
      }
    } finally {
      // Put back what was only looked at, in place, and wait until the queue counts it again
      // (it held `held`, of which this scan removed `settled`); otherwise the next scan (another
      // channel) could count the queue before the requeue lands and miss those messages. A
      // quorum queue applies the requeue through its log, after the channel has answered, so
      // one declare is not enough: the count is asked again, up to 200 round trips.
      if (unsettled > 0) {
        try {
          ch.basicNack({ deliveryTag: 0, multiple: true, requeue: true });
          for (let i = 0; i < 200; i++) {
            const q = await ch.queueDeclare({ queue: this.dlqQueue, passive: true });
            if (q.messageCount >= held - settled) break;
          }
        } catch {
          // The channel close below requeues them anyway.
        }
      }
      await ch.close();
    }
  }

  async listDeadLetters(options: { limit?: number; group?: string } = {}): Promise<DeadLetter[]> {
    this.#check();
    const out: DeadLetter[] = [];
    const limit = options.limit ?? 100;
    await this.#scanDead(async (d) => {
      if ((options.group === undefined || d.group === options.group) && out.length < limit)
        out.push(d);
    }, 100_000);
    return out;
  }

  async replayDeadLetter(id: string): Promise<number> {
    this.#check();
    let n = 0;
    await this.#scanDead(async (d, settle) => {
      if (d.id !== id) return;
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(d.headers)) {
        if (!k.startsWith('cdp-dlq-') && k !== CDP_HEADERS.attempt) headers[k] = v;
      }
      await this.send(this.queueOf(d.group), id, headers, d.body);
      settle();
      n++;
    }, 100_000);
    return n;
  }

  /** Delete the exchange and the queues this broker declared (per-run cleanup). */
  async destroy(): Promise<void> {
    const ch = await this.#conn.acquire();
    try {
      for (const q of this.#queues) await ch.queueDelete({ queue: q }).catch(() => {});
      await ch.exchangeDelete({ exchange: this.prefix }).catch(() => {});
    } finally {
      await ch.close().catch(() => {});
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all([...this.#subs].map((s) => s.close()));
    await this.#publisher.close();
    if (this.#options.closeConnection) await this.#conn.close();
  }
}

class RabbitSubscription implements Subscription {
  readonly group: string;
  consumer: Consumer | undefined;
  readonly #broker: RabbitMqBroker;
  readonly #settings: GroupSettings;
  readonly #handler: MessageHandler;
  readonly #recent: RecentIds;
  readonly #abort = new AbortController();
  #closed = false;

  constructor(
    broker: RabbitMqBroker,
    settings: GroupSettings,
    handler: MessageHandler,
    recent: number,
  ) {
    this.#broker = broker;
    this.#settings = settings;
    this.#handler = handler;
    this.#recent = new RecentIds(recent);
    this.group = settings.group;
    // One abort listener per message waiting to be retried (up to `concurrency`).
    setMaxListeners(0, this.#abort.signal);
  }

  async handle(msg: AsyncMessage): Promise<ConsumerStatus> {
    if (this.#closed) return ConsumerStatus.REQUEUE;
    const headers = headerRecord(msg.headers);
    const id = headers[CDP_HEADERS.id] ?? msg.messageId ?? `${msg.deliveryTag}`;
    if (this.#recent.has(id)) return ConsumerStatus.ACK;
    const attempt = Number(headers[CDP_HEADERS.attempt] ?? 1);
    const delivery: Delivery = {
      id,
      topic: headers[CDP_HEADERS.topic] ?? msg.routingKey,
      key: headers[CDP_HEADERS.key],
      headers,
      body: bodyText(msg.body),
      attempt,
      maxDeliveries: this.#settings.maxDeliveries,
      group: this.group,
    };
    const outcome = await decide(this.#settings, delivery, this.#handler, this.#broker.logger);
    if (outcome.kind === 'ack') {
      this.#recent.add(id);
      return ConsumerStatus.ACK;
    }
    const base = { ...headers, [CDP_HEADERS.topic]: delivery.topic };
    if (outcome.kind === 'dead') {
      await this.#broker.send(
        this.#broker.dlqQueue,
        id,
        {
          ...base,
          [CDP_HEADERS.dlqError]: outcome.error.slice(0, 2000),
          [CDP_HEADERS.dlqGroup]: this.group,
          [CDP_HEADERS.dlqAttempts]: String(attempt),
          [CDP_HEADERS.dlqAt]: new Date(this.#broker.clock.now()).toISOString(),
        },
        delivery.body,
      );
      return ConsumerStatus.ACK;
    }
    try {
      await this.#broker.clock.sleep(outcome.delayMs, this.#abort.signal);
    } catch {
      return ConsumerStatus.REQUEUE; // closing: give it back as it was
    }
    await this.#broker.send(
      this.#broker.queueOf(this.group),
      id,
      { ...base, [CDP_HEADERS.attempt]: String(attempt + (outcome.counts ? 1 : 0)) },
      delivery.body,
    );
    return ConsumerStatus.ACK;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#abort.abort();
    await this.consumer?.close();
    this.#broker.forget(this);
  }
}

/**
 * Connect to the RabbitMQ server at `url` (`CDP_AMQP_URL`) and open a broker on it that owns
 * the connection: `close()` closes both. An unreachable server fails with an
 * EngineUnavailableError naming `variable`.
 */
export async function openRabbitMqBroker(
  options: Omit<RabbitMqBrokerOptions, 'connection' | 'closeConnection'> & {
    url: string;
    variable?: string;
  },
): Promise<RabbitMqBroker> {
  const { url, variable, ...rest } = options;
  const connection = await connectAmqp({
    url,
    ...(variable ? { variable } : {}),
    ...(rest.logger ? { logger: rest.logger } : {}),
  });
  try {
    return await RabbitMqBroker.open({ ...rest, connection, closeConnection: true });
  } catch (err) {
    await connection.close();
    throw err;
  }
}
