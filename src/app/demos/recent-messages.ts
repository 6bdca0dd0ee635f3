import type { Broker, Delivery, MessageHandler } from '../../messaging/index.js';

/**
 * A broker that remembers the last `capacity` deliveries to each consumer group, so a message
 * can be delivered again by id: the same delivery (id, body, headers) handed to the group's
 * handler once more, as a broker does when an acknowledgement was lost. Publishing the message
 * again would not do: the in-process broker and JetStream drop a repeated id on publish.
 */
export interface RecordingBroker extends Broker {
  /** Deliver message `id` again to every group that received it; returns those groups. */
  redeliver(id: string): Promise<string[]>;
}

export function recordingBroker(inner: Broker, capacity = 1000): RecordingBroker {
  const kept = new Map<string, { delivery: Delivery; handler: MessageHandler }[]>();
  const remember = (delivery: Delivery, handler: MessageHandler) => {
    const list = kept.get(delivery.id) ?? [];
    if (!list.some((d) => d.delivery.group === delivery.group)) list.push({ delivery, handler });
    kept.delete(delivery.id);
    kept.set(delivery.id, list);
    if (kept.size > capacity) kept.delete(kept.keys().next().value!);
  };
  return {
    get kind() {
      return inner.kind;
    },
    get dedupOnBroker() {
      return inner.dedupOnBroker;
    },
    ping: () => inner.ping(),
    publish: (message) => inner.publish(message),
    subscribe: (options, handler) =>
      inner.subscribe(options, async (delivery) => {
        const result = await handler(delivery);
        remember(delivery, handler);
        return result;
      }),
    listDeadLetters: (options) => inner.listDeadLetters(options),
    replayDeadLetter: (id) => inner.replayDeadLetter(id),
    close: () => inner.close(),
    async redeliver(id) {
      const list = kept.get(id) ?? [];
      for (const { delivery, handler } of list)
        await handler({ ...delivery, attempt: delivery.attempt + 1 });
      return list.map((d) => d.delivery.group);
    },
  };
}
