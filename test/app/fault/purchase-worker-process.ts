/**
 * A worker process for the purchase fault run (purchase-fault.test.ts): the platform's course
 * purchase saga (src/app/purchases/saga.ts) on PostgreSQL with the event-sourced wallet; access
 * and receipts are written to the test's tables (fault_access, fault_receipts) in the saga's
 * SQL steps. Configured by environment:
 *   PF_DB_URL       the database
 *   PF_WORKER_ID    this worker's id
 *   PF_LEASE_MS     lease of its claims
 *   PF_CONCURRENCY  runs it executes at once
 */

import { purchaseSaga } from '../../../src/app/purchases/saga.js';
import { studentWallet, walletStream } from '../../../src/app/reviews/deciders.js';
import { CommandHandler } from '../../../src/cqrs/index.js';
import { PgSqlClient } from '../../../src/engines/sql/pg-sql-client.js';
import { SqlEventStore } from '../../../src/events/index.js';
import { WorkflowEngine } from '../../../src/workflow/index.js';

const env = process.env;
const sql = await PgSqlClient.open({ url: env.PF_DB_URL!, max: 10 });
const store = new SqlEventStore(sql);
const wallets = new CommandHandler({
  store,
  decider: studentWallet,
  streamId: walletStream,
  snapshotEvery: 100,
  maxAttempts: 20,
});
const saga = purchaseSaga({
  wallets,
  // Sales of course co-7 close between the charge and the grant: its purchases are refused at
  // the pivot, so their charges are refunded (the compensation this run exercises most).
  grant: async (tx, student, course) => {
    if (course === 'co-7') return false;
    await tx.query('INSERT INTO fault_access (student, course) VALUES ($1, $2)', [student, course]);
    return true;
  },
  receipt: async (tx, r) => {
    await tx.query('INSERT INTO fault_receipts (purchase_id, amount_cents) VALUES ($1, $2)', [
      r.purchaseId,
      r.amountCents,
    ]);
  },
  backoff: { baseDelayMs: 200, maxDelayMs: 2000 },
});
const engine = await WorkflowEngine.open({
  sql,
  workerId: env.PF_WORKER_ID!,
  leaseMs: Number(env.PF_LEASE_MS ?? 1000),
  pollIntervalMs: 50,
  concurrency: Number(env.PF_CONCURRENCY ?? 16),
  workflows: [saga],
  migrate: false,
});
process.stdout.write('ready\n');
process.on('SIGTERM', () => {
  void engine
    .close({ timeoutMs: 1000 })
    .then(() => store.close?.())
    .then(() => sql.close())
    .then(() => process.exit(0));
});
setInterval(() => {}, 1 << 30);
