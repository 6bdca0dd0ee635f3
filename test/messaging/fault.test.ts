import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeServer, serverUrl } from '../support/servers.js';
import { lockBrokers } from './broker-lock.js';
import { runFault } from './fault/fault-run.js';

let unlockBrokers: (() => Promise<void>) | undefined;
beforeAll(async () => {
  unlockBrokers = await lockBrokers();
}, 700_000);
afterAll(async () => {
  await unlockBrokers?.();
});

/**
 * Small but real fault runs (the 100,000-message version: fault/fault-run.ts by hand, size
 * from CDP_FAULT_MESSAGES). Relay processes are SIGKILLed at random and restarted, the broker
 * restarts once mid-run, consumers use the inbox; nothing may be lost, duplicated or reordered.
 */
const messages = Number(process.env.CDP_FAULT_MESSAGES ?? 1200);

function check(report: Awaited<ReturnType<typeof runFault>>) {
  console.log(`fault run: ${JSON.stringify(report)}`);
  expect(report.kills).toBeGreaterThan(0);
  expect(report.brokerRestarts).toBe(1);
  expect(report.lost).toBe(0);
  expect(report.duplicateEffects).toBe(0);
  expect(report.keysOutOfOrder).toBe(0);
  expect(report.parked).toBe(0);
  expect(report.deadLetters).toBe(0);
}

describeServer('fault run: PostgreSQL + NATS', 'CDP_NATS_URL', (brokerUrl) => {
  const databaseUrl = serverUrl('CDP_DATABASE_URL');
  it.skipIf(!databaseUrl)(
    'kills relays and restarts NATS: zero lost, zero duplicate effects, order kept',
    async () => {
      check(
        await runFault({
          broker: 'nats',
          databaseUrl: databaseUrl!,
          brokerUrl,
          messages,
          keys: 30,
          killEveryMs: [300, 900],
          timeoutMs: 120_000,
        }),
      );
    },
    180_000,
  );
});

describeServer('fault run: PostgreSQL + RabbitMQ', 'CDP_AMQP_URL', (brokerUrl) => {
  const databaseUrl = serverUrl('CDP_DATABASE_URL');
  it.skipIf(!databaseUrl)(
    'kills relays and restarts RabbitMQ: zero lost, zero duplicate effects, order kept',
    async () => {
      check(
        await runFault({
          broker: 'rabbitmq',
          databaseUrl: databaseUrl!,
          brokerUrl,
          messages,
          keys: 30,
          killEveryMs: [300, 900],
          timeoutMs: 120_000,
        }),
      );
    },
    240_000,
  );
});
