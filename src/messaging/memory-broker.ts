import { AsyncResource } from 'node:async_hooks';
import type { Logger } from 'pino';
import { type Clock, systemClock } from '../core/clock.js';
import { ClosedError } from '../core/errors.js';
import type {
  Broker,
  DeadLetter,
  Delivery,
  MessageHandler,
  OutgoingMessage,
  PublishReceipt,
  SubscribeOptions,
  Subscription,
} from './broker.js';
import { decide } from './internal/delivery-outcome.js';
import { type GroupSettings, groupSettings } from './internal/group-settings.js';
import { assertMessage } from './internal/message-rules.js';

export interface MemoryBrokerOptions {
  clock?: Clock;
  /** A repeated message id within this window is dropped at publish. Default 120,000 ms. */
  dedupWindowMs?: number;
  logger?: Logger;
}

interface Queued {
  message: OutgoingMessage;
  attempt: number;
}

interface Consumer {
  handler: MessageHandler;
  /** Runs a function in the async context of the subscribe call (see #pump). */
  inScope: (fn: () => void) => void;
  inflight: number;
  settings: GroupSettings;
  closed: boolean;
  idle: (() => void)[];
}

interface Group {
  topics: Set<string>;
  queue: Queued[];
  consumers: Consumer[];
  next: number;
  settings: GroupSettings;
}

/**
 * In-process broker for one process (the embedded default and tests). Groups are durable for
 * the life of the broker: created by the first subscribe, they keep receiving messages while no
 * consumer is attached. Nothing survives the process.
 */
export class MemoryBroker implements Broker {
  readonly kind = 'memory' as const;
  readonly dedupOnBroker = true;
  readonly #clock: Clock;
  readonly #window: number;
  readonly #logger: Logger | undefined;
  readonly #seen = new Map<string, number>();
  readonly #groups = new Map<string, Group>();
  readonly #dead: DeadLetter[] = [];
  readonly #timers = new Set<AbortController>();
  #closed = false;

  /** A broker in this process; `close()` stops its retry timers and waits for handlers. */
  static async open(options: MemoryBrokerOptions = {}): Promise<MemoryBroker> {
    return new MemoryBroker(options);
  }

  private constructor(options: MemoryBrokerOptions) {
    this.#clock = options.clock ?? systemClock;
    this.#window = options.dedupWindowMs ?? 120_000;
    this.#logger = options.logger;
  }

  #check(): void {
    if (this.#closed) throw new ClosedError('MemoryBroker');
  }

  async ping(): Promise<void> {
    this.#check();
  }

  async publish(message: OutgoingMessage): Promise<PublishReceipt> {
    this.#check();
    assertMessage(message);
    const now = this.#clock.now();
    const seenAt = this.#seen.get(message.id);
    if (seenAt !== undefined && now - seenAt < this.#window) {
      return { id: message.id, duplicate: true };
    }
    this.#seen.set(message.id, now);
    if (this.#seen.size > 100_000) {
      for (const [id, at] of this.#seen) if (now - at >= this.#window) this.#seen.delete(id);
    }
    const copy: OutgoingMessage = { ...message, headers: { ...(message.headers ?? {}) } };
    for (const g of this.#groups.values()) {
      if (g.topics.has(message.topic)) {
        g.queue.push({ message: copy, attempt: 1 });
        this.#pump(g);
      }
    }
    return { id: message.id, duplicate: false };
  }

  async subscribe(options: SubscribeOptions, handler: MessageHandler): Promise<Subscription> {
    this.#check();
    const settings = groupSettings(options);
    let g = this.#groups.get(settings.group);
    if (!g) {
      g = { topics: new Set(), queue: [], consumers: [], next: 0, settings };
      this.#groups.set(settings.group, g);
    }
    for (const t of settings.topics) g.topics.add(t);
    const consumer: Consumer = {
      handler,
      inScope: AsyncResource.bind((fn: () => void) => fn()),
      inflight: 0,
      settings,
      closed: false,
      idle: [],
    };
    g.consumers.push(consumer);
    const group = g;
    this.#pump(group);
    return {
      group: settings.group,
      close: async () => {
        if (consumer.closed) return;
        consumer.closed = true;
        group.consumers = group.consumers.filter((c) => c !== consumer);
        if (consumer.inflight > 0)
          await new Promise<void>((resolve) => consumer.idle.push(resolve));
      },
    };
  }

  /**
   * Hand queued messages to ready consumers. A delivery runs in the async context of its
   * consumer's subscribe call, never in the publisher's: as from a broker across the network,
   * a handler does not inherit what the publisher's context holds. A relay publishes inside
   * the transaction that claims its outbox rows, and PGlite refuses (rather than deadlocks on)
   * a query on the client from inside its own transaction callback; a handler that inherited
   * that context would fail its first delivery.
   */
  #pump(g: Group): void {
    while (g.queue.length > 0) {
      const ready = g.consumers.filter((c) => !c.closed && c.inflight < c.settings.concurrency);
      if (ready.length === 0) return;
      const c = ready[g.next++ % ready.length]!;
      const item = g.queue.shift()!;
      c.inflight++;
      c.inScope(() => {
        void this.#deliver(g, c, item).finally(() => {
          c.inflight--;
          if (c.inflight === 0) for (const r of c.idle.splice(0)) r();
          if (!this.#closed) this.#pump(g);
        });
      });
    }
  }

  async #deliver(g: Group, c: Consumer, item: Queued): Promise<void> {
    const m = item.message;
    const delivery: Delivery = {
      id: m.id,
      topic: m.topic,
      key: m.key,
      headers: { ...(m.headers ?? {}) },
      body: m.body,
      attempt: item.attempt,
      maxDeliveries: c.settings.maxDeliveries,
      group: c.settings.group,
    };
    const outcome = await decide(c.settings, delivery, c.handler, this.#logger);
    if (outcome.kind === 'ack') return;
    if (outcome.kind === 'dead') {
      this.#dead.push({
        id: m.id,
        topic: m.topic,
        group: c.settings.group,
        key: m.key,
        headers: { ...(m.headers ?? {}) },
        body: m.body,
        error: outcome.error,
        attempts: item.attempt,
        deadAt: new Date(this.#clock.now()).toISOString(),
      });
      return;
    }
    const next: Queued = { message: m, attempt: item.attempt + (outcome.counts ? 1 : 0) };
    const ac = new AbortController();
    this.#timers.add(ac);
    void this.#clock
      .sleep(outcome.delayMs, ac.signal)
      .then(
        () => {
          if (this.#closed) return;
          g.queue.push(next);
          this.#pump(g);
        },
        () => {},
      )
      .finally(() => this.#timers.delete(ac));
  }

  async listDeadLetters(options: { limit?: number; group?: string } = {}): Promise<DeadLetter[]> {
    return this.#dead
      .filter((d) => options.group === undefined || d.group === options.group)
      .slice(0, options.limit ?? 100)
      .map((d) => ({ ...d, headers: { ...d.headers } }));
  }

  async replayDeadLetter(id: string): Promise<number> {
    this.#check();
    let n = 0;
    for (let i = this.#dead.length - 1; i >= 0; i--) {
      const d = this.#dead[i]!;
      if (d.id !== id) continue;
      this.#dead.splice(i, 1);
      const g = this.#groups.get(d.group);
      if (g) {
        g.queue.push({
          message: { id: d.id, topic: d.topic, key: d.key, headers: d.headers, body: d.body },
          attempt: 1,
        });
        this.#pump(g);
      }
      n++;
    }
    return n;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const ac of this.#timers) ac.abort();
    const waits: Promise<void>[] = [];
    for (const g of this.#groups.values())
      for (const c of g.consumers) {
        c.closed = true;
        if (c.inflight > 0) waits.push(new Promise((r) => c.idle.push(r)));
      }
    await Promise.all(waits);
  }
}
