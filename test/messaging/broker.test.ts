import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EngineUnavailableError } from '../../src/core/errors.js';
import { connectAmqp } from '../../src/engines/amqp/index.js';
import { connectNats, type NatsConnection } from '../../src/engines/nats/index.js';
import { MemoryBroker } from '../../src/messaging/memory-broker.js';
import { NatsBroker } from '../../src/messaging/nats.js';
import { RabbitMqBroker } from '../../src/messaging/rabbitmq.js';
import { brokerContract, uniq } from '../../src/testing/index.js';
import { describeServer } from '../support/servers.js';
import { lockBrokers } from './broker-lock.js';

let unlockBrokers: (() => Promise<void>) | undefined;
beforeAll(async () => {
  unlockBrokers = await lockBrokers();
}, 700_000);
afterAll(async () => {
  await unlockBrokers?.();
});

describe('broker contract: memory', () => {
  let broker: MemoryBroker;
  beforeAll(async () => {
    broker = await MemoryBroker.open();
  });
  afterAll(() => broker.close());
  brokerContract(() => broker);
});

describeServer('broker contract: NATS JetStream', 'CDP_NATS_URL', (url) => {
  let nc: NatsConnection;
  let broker: NatsBroker;
  beforeAll(async () => {
    nc = await connectNats({ url });
    broker = await NatsBroker.open({ nc, prefix: uniq('cdpt_'), storage: 'memory' });
  });
  afterAll(async () => {
    await broker?.close();
    await broker?.destroy();
    await nc?.close();
  });
  brokerContract(() => broker);
});

describeServer('broker contract: RabbitMQ', 'CDP_AMQP_URL', (url) => {
  let conn: Awaited<ReturnType<typeof connectAmqp>>;
  let broker: RabbitMqBroker;
  beforeAll(async () => {
    conn = await connectAmqp({ url });
    broker = await RabbitMqBroker.open({ connection: conn, prefix: uniq('cdpt.') });
  });
  afterAll(async () => {
    await broker?.close();
    await broker?.destroy();
    await conn?.close();
  });
  brokerContract(() => broker);
});

describe('broker: unreachable at start', () => {
  it('names the variable when NATS cannot be reached', async () => {
    const err = await connectNats({ url: 'nats://127.0.0.1:1', connectTimeoutMs: 500 }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(EngineUnavailableError);
    expect((err as Error).message).toContain('CDP_NATS_URL');
  });
  it('names the variable when RabbitMQ cannot be reached', async () => {
    const err = await connectAmqp({ url: 'amqp://127.0.0.1:1', connectTimeoutMs: 500 }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(EngineUnavailableError);
    expect((err as Error).message).toContain('CDP_AMQP_URL');
  });
});
