import { jetstreamManager } from '@nats-io/jetstream';
import { describe, expect, it } from 'vitest';
import { EngineUnavailableError } from '../../src/core/errors.js';
import { connectAmqp } from '../../src/engines/amqp/index.js';
import { connectNats } from '../../src/engines/nats/index.js';
import { connectRedis } from '../../src/engines/redis/index.js';
import { describeServer } from '../support/servers.js';

describe('engine connectors: unreachable engines', () => {
  it.each([
    [
      'Redis',
      () => connectRedis({ url: 'redis://127.0.0.1:1', connectTimeoutMs: 800 }),
      'CDP_REDIS_URL',
    ],
    [
      'NATS',
      () => connectNats({ url: 'nats://127.0.0.1:1', connectTimeoutMs: 800 }),
      'CDP_NATS_URL',
    ],
    [
      'RabbitMQ',
      () => connectAmqp({ url: 'amqp://127.0.0.1:1', connectTimeoutMs: 800 }),
      'CDP_AMQP_URL',
    ],
  ] as const)(
    '%s: a clear error naming the variable, no hang',
    async (_name, connect, variable) => {
      const err = await (connect as () => Promise<unknown>)().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(EngineUnavailableError);
      expect((err as EngineUnavailableError).variable).toBe(variable);
      expect((err as Error).message).toContain(variable);
    },
  );
});

describeServer('Redis connector', 'CDP_REDIS_URL', (url) => {
  it('connects, answers and closes', async () => {
    const r = await connectRedis({ url });
    expect(await r.ping()).toBe('PONG');
    await r.close();
  });
});

describeServer('NATS connector', 'CDP_NATS_URL', (url) => {
  it('connects to a server with JetStream enabled', async () => {
    const nc = await connectNats({ url });
    const jsm = await jetstreamManager(nc);
    expect((await jsm.getAccountInfo()).limits).toBeDefined();
    await nc.close();
  });
});

describeServer('RabbitMQ connector', 'CDP_AMQP_URL', (url) => {
  it('connects and declares a queue', async () => {
    const conn = await connectAmqp({ url });
    const q = `cdp-connector-${process.pid}`;
    const ok = await conn.queueDeclare({ queue: q, exclusive: true });
    expect(ok.queue).toBe(q);
    await conn.close();
  });
});
