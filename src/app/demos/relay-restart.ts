import { setTimeout as sleep } from 'node:timers/promises';
import type { Clock } from '../../core/clock.js';
import type { SqlClient } from '../../engines/sql/sql-client.js';
import {
  ack,
  type EventTypes,
  eventHandler,
  Outbox,
  SqlInbox,
  type Subscription,
} from '../../messaging/index.js';
import type { Demo } from '../feature.js';
import type { RecordingBroker } from './recent-messages.js';

const MESSAGES = 50;
export const demoPingType = 'demo.ping';

/** Stop and start the platform's outbox relay (a stopped relay is replaced by a new one). */
export interface RelayControl {
  stop(): Promise<void>;
  start(): Promise<void>;
}

export interface RelayRestartDemoOptions {
  sql: SqlClient;
  broker: RecordingBroker;
  /** Must define `demo.ping` ({ run: string, n: number }). */
  types: EventTypes;
  relay: RelayControl;
  /** Deliver a stored message again by id (what POST …/messages/{id}/redeliver does). */
  redeliver: (id: string) => Promise<unknown>;
  clock: Clock;
}

/**
 * The relay stopped and restarted with no message lost: messages written through the outbox
 * while the relay is stopped wait in the outbox table; once it runs again each is delivered to
 * an idempotent consumer and applied exactly once, and a redelivery of one is dropped by id.
 * The consumer (`demo-counter`) is the demonstration's own.
 */
export async function openRelayRestartDemo(
  o: RelayRestartDemoOptions,
): Promise<{ demo: Demo; close(): Promise<void> }> {
  const inbox = new SqlInbox({ sql: o.sql, consumer: 'demo-counter', ordering: 'none' });
  const applied = new Map<string, number>();
  let duplicates = 0;
  const sub: Subscription = await o.broker.subscribe(
    { group: 'demo-counter', topics: [demoPingType], maxDeliveries: 5, concurrency: 8 },
    eventHandler(o.types, async (env) => {
      const r = await inbox.handle(env, async () => {});
      if (r === 'duplicate') duplicates++;
      // Counted after commit: the effect of this delivery is durable.
      else applied.set(env.id, (applied.get(env.id) ?? 0) + 1);
      return ack();
    }),
  );
  const outbox = new Outbox({
    source: '/demos/relay',
    types: o.types,
    trace: true,
    clock: o.clock,
  });

  const demo: Demo = {
    id: 'relay-restart',
    title: 'Relay stopped and restarted: no message lost',
    description: `Stops the outbox relay, writes ${MESSAGES} messages through the outbox, shows them waiting, starts the relay again and counts what an idempotent consumer applied: each message exactly once. Then delivers one of them again; the consumer's inbox drops it by id.`,
    feature: 'enrollment',
    async run() {
      const run = `${o.clock.now()}`;
      const steps: string[] = [];
      await o.relay.stop();
      let ids: string[] = [];
      let waiting = 0;
      let appliedWhileStopped = 0;
      try {
        steps.push('stopped the outbox relay');
        const envs = await o.sql.transaction((tx) =>
          outbox.addMany(
            tx,
            Array.from({ length: MESSAGES }, (_, n) => ({
              type: demoPingType,
              topic: demoPingType,
              data: { run, n },
            })),
          ),
        );
        ids = envs.map((e) => e.id);
        steps.push(`wrote ${MESSAGES} messages through the outbox in one transaction`);
        await sleep(500);
        const { rows } = await o.sql.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM cdp_outbox WHERE message_id = ANY($1)',
          [ids],
        );
        waiting = rows[0]!.n;
        appliedWhileStopped = ids.filter((id) => applied.has(id)).length;
        steps.push(
          `half a second later: ${waiting} wait in the outbox table, ${appliedWhileStopped} reached the consumer`,
        );
      } finally {
        await o.relay.start();
      }
      steps.push('started the relay again');
      for (let i = 0; i < 300 && ids.some((id) => !applied.has(id)); i++) await sleep(50);
      const deliveredOnce = ids.filter((id) => applied.get(id) === 1).length;
      const lost = ids.filter((id) => !applied.has(id)).length;
      steps.push(
        `the consumer applied ${deliveredOnce} of ${MESSAGES}, each once; ${lost} missing`,
      );
      // A true redelivery: the same delivery handed to the consumer again (a lost ack).
      const dupBefore = duplicates;
      await o.redeliver(ids[0]!);
      const droppedByInbox = duplicates - dupBefore;
      steps.push(
        `delivered message ${ids[0]} again: the consumer's inbox knew its id and applied nothing`,
      );
      const appliedTwice = ids.filter((id) => (applied.get(id) ?? 0) > 1).length;
      return {
        ok: waiting === MESSAGES && lost === 0 && appliedTwice === 0 && droppedByInbox === 1,
        summary:
          lost === 0
            ? `all ${MESSAGES} messages written while the relay was stopped were applied once after it restarted; delivered again, one was dropped by the consumer's inbox.`
            : `${lost} of ${MESSAGES} messages have not arrived yet.`,
        figures: [
          { label: 'written while stopped', value: MESSAGES },
          { label: 'waiting in outbox while stopped', value: waiting },
          { label: 'applied while stopped', value: appliedWhileStopped },
          { label: 'applied once after restart', value: deliveredOnce },
          { label: 'lost', value: lost },
          { label: 'applied twice', value: appliedTwice },
          { label: 'redeliveries dropped by the inbox', value: droppedByInbox },
        ],
        steps,
      };
    },
  };
  return { demo, close: () => sub.close() };
}
