import { afterAll, beforeAll, expect, it } from 'vitest';
import { connectAmqp } from '../../src/engines/amqp/index.js';
import { connectNats, type NatsConnection } from '../../src/engines/nats/index.js';
import type { Broker } from '../../src/messaging/broker.js';
import { NatsBroker } from '../../src/messaging/nats.js';
import { RabbitMqBroker } from '../../src/messaging/rabbitmq.js';
import { eventually, uniq } from '../../src/testing/index.js';
import { describeServer } from '../support/servers.js';
import { restartNats, restartRabbit } from './broker-control.js';
import { lockBrokers } from './broker-lock.js';

let unlockBrokers: (() => Promise<void>) | undefined;
beforeAll(async () => {
  unlockBrokers = await lockBrokers();
}, 700_000);
afterAll(async () => {
  await unlockBrokers?.();
});

/**
 * A broker restart with a subscriber attached: every confirmed message before, during and
 * after the restart is delivered (at least once) to the group, which resubscribes by itself.
 */
async function survivesRestart(broker: Broker, restart: () => Promise<void>): Promise<void> {
  const topic = uniq('t.restart.');
  const got = new Set<string>();
  const sub = await broker.subscribe({ group: uniq('g'), topics: [topic] }, async (d) => {
    got.add(d.id);
  });
  const confirmed: string[] = [];
  let stop = false;
  const publisher = (async () => {
    for (let i = 0; !stop; i++) {
      const id = `m-${i}`;
      try {
        await broker.publish({ topic, id, body: String(i) });
        confirmed.push(id);
      } catch {
        // Not confirmed: it may or may not arrive; only confirmed ones must.
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  try {
    await eventually(() => confirmed.length >= 20, 'publishes before the restart');
    await restart();
    const after = confirmed.length;
    await eventually(() => confirmed.length >= after + 20, 'publishes after the restart', {
      timeoutMs: 60_000,
    });
    stop = true;
    await publisher;
    await eventually(
      () => confirmed.every((id) => got.has(id)),
      'every confirmed message delivered',
      { timeoutMs: 60_000 },
    );
    expect(confirmed.filter((id) => !got.has(id))).toEqual([]);
  } finally {
    stop = true;
    await publisher;
    await sub.close();
  }
}

describeServer('broker restart: NATS JetStream', 'CDP_NATS_URL', (url) => {
  let nc: NatsConnection;
  let broker: NatsBroker;
  beforeAll(async () => {
    nc = await connectNats({ url });
    broker = await NatsBroker.open({ nc, prefix: uniq('cdpr_'), storage: 'file' });
  });
  afterAll(async () => {
    await broker?.close();
    await broker?.destroy();
    await nc?.close();
  });
  it('loses no confirmed message across a server restart', async () => {
    await survivesRestart(broker, () => restartNats(300));
  }, 120_000);
});

describeServer('broker restart: RabbitMQ', 'CDP_AMQP_URL', (url) => {
  let conn: Awaited<ReturnType<typeof connectAmqp>>;
  let broker: RabbitMqBroker;
  beforeAll(async () => {
    conn = await connectAmqp({ url });
    broker = await RabbitMqBroker.open({ connection: conn, prefix: uniq('cdpr.') });
  });
  afterAll(async () => {
    await broker?.close();
    await broker?.destroy();
    await conn?.close();
  });
  it('loses no confirmed message across a server restart', async () => {
    await survivesRestart(broker, () => restartRabbit(300));
  }, 180_000);
});
