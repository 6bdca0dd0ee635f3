/**
 * One outbox relay as its own process, for the fault runs: killed with SIGKILL at random and
 * restarted by the orchestrator (fault-run.ts). Configured by environment:
 * FAULT_DB_URL, FAULT_BROKER (nats | rabbitmq), FAULT_BROKER_URL, FAULT_PREFIX.
 */
import { connectAmqp } from '../../../src/engines/amqp/index.js';
import { connectNats } from '../../../src/engines/nats/index.js';
import { PgSqlClient } from '../../../src/engines/sql/pg-sql-client.js';
import type { Broker } from '../../../src/messaging/broker.js';
import { NatsBroker } from '../../../src/messaging/nats.js';
import { RabbitMqBroker } from '../../../src/messaging/rabbitmq.js';
import { OutboxRelay } from '../../../src/messaging/sql-outbox-relay.js';

const env = process.env;
const sql = await PgSqlClient.open({ url: env.FAULT_DB_URL!, max: 4 });
let broker: Broker;
if (env.FAULT_BROKER === 'nats') {
  const nc = await connectNats({ url: env.FAULT_BROKER_URL!, connectTimeoutMs: 2000 });
  broker = await NatsBroker.open({ nc, prefix: env.FAULT_PREFIX!, storage: 'file' });
} else {
  const conn = await connectAmqp({ url: env.FAULT_BROKER_URL!, connectTimeoutMs: 2000 });
  broker = await RabbitMqBroker.open({ connection: conn, prefix: env.FAULT_PREFIX! });
}
const relay = new OutboxRelay({
  sql,
  broker,
  mode: 'notify',
  pollIntervalMs: 200,
  batchSize: 50,
  perKey: 10,
  concurrency: 32,
});
await relay.start();
process.stdout.write('ready\n');
// Runs until killed (SIGKILL: no cleanup at all, which is the point).
setInterval(() => {}, 1 << 30);
