import {
  AckPolicy,
  type ConsumerMessages,
  DeliverPolicy,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from '@nats-io/jetstream';
import { type MsgHdrs, type NatsConnection, headers as natsHeaders } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { type Clock, systemClock } from '../core/clock.js';
import { ClosedError, errorMessage, ValidationError } from '../core/errors.js';
import { backoffDelay } from '../core/retry.js';
import { connectNats } from '../engines/nats/nats-connection.js';
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

export interface NatsBrokerOptions {
  /** A connection from connectNats() (src/engines/nats). */
  nc: NatsConnection;
  /** Close `nc` when the broker closes. Default false: the caller owns the connection. */
  closeConnection?: boolean;
  /**
   * Names the streams (`<prefix>` for messages, `<prefix>_dlq` for dead letters) and the
   * subjects (`<prefix>.t.<topic>`). Letters, digits, _ and -. Default `cdp`.
   */
  prefix?: string;
  /** Nats-Msg-Id duplicate window. Default 120,000 ms. */
  duplicateWindowMs?: number;
  /** Redelivery of a message whose handler neither acked nor failed (crash). Default 30,000 ms. */
  ackWaitMs?: number;
  /** PubAck timeout per attempt. Default 5,000 ms. */
  publishTimeoutMs?: number;
  /** Attempts to publish while the connection is down/reconnecting. Default 10. */
  publishAttempts?: number;
  /** 'file' (default, survives a server restart) or 'memory'. */
  storage?: 'file' | 'memory';
  clock?: Clock;
  logger?: Logger;
}

const PREFIX_RE = /^[A-Za-z0-9_-]{1,64}$/;
const ns = (ms: number) => Math.round(ms * 1_000_000);

function toHeaders(h: MsgHdrs | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!h) return out;
  for (const k of h.keys()) out[k] = h.get(k);
  return out;
}

function durableName(group: string, subject: string): string {
  return `${group}__${subject.replace(/[.*>]/g, '_')}`.slice(0, 200);
}

/**
 * Broker on NATS JetStream: one stream per prefix (file storage, limits retention, duplicate
 * window for Nats-Msg-Id), durable pull consumers with explicit acks. A group is one durable
 * consumer per topic (NATS 2.9 has one filter subject per consumer) plus one for replays;
 * competing subscribers of the group pull from the same durables. Delayed retries use
 * `nak(delay)`; dead letters are published (confirmed) to the `<prefix>_dlq` stream before the
 * original is acked, so a crash in between only duplicates a dead letter.
 */
export class NatsBroker implements Broker {
  readonly kind = 'nats' as const;
  readonly dedupOnBroker = true;
  readonly prefix: string;
  readonly #nc: NatsConnection;
  readonly #js: JetStreamClient;
  readonly #jsm: JetStreamManager;
  readonly #options: NatsBrokerOptions;
  readonly #clock: Clock;
  readonly #subs = new Set<NatsSubscription>();
  #closed = false;

  private constructor(nc: NatsConnection, jsm: JetStreamManager, options: NatsBrokerOptions) {
    this.#nc = nc;
    this.#jsm = jsm;
    this.#js = jetstream(nc, { timeout: options.publishTimeoutMs ?? 5000 });
    this.#options = options;
    this.prefix = options.prefix ?? 'cdp';
    this.#clock = options.clock ?? systemClock;
  }

  get stream(): string {
    return this.prefix;
  }

  get dlqStream(): string {
    return `${this.prefix}_dlq`;
  }

  /** Create or update the streams; fails clearly when JetStream is not enabled. */
  static async open(options: NatsBrokerOptions): Promise<NatsBroker> {
    const prefix = options.prefix ?? 'cdp';
    if (!PREFIX_RE.test(prefix)) {
      throw new ValidationError(
        `invalid NATS broker prefix ${JSON.stringify(prefix)}: use 1-64 letters, digits, _ and -`,
      );
    }
    let jsm: JetStreamManager;
    try {
      jsm = await jetstreamManager(options.nc, { timeout: 5000 });
    } catch (err) {
      throw new BrokerError(
        `JetStream is not available on this NATS server (${errorMessage(err)}): start nats-server with -js`,
        { cause: err },
      );
    }
    const broker = new NatsBroker(options.nc, jsm, options);
    const storage = options.storage === 'memory' ? StorageType.Memory : StorageType.File;
    await broker.#ensureStream(
      prefix,
      [`${prefix}.>`],
      storage,
      options.duplicateWindowMs ?? 120_000,
    );
    await broker.#ensureStream(`${prefix}_dlq`, [`${prefix}_dlq.>`], storage, 120_000);
    return broker;
  }

  async #ensureStream(
    name: string,
    subjects: string[],
    storage: StorageType,
    windowMs: number,
  ): Promise<void> {
    const config = {
      name,
      subjects,
      storage,
      retention: RetentionPolicy.Limits,
      duplicate_window: ns(windowMs),
      num_replicas: 1,
    };
    try {
      await this.#jsm.streams.info(name);
      await this.#jsm.streams.update(name, { subjects, duplicate_window: ns(windowMs) });
    } catch (err) {
      if (!/not found/i.test(errorMessage(err))) throw err;
      await this.#jsm.streams.add(config);
    }
  }

  /** Delete both streams (tests and benchmarks clean up their per-run prefix). */
  async destroy(): Promise<void> {
    for (const s of [this.stream, this.dlqStream])
      await this.#jsm.streams.delete(s).catch(() => false);
  }

  #check(): void {
    if (this.#closed) throw new ClosedError('NatsBroker');
  }

  subject(topic: string): string {
    return `${this.prefix}.t.${topic}`;
  }

  replaySubject(group: string): string {
    return `${this.prefix}.r.${group}`;
  }

  async ping(): Promise<void> {
    this.#check();
    await this.#jsm.getAccountInfo();
  }

  async publish(message: OutgoingMessage): Promise<PublishReceipt> {
    this.#check();
    assertMessage(message);
    const h = natsHeaders();
    for (const [k, v] of Object.entries(message.headers ?? {})) h.set(k, v);
    h.set(CDP_HEADERS.id, message.id);
    if (message.key !== undefined) h.set(CDP_HEADERS.key, message.key);
    return this.#publishRaw(this.subject(message.topic), message.body, h, message.id);
  }

  async #publishRaw(
    subject: string,
    body: string,
    h: MsgHdrs,
    msgID: string,
  ): Promise<PublishReceipt> {
    const attempts = this.#options.publishAttempts ?? 10;
    for (let attempt = 1; ; attempt++) {
      try {
        const ack = await this.#js.publish(subject, body, { msgID, headers: h });
        return { id: msgID, duplicate: ack.duplicate };
      } catch (err) {
        // While the server restarts, the request times out or finds no responder; the same
        // Nats-Msg-Id makes a retry safe (a stored first attempt comes back as duplicate).
        if (this.#closed || attempt >= attempts) {
          throw new BrokerError(
            `NATS did not confirm the message ${msgID} on ${subject} after ${attempt} attempt(s): ${errorMessage(err)}. It may or may not be stored; publish it again with the same id.`,
            { cause: err },
          );
        }
        await this.#clock.sleep(
          backoffDelay(attempt, { baseDelayMs: 100, maxDelayMs: 2000, jitter: 'equal' }),
        );
      }
    }
  }

  async subscribe(options: SubscribeOptions, handler: MessageHandler): Promise<Subscription> {
    this.#check();
    const settings = groupSettings(options);
    const subjects = [
      ...settings.topics.map((t) => this.subject(t)),
      this.replaySubject(settings.group),
    ];
    const ackWait = this.#options.ackWaitMs ?? 30_000;
    const durables: string[] = [];
    for (const subject of subjects) {
      const durable = durableName(settings.group, subject);
      const config = {
        durable_name: durable,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        filter_subject: subject,
        max_deliver: -1,
        ack_wait: ns(ackWait),
        max_ack_pending: 10_000,
      };
      try {
        await this.#jsm.consumers.info(this.stream, durable);
      } catch (err) {
        if (!/not found/i.test(errorMessage(err))) throw err;
        await this.#jsm.consumers.add(this.stream, config).catch(async (e: unknown) => {
          // Another subscriber created it first: fine.
          if (!/already (exists|in use)/i.test(errorMessage(e))) throw e;
        });
      }
      durables.push(durable);
    }
    const sub = new NatsSubscription(this, settings, handler, durables, this.#options.logger);
    this.#subs.add(sub);
    await sub.start();
    return sub;
  }

  /** @internal */
  get js(): JetStreamClient {
    return this.#js;
  }

  /** @internal */
  forget(sub: NatsSubscription): void {
    this.#subs.delete(sub);
  }

  /** @internal publish a dead letter (confirmed). */
  async publishDead(settings: GroupSettings, m: JsMsg, delivery: Delivery, error: string) {
    const h = natsHeaders();
    for (const [k, v] of Object.entries(delivery.headers)) {
      if (!k.toLowerCase().startsWith('nats-')) h.set(k, v);
    }
    h.set(CDP_HEADERS.topic, delivery.topic);
    h.set(CDP_HEADERS.dlqError, error.replace(/[\r\n]+/g, ' ').slice(0, 2000));
    h.set(CDP_HEADERS.dlqGroup, settings.group);
    h.set(CDP_HEADERS.dlqAttempts, String(delivery.attempt));
    h.set(CDP_HEADERS.dlqAt, new Date(this.#clock.now()).toISOString());
    await this.#publishRaw(
      `${this.dlqStream}.${settings.group}`,
      delivery.body,
      h,
      `dlq:${settings.group}:${delivery.id}:${m.seq}`,
    );
  }

  async #deadEntries(): Promise<{ seq: number; dead: DeadLetter }[]> {
    const info = await this.#jsm.streams.info(this.dlqStream);
    const out: { seq: number; dead: DeadLetter }[] = [];
    if (info.state.messages === 0) return out;
    for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
      const sm = await this.#jsm.streams.getMessage(this.dlqStream, { seq }).catch(() => null);
      if (!sm) continue;
      const headers = toHeaders(sm.header);
      out.push({
        seq,
        dead: {
          id: headers[CDP_HEADERS.id] ?? '',
          topic: headers[CDP_HEADERS.topic] ?? '',
          group: headers[CDP_HEADERS.dlqGroup] ?? '',
          key: headers[CDP_HEADERS.key],
          headers,
          body: sm.string(),
          error: headers[CDP_HEADERS.dlqError] ?? '',
          attempts: Number(headers[CDP_HEADERS.dlqAttempts] ?? 0),
          deadAt: headers[CDP_HEADERS.dlqAt] ?? '',
        },
      });
    }
    return out;
  }

  async listDeadLetters(options: { limit?: number; group?: string } = {}): Promise<DeadLetter[]> {
    this.#check();
    const all = await this.#deadEntries();
    return all
      .map((e) => e.dead)
      .filter((d) => options.group === undefined || d.group === options.group)
      .slice(0, options.limit ?? 100);
  }

  async replayDeadLetter(id: string): Promise<number> {
    this.#check();
    let n = 0;
    for (const { seq, dead } of await this.#deadEntries()) {
      if (dead.id !== id) continue;
      const h = natsHeaders();
      for (const [k, v] of Object.entries(dead.headers)) {
        if (!k.startsWith('cdp-dlq-') && !k.toLowerCase().startsWith('nats-')) h.set(k, v);
      }
      await this.#publishRaw(this.replaySubject(dead.group), dead.body, h, `replay:${id}:${seq}`);
      await this.#jsm.streams.deleteMessage(this.dlqStream, seq);
      n++;
    }
    return n;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all([...this.#subs].map((s) => s.close()));
    if (this.#options.closeConnection) await this.#nc.close();
  }

  /** @internal */
  get connection(): NatsConnection {
    return this.#nc;
  }
}

class NatsSubscription implements Subscription {
  readonly group: string;
  readonly #broker: NatsBroker;
  readonly #settings: GroupSettings;
  readonly #handler: MessageHandler;
  readonly #durables: string[];
  readonly #logger: Logger | undefined;
  readonly #iters: ConsumerMessages[] = [];
  readonly #loops: Promise<void>[] = [];
  /** Deferrals this process made per stream sequence: subtracted from the delivery count. */
  readonly #deferrals = new Map<number, number>();
  readonly #inflight = new Set<Promise<void>>();
  #waiters: (() => void)[] = [];
  #closed = false;

  constructor(
    broker: NatsBroker,
    settings: GroupSettings,
    handler: MessageHandler,
    durables: string[],
    logger: Logger | undefined,
  ) {
    this.#broker = broker;
    this.#settings = settings;
    this.#handler = handler;
    this.#durables = durables;
    this.#logger = logger;
    this.group = settings.group;
  }

  async start(): Promise<void> {
    for (const durable of this.#durables) {
      const consumer = await this.#broker.js.consumers.get(this.#broker.stream, durable);
      const iter = await consumer.consume({ max_messages: this.#settings.concurrency });
      this.#iters.push(iter);
      this.#loops.push(this.#loop(iter));
    }
  }

  async #slot(): Promise<void> {
    while (this.#inflight.size >= this.#settings.concurrency) {
      await new Promise<void>((r) => this.#waiters.push(r));
    }
  }

  async #loop(iter: ConsumerMessages): Promise<void> {
    try {
      for await (const m of iter) {
        if (this.#closed) {
          m.nak();
          continue;
        }
        await this.#slot();
        const p = this.#handle(m).finally(() => {
          this.#inflight.delete(p);
          for (const w of this.#waiters.splice(0)) w();
        });
        this.#inflight.add(p);
      }
    } catch (err) {
      if (!this.#closed)
        this.#logger?.error(
          { err: errorMessage(err), group: this.group },
          'NATS consume loop ended',
        );
    }
  }

  async #handle(m: JsMsg): Promise<void> {
    const headers = toHeaders(m.headers);
    const seq = m.seq;
    const deferred = this.#deferrals.get(seq) ?? 0;
    const topic = headers[CDP_HEADERS.topic] ?? m.subject.slice(this.#broker.prefix.length + 3);
    const delivery: Delivery = {
      id: headers[CDP_HEADERS.id] ?? String(seq),
      topic,
      key: headers[CDP_HEADERS.key],
      headers,
      body: m.string(),
      attempt: Math.max(1, m.info.deliveryCount - deferred),
      maxDeliveries: this.#settings.maxDeliveries,
      group: this.group,
    };
    try {
      const outcome = await decide(this.#settings, delivery, this.#handler, this.#logger);
      if (outcome.kind === 'ack') {
        this.#deferrals.delete(seq);
        m.ack();
      } else if (outcome.kind === 'retry') {
        if (!outcome.counts) {
          this.#deferrals.set(seq, deferred + 1);
          if (this.#deferrals.size > 100_000) {
            const first = this.#deferrals.keys().next().value as number;
            this.#deferrals.delete(first);
          }
        }
        m.nak(Math.max(1, Math.round(outcome.delayMs)));
      } else {
        await this.#broker.publishDead(this.#settings, m, delivery, outcome.error);
        this.#deferrals.delete(seq);
        await m.ackAck().catch(() => m.ack());
      }
    } catch (err) {
      // Could not dead-letter (broker down): leave the message unacked; it comes back.
      this.#logger?.warn({ err: errorMessage(err), id: delivery.id }, 'NATS settle failed');
      try {
        m.nak(1000);
      } catch {
        /* connection gone: ack_wait redelivers */
      }
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const it of this.#iters) {
      try {
        it.stop();
      } catch {
        /* already stopped */
      }
    }
    await Promise.all(this.#loops);
    await Promise.all([...this.#inflight]);
    this.#broker.forget(this);
  }
}

/**
 * Connect to the NATS server at `url` (`CDP_NATS_URL`) and open a broker on it that owns the
 * connection: `close()` closes both. An unreachable server fails with an EngineUnavailableError
 * naming `variable`.
 */
export async function openNatsBroker(
  options: Omit<NatsBrokerOptions, 'nc' | 'closeConnection'> & { url: string; variable?: string },
): Promise<NatsBroker> {
  const { url, variable, ...rest } = options;
  const nc = await connectNats({
    url,
    ...(variable ? { variable } : {}),
    ...(rest.logger ? { logger: rest.logger } : {}),
  });
  try {
    return await NatsBroker.open({ ...rest, nc, closeConnection: true });
  } catch (err) {
    await nc.close();
    throw err;
  }
}
