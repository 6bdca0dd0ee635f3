/**
 * A writer process for the fault run: appends through SqlEventStore, half of the plain appends
 * autocommitted and the rest in its own transactions, rolling some back and holding some open before COMMIT (slow commits), and reports on stdout
 * `C <ids>` after a commit was acknowledged (`A <ids>` for an autocommitted append) and
 * `R <ids>` after a rollback. The parent kills
 * it with SIGKILL at random: whatever was in flight is then decided by the database alone.
 */
import { randomInt } from 'node:crypto';
import { newId } from '../../../src/core/ids.js';
import { PgSqlClient } from '../../../src/engines/sql/pg-sql-client.js';
import { SqlEventStore } from '../../../src/events/index.js';

const url = process.env.FAULT_DB_URL!;
const concurrency = Number(process.env.FAULT_WRITER_CONCURRENCY ?? 4);
const rollbackPct = Number(process.env.FAULT_ROLLBACK_PCT ?? 3);
const slowPct = Number(process.env.FAULT_SLOW_PCT ?? 1);
const streams = Number(process.env.FAULT_STREAMS ?? 200);

const sql = await PgSqlClient.open({
  url,
  max: concurrency,
  applicationName: 'cdp-fault-writer',
});
const store = new SqlEventStore(sql, { notify: false });
let stopping = false;
process.on('SIGTERM', () => {
  stopping = true;
});
const out: string[] = [];
const flush = () => {
  if (out.length > 0) process.stdout.write(`${out.splice(0).join('\n')}\n`);
};
const flusher = setInterval(flush, 50);

class Rollback extends Error {}

await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (!stopping) {
      const ids = Array.from({ length: randomInt(1, 3) }, () => newId());
      const roll = randomInt(100) < rollbackPct;
      const slow = randomInt(1000) < slowPct * 10;
      // Half of the plain appends autocommit (one statement on PostgreSQL), the rest, and every
      // slow or rolled-back one, run inside a transaction of the writer's.
      const auto = !roll && !slow && randomInt(2) === 0;
      const stream = `fault-${randomInt(streams)}`;
      const events = ids.map((id) => ({ id, type: 'Fault', data: { pid: process.pid } }));
      try {
        if (auto) {
          await store.append(stream, events);
          out.push(`A ${ids.join(',')}`);
          continue;
        }
        await sql.transaction(async (tx) => {
          await store.append(stream, events, { tx });
          if (slow) {
            out.push('S');
            await new Promise((r) => setTimeout(r, randomInt(20, 300)));
          }
          if (roll) throw new Rollback();
        });
        out.push(`C ${ids.join(',')}`);
      } catch (err) {
        if (err instanceof Rollback) out.push(`R ${ids.join(',')}`);
        else out.push(`E ${String(err).slice(0, 200).replace(/\n/g, ' ')}`);
      }
    }
  }),
);
clearInterval(flusher);
flush();
await sql.close();
